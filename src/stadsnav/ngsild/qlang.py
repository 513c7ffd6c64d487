"""The NGSI-LD Query Language (GS CIM 009 clause 4.9): the `q` parameter.

``parse_q`` turns the (already URL-decoded) text into frozen expression objects with every
attribute name expanded to its IRI; ``matches_q`` evaluates such an expression against an entity's
attributes in internal form (see entity.py). ``store/qsql.py`` compiles the same expressions to SQL
with the same semantics, which are:

* The target of a path is looked up in every instance of the attribute (one per datasetId); the
  term matches if any instance matches.
* ``attr`` targets the attribute's value: ``value`` of a Property or GeoProperty, ``object`` of a
  Relationship, ``languageMap`` of a LanguageProperty (any of its strings), ``vocab``,
  ``valueList``, ``objectList`` or ``json``. ``attr.sub.sub2`` walks sub-attributes;
  ``attr.observedAt`` (or createdAt, modifiedAt, unitCode, datasetId) targets that member of the
  instance; ``attr[k1][k2]`` or ``attr[k1.k2]`` goes down into the value by JSON keys.
* When the target is an array, a comparison matches if any element does.
* Numbers compare with numbers, strings with strings (by code point), booleans only for equality;
  a number never equals a string.
* ``!=``, ``!~=`` and negated lists or ranges hold when the target exists and does not match.
* String literals compared for (in)equality also match a VocabProperty holding their expansion.
* Literals compared with observedAt, createdAt or modifiedAt are normalized like stored times.
* ``;`` (AND) binds tighter than ``|`` (OR).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.errors import BadRequestData, TooComplexQuery
from stadsnav.ngsild.names import check_name, normalize_datetime

MAX_LENGTH = 4096
MAX_DEPTH = 32
MAX_TERMS = 256
MAX_VALUES = 1024

# Members of an attribute instance a path may end with (instead of a sub-attribute).
MEMBERS = frozenset({"observedAt", "createdAt", "modifiedAt", "unitCode", "datasetId"})
TEMPORAL_MEMBERS = frozenset({"observedAt", "createdAt", "modifiedAt"})

# The instance member holding the value, by attribute type; anything else holds "value".
VALUE_MEMBER = {
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
    "JsonProperty": "json",
}

ORDER_OPS = frozenset({">", ">=", "<", "<="})
EQUALITY_OPS = frozenset({"==", "!="})
COMPARISON_OPS = EQUALITY_OPS | ORDER_OPS
PATTERN_OPS = frozenset({"~=", "!~="})

Scalar = str | int | float | bool


@dataclass(frozen=True)
class AttrPath:
    """Where a query term looks: attribute, sub-attributes, then a member or keys in the value."""

    attr: str
    subattrs: tuple[str, ...] = ()
    member: str | None = None
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Comparison:
    """``path op value`` with op one of == != > >= < <=.

    ``vocab`` is the expansion of a string value compared for (in)equality, matched against
    VocabProperty values as well as the value itself.
    """

    path: AttrPath
    op: str
    value: Scalar
    vocab: str | None = None


@dataclass(frozen=True)
class ValueList:
    """``path==v1,v2,...`` (any of) or ``path!=v1,v2,...`` (exists and none of)."""

    path: AttrPath
    op: str
    values: tuple[Scalar, ...]
    vocab: tuple[str, ...] = ()


@dataclass(frozen=True)
class Range:
    """``path==low..high`` (inclusive) or ``path!=low..high``; bounds are both numbers or
    both strings."""

    path: AttrPath
    op: str
    low: Scalar
    high: Scalar


@dataclass(frozen=True)
class Pattern:
    """``path~=regex`` or ``path!~=regex`` (unanchored search)."""

    path: AttrPath
    op: str
    pattern: str


@dataclass(frozen=True)
class Exists:
    path: AttrPath


@dataclass(frozen=True)
class NotExists:
    path: AttrPath


@dataclass(frozen=True)
class And:
    parts: tuple[QExpr, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[QExpr, ...]


QExpr = Comparison | ValueList | Range | Pattern | Exists | NotExists | And | Or
Term = Comparison | ValueList | Range | Pattern | Exists | NotExists


# ---------------------------------------------------------------------------------------------
# Parsing

# Attribute (and sub-attribute) names: anything but whitespace, control characters and the
# characters the grammar uses.
_NAME = re.compile(r"[^\s\x00-\x1f\x7f\"'#(),.;<=>\[\]|!~\\]+")
# Keys inside brackets: JSON member names, separated by dots.
_KEY = re.compile(r"[^\x00-\x1f\x7f\[\].\"\\]+")
# Unquoted values end at whitespace, a delimiter or "..".
_BARE = re.compile(r"(?:[^\s\x00-\x1f\x7f\"'\\<>=();|,{}^`.]|\.(?!\.))+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
# Two-character operators first.
_OPERATORS = ("!~=", "==", "!=", "~=", ">=", "<=", ">", "<")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
# Inline groups the regex engines of Python and PostgreSQL agree on.
_REGEX_GROUP = re.compile(r"\(\?(?![:=!]|<=|<!)")
_ESCAPED = re.compile(r"\\.", re.DOTALL)
_INT64 = 2**63


def parse_q(text: str, ctx: Context) -> QExpr:
    """Parse a `q` query (URL-decoded) into an expression with expanded attribute names."""
    if not isinstance(text, str):
        raise BadRequestData("q must be a string")
    if len(text) > MAX_LENGTH:
        raise TooComplexQuery(f"q is longer than {MAX_LENGTH} characters")
    if "\x00" in text:
        raise BadRequestData("q contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequestData("q is not valid Unicode text") from exc
    if not text.strip():
        raise BadRequestData("q is empty")
    parser = _Parser(text, ctx)
    expr = parser.parse_or(0)
    parser.skip_ws()
    if parser.pos < len(text):
        parser.fail("unexpected character")
    return expr


class _Parser:
    def __init__(self, text: str, ctx: Context) -> None:
        self.text = text
        self.ctx = ctx
        self.pos = 0
        self.terms = 0
        self.values = 0

    # -- helpers ------------------------------------------------------------------------------

    def fail(self, message: str) -> NoReturn:
        near = self.text[self.pos : self.pos + 20]
        where = f" at position {self.pos}" + (f" (near {near!r})" if near else " (at the end)")
        raise BadRequestData(f"Invalid q: {message}{where}")

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def at_term_end(self) -> bool:
        self.skip_ws()
        return self.peek() in ("", ";", "|", ")")

    # -- grammar ------------------------------------------------------------------------------

    def parse_or(self, depth: int) -> QExpr:
        parts = [self.parse_and(depth)]
        while True:
            self.skip_ws()
            if self.peek() != "|":
                break
            self.pos += 1
            parts.append(self.parse_and(depth))
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def parse_and(self, depth: int) -> QExpr:
        parts = [self.parse_primary(depth)]
        while True:
            self.skip_ws()
            if self.peek() != ";":
                break
            self.pos += 1
            parts.append(self.parse_primary(depth))
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def parse_primary(self, depth: int) -> QExpr:
        self.skip_ws()
        if self.peek() == "(":
            if depth >= MAX_DEPTH:
                raise TooComplexQuery(f"q nests parentheses deeper than {MAX_DEPTH}")
            self.pos += 1
            inner = self.parse_or(depth + 1)
            self.skip_ws()
            if self.peek() != ")":
                self.fail("missing ')'")
            self.pos += 1
            return inner
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise TooComplexQuery(f"q has more than {MAX_TERMS} terms")
        return self.parse_term()

    def parse_term(self) -> Term:
        if self.peek() == "!":
            self.pos += 1
            path = self.parse_path()
            if not self.at_term_end():
                self.fail("'!' only negates an attribute's existence")
            return NotExists(path)
        path = self.parse_path()
        self.skip_ws()
        op = self.parse_operator()
        if op is None:
            if not self.at_term_end():
                self.fail("expected an operator, ';', '|' or ')'")
            return Exists(path)
        self.skip_ws()
        if op in PATTERN_OPS:
            return Pattern(path, op, self.parse_regex())
        return self.parse_comparison(path, op)

    def parse_operator(self) -> str | None:
        for op in _OPERATORS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        if self.peek() == "=":
            self.fail("'=' is not an operator (use '==')")
        return None

    def parse_name(self, what: str) -> str:
        match = _NAME.match(self.text, self.pos)
        if match is None:
            self.fail(f"expected {what}")
        self.pos = match.end()
        return check_name(match.group(0), what)

    def expand(self, name: str) -> str:
        iri = self.ctx.expand(name)
        if '"' in iri or "\\" in iri or any(ord(ch) < 0x20 for ch in iri):
            raise BadRequestData(f"Invalid q: attribute {name!r} expands to an unusable IRI")
        return iri

    def parse_path(self) -> AttrPath:
        self.skip_ws()
        attr = self.expand(self.parse_name("an attribute name"))
        subattrs: list[str] = []
        member: str | None = None
        while self.peek() == ".":
            if member is not None:
                self.fail(f"nothing may follow {member!r} in a path")
            self.pos += 1
            name = self.parse_name("a sub-attribute or member name")
            if name in MEMBERS:
                member = name
            else:
                subattrs.append(self.expand(name))
        keys: list[str] = []
        while self.peek() == "[":
            if member is not None:
                self.fail(f"nothing may follow {member!r} in a path")
            self.pos += 1
            while True:
                match = _KEY.match(self.text, self.pos)
                if match is None:
                    self.fail("expected a key inside '[...]'")
                keys.append(match.group(0))
                self.pos = match.end()
                if self.peek() != ".":
                    break
                self.pos += 1
            if self.peek() != "]":
                self.fail("missing ']'")
            self.pos += 1
        if self.peek() == ".":
            self.fail("a path cannot continue after '[...]'")
        return AttrPath(attr, tuple(subattrs), member, tuple(keys))

    def parse_comparison(self, path: AttrPath, op: str) -> Comparison | ValueList | Range:
        first = self.parse_value(path)
        if self.text.startswith("..", self.pos):
            self.pos += 2
            self.skip_ws()
            second = self.parse_value(path)
            if op not in EQUALITY_OPS:
                self.fail(f"a range needs '==' or '!=', not {op!r}")
            if isinstance(first, bool) or isinstance(second, bool):
                self.fail("a range cannot have boolean bounds")
            if isinstance(first, str) != isinstance(second, str):
                self.fail("range bounds must both be numbers or both be strings")
            self.end_of_value()
            return Range(path, op, first, second)
        if self.peek() == ",":
            if op not in EQUALITY_OPS:
                self.fail(f"a value list needs '==' or '!=', not {op!r}")
            values = [first]
            while self.peek() == ",":
                self.pos += 1
                self.skip_ws()
                values.append(self.parse_value(path))
            self.end_of_value()
            alts = tuple(
                dict.fromkeys(alt for v in values if (alt := self.vocab_of(v)) is not None)
            )
            return ValueList(path, op, tuple(values), alts)
        self.end_of_value()
        if op in ORDER_OPS and isinstance(first, bool):
            self.fail(f"booleans cannot be compared with {op!r}")
        vocab = self.vocab_of(first) if op in EQUALITY_OPS else None
        return Comparison(path, op, first, vocab)

    def end_of_value(self) -> None:
        if not self.at_term_end():
            self.fail("unexpected text after the value")

    def vocab_of(self, value: Scalar) -> str | None:
        if not isinstance(value, str) or not value:
            return None
        iri = self.ctx.expand(value)
        return iri if iri != value else None

    def parse_value(self, path: AttrPath) -> Scalar:
        self.values += 1
        if self.values > MAX_VALUES:
            raise TooComplexQuery(f"q has more than {MAX_VALUES} values")
        value: Scalar
        if self.peek() == '"':
            value = self.parse_quoted()
        else:
            match = _BARE.match(self.text, self.pos)
            if match is None:
                self.fail("expected a value")
            token = match.group(0)
            self.pos = match.end()
            if token == "true":
                value = True
            elif token == "false":
                value = False
            elif _NUMBER.fullmatch(token):
                value = _number(token)
            else:
                value = token
        self.skip_ws()
        if (
            isinstance(value, str)
            and path.member in TEMPORAL_MEMBERS
            and _DATETIME.match(value) is not None
        ):
            value = normalize_datetime(value, f"The value compared with {path.member}")
        return value

    def parse_quoted(self) -> str:
        assert self.peek() == '"'
        self.pos += 1
        out: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                self.fail("unterminated string")
            ch = text[self.pos]
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "\\":
                escape = text[self.pos + 1 : self.pos + 2]
                if escape == "u":
                    digits = text[self.pos + 2 : self.pos + 6]
                    if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                        self.fail("invalid \\u escape")
                    code = int(digits, 16)
                    if code == 0 or 0xD800 <= code <= 0xDFFF:
                        self.fail("\\u escape of a NUL or surrogate character")
                    out.append(chr(code))
                    self.pos += 6
                    continue
                if escape not in _ESCAPES:
                    self.fail("invalid escape in string")
                out.append(_ESCAPES[escape])
                self.pos += 2
                continue
            out.append(ch)
            self.pos += 1

    def parse_regex(self) -> str:
        quoted = self.peek() == '"'
        pattern = self.parse_quoted_regex() if quoted else self.parse_bare_regex()
        self.end_of_value()
        check_regex(pattern)
        return pattern

    def parse_quoted_regex(self) -> str:
        """A double-quoted pattern: only ``\\"`` is unescaped, other escapes stay for the regex."""
        self.pos += 1
        out: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                self.fail("unterminated pattern")
            ch = text[self.pos]
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "\\" and self.pos + 1 < len(text):
                pair = text[self.pos : self.pos + 2]
                out.append('"' if pair == '\\"' else pair)
                self.pos += 2
                continue
            out.append(ch)
            self.pos += 1

    def parse_bare_regex(self) -> str:
        """An unquoted pattern runs to ';', '|' or ')' outside its own groups and classes."""
        text = self.text
        start = self.pos
        depth = 0
        in_class = False
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == "\\":
                self.pos += 2
                continue
            if in_class:
                in_class = ch != "]"
            elif ch == "[":
                in_class = True
                # A ']' right after '[' or '[^' is a literal member of the class.
                if text.startswith("]", self.pos + 1):
                    self.pos += 1
                elif text.startswith("^]", self.pos + 1):
                    self.pos += 2
            elif ch == "(":
                depth += 1
            elif ch == ")":
                if depth == 0:
                    break
                depth -= 1
            elif ch in ";|" and depth == 0:
                break
            self.pos += 1
        self.pos = min(self.pos, len(text))
        # Surrounding whitespace is layout, as elsewhere; quote a pattern that needs it.
        pattern = text[start : self.pos].rstrip(" \t\r\n")
        if not pattern:
            self.fail("expected a pattern")
        return pattern


def _number(token: str) -> int | float:
    if "." not in token and "e" not in token and "E" not in token:
        number = int(token)
        if -_INT64 <= number < _INT64:
            return number
    value = float(token)
    if not math.isfinite(value):
        raise BadRequestData(f"Invalid q: number {token[:40]!r} is out of range")
    return value


def check_regex(pattern: str) -> None:
    """Reject patterns that Python cannot compile or that PostgreSQL would read differently."""
    if _REGEX_GROUP.search(_ESCAPED.sub("", pattern.removeprefix("(?i)"))):
        raise BadRequestData(
            "Invalid q: only (?:, (?=, (?!, (?<=, (?<! groups and a leading (?i) are supported "
            f"in patterns, got {pattern[:100]!r}"
        )
    try:
        compile_regex(pattern)
    except Exception as exc:  # re.error, RecursionError, OverflowError, ...
        raise BadRequestData(f"Invalid q: bad regular expression {pattern[:100]!r}") from exc


@lru_cache(maxsize=256)
def compile_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# ---------------------------------------------------------------------------------------------
# Evaluation in Python (subscriptions); the same semantics as store/qsql.py.

_MISSING: Any = object()


def matches_q(expr: QExpr, attrs: Mapping[str, Any]) -> bool:
    """Whether an entity's attributes (internal form) satisfy a parsed q expression."""
    if isinstance(expr, And):
        return all(matches_q(part, attrs) for part in expr.parts)
    if isinstance(expr, Or):
        return any(matches_q(part, attrs) for part in expr.parts)
    if isinstance(expr, Exists):
        return any(_target(i, expr.path) is not _MISSING for i in _instances(attrs, expr.path))
    if isinstance(expr, NotExists):
        return not any(_target(i, expr.path) is not _MISSING for i in _instances(attrs, expr.path))
    negated = expr.op in ("!=", "!~=")
    for instance in _instances(attrs, expr.path):
        target = _target(instance, expr.path)
        if target is _MISSING:
            continue
        hit = any(
            _leaf(expr, candidate, instance)
            for candidate in _candidates(instance, target, expr.path)
        )
        if hit != negated:
            return True
    return False


def _instances(attrs: Mapping[str, Any], path: AttrPath) -> Iterator[Mapping[str, Any]]:
    instances = attrs.get(path.attr)
    if not isinstance(instances, list):
        return
    for instance in instances:
        current: Any = instance
        for sub in path.subattrs:
            current = current.get(sub) if isinstance(current, Mapping) else None
        if isinstance(current, Mapping):
            yield current


def value_member(instance: Mapping[str, Any]) -> str:
    kind = instance.get("type")
    return VALUE_MEMBER.get(kind, "value") if isinstance(kind, str) else "value"


def _target(instance: Mapping[str, Any], path: AttrPath) -> Any:
    if path.member is not None:
        return instance.get(path.member, _MISSING)
    node = instance.get(value_member(instance), _MISSING)
    for key in path.keys:
        if not isinstance(node, Mapping) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _candidates(instance: Mapping[str, Any], target: Any, path: AttrPath) -> Iterator[Any]:
    yield target
    if isinstance(target, list):
        yield from target
    if (
        path.member is None
        and not path.keys
        and instance.get("type") == "LanguageProperty"
        and isinstance(target, Mapping)
    ):
        for text in target.values():
            yield text
            if isinstance(text, list):
                yield from text


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(candidate: Any, op: str, literal: Scalar) -> bool:
    if isinstance(literal, bool):
        return isinstance(candidate, bool) and candidate is literal and op in ("==", "!=")
    if _is_number(literal):
        if not _is_number(candidate):
            return False
    elif not isinstance(candidate, str):
        return False
    if op in ("==", "!="):
        return bool(candidate == literal)
    if op == ">":
        return bool(candidate > literal)
    if op == ">=":
        return bool(candidate >= literal)
    if op == "<":
        return bool(candidate < literal)
    return bool(candidate <= literal)


def _leaf(expr: QExpr, candidate: Any, instance: Mapping[str, Any]) -> bool:
    """The positive form of a term (``!=`` as ``==``) for one candidate value."""
    vocab = instance.get("type") == "VocabProperty" and isinstance(candidate, str)
    if isinstance(expr, Comparison):
        if _compare(candidate, expr.op, expr.value):
            return True
        return vocab and expr.vocab is not None and candidate == expr.vocab
    if isinstance(expr, ValueList):
        if any(_compare(candidate, "==", value) for value in expr.values):
            return True
        return vocab and candidate in expr.vocab
    if isinstance(expr, Range):
        return _compare(candidate, ">=", expr.low) and _compare(candidate, "<=", expr.high)
    if isinstance(expr, Pattern):
        return (
            isinstance(candidate, str) and compile_regex(expr.pattern).search(candidate) is not None
        )
    return False
