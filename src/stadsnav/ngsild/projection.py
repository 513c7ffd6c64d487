"""The Attribute Projection Language of `pick` and `omit` (clause 4.21).

    ProjectionTerm   = AttrName *1(LinkedEntityTerm) *(orOp ProjectionTerm)
    LinkedEntityTerm = "{" ProjectionTerm "}"
    orOp             = "|" / ","

A term with braces names a Relationship and projects the Entity it links to when the request
asks for Linked Entity retrieval (`join`, clause 4.5.23): `pick=id,locatedAt{id,name}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.entity import RESERVED_ATTRIBUTE_NAMES
from stadsnav.ngsild.errors import BadRequestData
from stadsnav.ngsild.names import check_name

# Entity members that are not attributes but may be picked or omitted (clause 5.7.1.3).
CORE_MEMBERS = frozenset({"id", "type", "scope"})
# Deeper than any join could reach; the bound keeps the recursive parser's stack small.
MAX_NESTING = 32

_TOKEN = re.compile(r"[{},|]|[^{},|]+")
_OR = frozenset(",|")
_STRUCTURE = frozenset("{},|")


@dataclass(frozen=True)
class Term:
    """One element of a projection as written: a name, and what to project in the Entity a
    Relationship of that name links to (None: no braces)."""

    name: str
    linked: tuple[Term, ...] | None = None


@dataclass(frozen=True)
class Projection:
    """Which members of an Entity are shown, and how each Entity its Relationships link to is
    shown in turn (by default whole)."""

    members: frozenset[str] = frozenset()
    # True (pick): `members` are the only ones shown; False (omit): `members` are hidden.
    only: bool = False
    # Per Relationship IRI, sorted, so that equal projections compare equal.
    linked: tuple[tuple[str, Projection], ...] = ()

    def keeps(self, member: str) -> bool:
        return (member in self.members) == self.only

    def follow(self, relationship: str) -> Projection:
        for name, projection in self.linked:
            if name == relationship:
                return projection
        return WHOLE

    @property
    def depth(self) -> int:
        """How many Relationships deep the projection reaches into Linked Entities."""
        return 1 + max(p.depth for _, p in self.linked) if self.linked else 0

    def union(self, other: Projection) -> Projection:
        """Everything either shows: how a Linked Entity reached through several Relationships
        is shown once."""
        if self.only and other.only:
            members, only = self.members | other.members, True
        elif not self.only and not other.only:
            members, only = self.members & other.members, False
        else:
            picked, hidden = (self, other) if self.only else (other, self)
            members, only = hidden.members - picked.members, False
        linked: list[tuple[str, Projection]] = []
        for name in sorted({n for n, _ in self.linked} | {n for n, _ in other.linked}):
            parts = [p.follow(name) for p in (self, other) if p.keeps(name)]
            if not parts:
                continue
            merged = parts[0].union(parts[1]) if len(parts) == 2 else parts[0]
            if merged != WHOLE:
                linked.append((name, merged))
        return Projection(members, only, tuple(linked))


WHOLE = Projection()


def parse_terms(text: str) -> tuple[Term, ...]:
    """The syntax of clause 4.21 alone; names are checked but not expanded."""
    parser = _Parser(_TOKEN.findall(text))
    terms = parser.terms(0)
    if parser.position != len(parser.tokens):
        raise BadRequestData(f"Unexpected {parser.tokens[parser.position]!r:.50} in {text!r:.200}")
    return terms


def parse_pick(text: str, ctx: Context) -> Projection:
    return _projection(parse_terms(text), ctx, only=True)


def parse_omit(text: str, ctx: Context) -> Projection:
    return _projection(parse_terms(text), ctx, only=False)


def only_attributes(names: list[str], ctx: Context) -> Projection:
    """`attrs`: the attributes named, with id and type, which `attrs` never removes."""
    return Projection(frozenset(attribute_iri(n, ctx) for n in names) | {"id", "type"}, True)


def attribute_iri(name: str, ctx: Context) -> str:
    """An attribute name as a projection may list it: not a core member such as id or type."""
    if name in RESERVED_ATTRIBUTE_NAMES:
        raise BadRequestData(f"{name!r} is not an attribute name")
    return ctx.expand(check_name(name, "Attribute name"))


def _projection(terms: tuple[Term, ...], ctx: Context, *, only: bool) -> Projection:
    members: set[str] = set()
    nested: dict[str, list[Term]] = {}
    for term in terms:
        member = term.name if term.name in CORE_MEMBERS else attribute_iri(term.name, ctx)
        if term.linked is None:
            members.add(member)
            continue
        if member in CORE_MEMBERS:
            raise BadRequestData(f"{member} links to no Entity: only a Relationship takes {{...}}")
        nested.setdefault(member, []).extend(term.linked)
        if only:
            members.add(member)
    projection = Projection(frozenset(members), only)
    linked = tuple(
        (name, _projection(tuple(nested[name]), ctx, only=only))
        for name in sorted(nested)
        if projection.keeps(name)
    )
    return Projection(projection.members, only, linked)


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.position = 0

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def terms(self, depth: int) -> tuple[Term, ...]:
        found = [self._term(depth)]
        while self._peek() in _OR:
            self.position += 1
            found.append(self._term(depth))
        return tuple(found)

    def _term(self, depth: int) -> Term:
        token = self._peek()
        if token is None or token in _STRUCTURE:
            raise BadRequestData(
                "A projection lists names separated by ',' or '|', "
                f"got {'nothing' if token is None else repr(token)} where a name belongs"
            )
        self.position += 1
        name = check_name(token.strip(), "Projected name")
        if self._peek() != "{":
            return Term(name)
        if depth >= MAX_NESTING:
            raise BadRequestData(f"A projection nests at most {MAX_NESTING} levels")
        self.position += 1
        inner = self.terms(depth + 1)
        if self._peek() != "}":
            raise BadRequestData(f"The braces after {name!r:.100} are not closed")
        self.position += 1
        return Term(name, inner)
