"""The parsed form of an entity query (clause 4.x query parameters), and type expressions.

Parameters are parsed once, at the edge, into frozen objects; deeper layers trust them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.errors import BadRequestData
from stadsnav.ngsild.names import check_name

if TYPE_CHECKING:
    from stadsnav.ngsild.geoquery import GeoQuery
    from stadsnav.ngsild.qlang import QExpr


@dataclass(frozen=True)
class TypeName:
    iri: str


@dataclass(frozen=True)
class TypeAnd:
    parts: tuple[TypeExpr, ...]


@dataclass(frozen=True)
class TypeOr:
    parts: tuple[TypeExpr, ...]


TypeExpr = TypeName | TypeAnd | TypeOr


@dataclass(frozen=True)
class EntityQuery:
    ids: tuple[str, ...] | None = None
    id_pattern: str | None = None
    types: TypeExpr | None = None
    attrs: tuple[str, ...] | None = None
    q: QExpr | None = None
    geo: GeoQuery | None = None
    # scopeQ: alternatives (`,`) of scopes that must all match (`;`), each a regular expression.
    scope: tuple[tuple[str, ...], ...] | None = None
    limit: int = 20
    offset: int = 0
    count: bool = False


_TYPE_TOKEN = re.compile(r"\s*([(),;|])\s*|([^(),;|]+)")


def parse_type_expression(text: str, ctx: Context) -> TypeExpr:
    """Parse `type` (clause 4.17): `,` and `|` mean OR, `;` means AND, parentheses group."""
    tokens: list[str] = []
    position = 0
    while position < len(text):
        match = _TYPE_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise BadRequestData(f"Invalid type expression {text!r:.200}")
        tokens.append((match.group(1) or match.group(2)).strip())
        position = match.end()
    tokens = [t for t in tokens if t]
    if not tokens:
        raise BadRequestData("Empty type expression")
    parser = _TypeParser(tokens, ctx)
    expr = parser.parse_or()
    if parser.position != len(tokens):
        raise BadRequestData(f"Invalid type expression {text!r:.200}")
    return expr


class _TypeParser:
    def __init__(self, tokens: list[str], ctx: Context) -> None:
        self.tokens = tokens
        self.position = 0
        self.ctx = ctx

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def parse_or(self) -> TypeExpr:
        parts = [self.parse_and()]
        while self._peek() in (",", "|"):
            self.position += 1
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else TypeOr(tuple(parts))

    def parse_and(self) -> TypeExpr:
        parts = [self.parse_atom()]
        while self._peek() == ";":
            self.position += 1
            parts.append(self.parse_atom())
        return parts[0] if len(parts) == 1 else TypeAnd(tuple(parts))

    def parse_atom(self) -> TypeExpr:
        token = self._peek()
        if token is None:
            raise BadRequestData("Type expression ends too early")
        self.position += 1
        if token == "(":
            inner = self.parse_or()
            if self._peek() != ")":
                raise BadRequestData("Unbalanced parentheses in type expression")
            self.position += 1
            return inner
        if token in (")", ",", "|", ";"):
            raise BadRequestData(f"Unexpected {token!r} in type expression")
        check_name(token, "Entity type")
        return TypeName(self.ctx.expand(token))


_SCOPE_SEGMENT = re.compile(r"^[^\s/#+,;()]+$")


def parse_scope_query(text: str) -> tuple[tuple[str, ...], ...]:
    """scopeQ (clause 4.19): `,` or, `;` and, `+` one level, a final `#` any depth below.

    Each scope becomes an anchored regular expression over the entity's scope paths.
    """
    alternatives = []
    for alternative in text.split(","):
        patterns = tuple(_scope_pattern(scope.strip()) for scope in alternative.split(";"))
        alternatives.append(patterns)
    return tuple(alternatives)


def _scope_pattern(scope: str) -> str:
    if scope == "/#":
        return "^/.*$"
    if not scope.startswith("/"):
        raise BadRequestData(f"A scope in scopeQ starts with /: {scope!r:.100}")
    segments = scope[1:].split("/")
    deeper = segments[-1] == "#"
    if deeper:
        segments = segments[:-1]
    parts = []
    for segment in segments:
        if segment == "+":
            parts.append("[^/]+")
        elif _SCOPE_SEGMENT.match(segment):
            parts.append(re.escape(segment))
        else:
            raise BadRequestData(f"Invalid scope in scopeQ: {scope!r:.100}")
    return "^/" + "/".join(parts) + ("(/.*)?" if deeper else "") + "$"
