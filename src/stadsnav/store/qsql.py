"""Compile parsed NGSI-LD `q` expressions (ngsild/qlang.py) to SQL for SQLite and PostgreSQL.

The result is a boolean SQL expression over the entity row aliased ``e`` (its ``doc`` column holds
the attributes in internal form: JSON text in SQLite, JSONB in PostgreSQL) and its parameters.
The semantics are those of ``qlang.matches_q``; the tests check that all three agree.

Every term becomes one ``EXISTS`` subquery that walks: the attribute's instances, then its
sub-attributes, then the target node (a member such as observedAt, or the value chosen by the
instance's type, then keys into it). The node's candidates are the node itself, the elements of
the node when it is an array and, for a LanguageProperty's map, its strings. Every literal goes
through a parameter; the SQL text holds no user input.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from typing import Any, Literal

from stadsnav.ngsild.errors import BadRequestData
from stadsnav.ngsild.qlang import (
    VALUE_MEMBER,
    And,
    AttrPath,
    Comparison,
    Exists,
    NotExists,
    Or,
    Pattern,
    QExpr,
    Range,
    Scalar,
    ValueList,
    compile_regex,
)

Dialect = Literal["sqlite", "postgres"]

_MARKER = re.compile("\x01(\\d+)\x02")
_SQL_OP = {"==": "=", "!=": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
_NEGATED = frozenset({"!=", "!~="})


def compile_q(expr: QExpr, dialect: Dialect) -> tuple[str, list[Any]]:
    """A SQL boolean expression for `expr` over the entity row ``e``, and its parameters.

    Placeholders are ``?`` for sqlite and ``%s`` for postgres (psycopg 3); the SQL contains no
    other ``%``.
    """
    if dialect not in ("sqlite", "postgres"):
        raise ValueError(f"unknown SQL dialect {dialect!r}")
    compiler: _Compiler = _SqliteCompiler() if dialect == "sqlite" else _PostgresCompiler()
    sql = compiler.expr(expr)
    placeholder = "?" if dialect == "sqlite" else "%s"
    params: list[Any] = []

    def place(match: re.Match[str]) -> str:
        params.append(compiler.values[int(match.group(1))])
        return placeholder

    return _MARKER.sub(place, sql), params


def register_sqlite_functions(conn: sqlite3.Connection) -> None:
    """Define REGEXP (``x REGEXP pattern``: a Python ``re`` search) on a SQLite connection."""
    conn.create_function("regexp", 2, _regexp, deterministic=True)


def _regexp(pattern: Any, value: Any) -> int:
    if not isinstance(pattern, str) or not isinstance(value, str):
        return 0
    try:
        compiled = compile_regex(pattern)
    except Exception:  # patterns are checked by the parser; never fail a query on one
        return 0
    return 1 if compiled.search(value) is not None else 0


def _value_case(type_sql: str) -> str:
    """SQL choosing the instance member that holds the value, from the instance's type."""
    whens = " ".join(f"WHEN '{kind}' THEN '{member}'" for kind, member in VALUE_MEMBER.items())
    return f"(CASE {type_sql} {whens} ELSE 'value' END)"


class _Compiler:
    """Shared structure; subclasses supply the dialect's JSON walking and tests."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._memo: dict[tuple[type, Any], str] = {}

    def param(self, value: Any) -> str:
        """A marker for a parameter; the same value reuses its marker."""
        key = (type(value), value)
        marker = self._memo.get(key)
        if marker is None:
            marker = f"\x01{len(self.values)}\x02"
            self.values.append(value)
            self._memo[key] = marker
        return marker

    def expr(self, expr: QExpr) -> str:
        if isinstance(expr, And):
            return "(" + " AND ".join(self.expr(part) for part in expr.parts) + ")"
        if isinstance(expr, Or):
            return "(" + " OR ".join(self.expr(part) for part in expr.parts) + ")"
        if isinstance(expr, Exists):
            return self.exists(expr.path, None)
        if isinstance(expr, NotExists):
            return "NOT " + self.exists(expr.path, None)
        if isinstance(expr, Comparison | ValueList | Range | Pattern):
            return self.exists(expr.path, expr)
        raise BadRequestData(f"Cannot compile q expression {expr!r:.100}")

    def exists(self, path: AttrPath, term: Comparison | ValueList | Range | Pattern | None) -> str:
        raise NotImplementedError

    # -- the leaf test on one candidate value ----------------------------------------------------

    def test(self, term: Comparison | ValueList | Range | Pattern, cand: Any, type_sql: str) -> str:
        """SQL true when the candidate matches the term's positive form."""
        vocab_ok = f"COALESCE({type_sql}, '') = 'VocabProperty'"
        if isinstance(term, Comparison):
            parts = [self.scalar(cand, _SQL_OP[term.op], term.value)]
            if term.vocab is not None:
                parts.append(self.vocab(cand, vocab_ok, [term.vocab]))
            return "(" + " OR ".join(parts) + ")"
        if isinstance(term, ValueList):
            numbers = [v for v in term.values if not isinstance(v, bool | str)]
            strings = [v for v in term.values if isinstance(v, str)]
            bools = sorted({v for v in term.values if isinstance(v, bool)})
            parts = []
            if numbers:
                parts.append(self.number_in(cand, numbers))
            if strings:
                parts.append(self.string_in(cand, strings))
            parts.extend(self.scalar(cand, "=", b) for b in bools)
            if term.vocab:
                parts.append(self.vocab(cand, vocab_ok, list(term.vocab)))
            return "(" + " OR ".join(parts) + ")"
        if isinstance(term, Range):
            return f"({self.scalar(cand, '>=', term.low)} AND {self.scalar(cand, '<=', term.high)})"
        return self.regex(cand, term.pattern)

    def scalar(self, cand: Any, op: str, value: Scalar) -> str:
        raise NotImplementedError

    def number_in(self, cand: Any, values: Sequence[Scalar]) -> str:
        raise NotImplementedError

    def string_in(self, cand: Any, values: list[str]) -> str:
        raise NotImplementedError

    def vocab(self, cand: Any, vocab_ok: str, values: list[str]) -> str:
        raise NotImplementedError

    def regex(self, cand: Any, pattern: str) -> str:
        raise NotImplementedError


def _number_text(value: Scalar) -> str:
    return repr(value)


class _SqliteCompiler(_Compiler):
    """JSON text walked with json_each; a candidate is a (type, value) pair of a json_each row."""

    def exists(self, path: AttrPath, term: Comparison | ValueList | Range | Pattern | None) -> str:
        attr_path = self.param('$."' + path.attr + '"')
        froms = [f"json_each(e.doc, {attr_path}) AS i0"]
        wheres = [f"json_type(e.doc, {attr_path}) = 'array'", "i0.type = 'object'"]
        inst = "i0"
        for level, sub in enumerate(path.subattrs, start=1):
            alias = f"i{level}"
            froms.append(f"json_each({_sqlite_object(inst)}) AS {alias}")
            wheres += [f"{alias}.key = {self.param(sub)}", f"{alias}.type = 'object'"]
            inst = alias
        type_sql = f"json_extract({inst}.value, '$.type')"
        froms.append(f"json_each({_sqlite_object(inst)}) AS n0")
        if path.member is not None:
            wheres.append(f"n0.key = {self.param(path.member)}")
        else:
            wheres.append(f"n0.key = {_value_case(type_sql)}")
        node = "n0"
        for level, key in enumerate(path.keys, start=1):
            alias = f"n{level}"
            froms.append(f"json_each({_sqlite_object(node)}) AS {alias}")
            wheres.append(f"{alias}.key = {self.param(key)}")
            node = alias
        if term is not None:
            language_map = path.member is None and not path.keys
            matched = self.node_test(term, node, type_sql, language_map)
            wheres.append(("NOT " if term.op in _NEGATED else "") + matched)
        return f"EXISTS (SELECT 1 FROM {', '.join(froms)} WHERE {' AND '.join(wheres)})"

    def node_test(
        self,
        term: Comparison | ValueList | Range | Pattern,
        node: str,
        type_sql: str,
        language_map: bool,
    ) -> str:
        def at(alias: str) -> str:
            return self.test(term, (f"{alias}.type", f"{alias}.value"), type_sql)

        parts = [
            at(node),
            f"EXISTS (SELECT 1 FROM json_each({_sqlite_array(node)}) AS x WHERE {at('x')})",
        ]
        if language_map:
            parts.append(
                f"(COALESCE({type_sql}, '') = 'LanguageProperty' AND EXISTS (SELECT 1 FROM "
                f"json_each({_sqlite_object(node)}) AS l WHERE {at('l')} OR EXISTS (SELECT 1 "
                f"FROM json_each({_sqlite_array('l')}) AS y WHERE {at('y')})))"
            )
        return "(" + " OR ".join(parts) + ")"

    def scalar(self, cand: Any, op: str, value: Scalar) -> str:
        kind, val = cand
        if isinstance(value, bool):
            return f"{kind} = '{'true' if value else 'false'}'"
        if isinstance(value, str):
            return f"({kind} = 'text' AND {val} {op} {self.param(value)})"
        return f"({kind} IN ('integer', 'real') AND {val} {op} {self.param(value)})"

    def number_in(self, cand: Any, values: Sequence[Scalar]) -> str:
        kind, val = cand
        markers = ", ".join(self.param(v) for v in values)
        return f"({kind} IN ('integer', 'real') AND {val} IN ({markers}))"

    def string_in(self, cand: Any, values: list[str]) -> str:
        kind, val = cand
        markers = ", ".join(self.param(v) for v in values)
        return f"({kind} = 'text' AND {val} IN ({markers}))"

    def vocab(self, cand: Any, vocab_ok: str, values: list[str]) -> str:
        kind, val = cand
        markers = ", ".join(self.param(v) for v in values)
        return f"({kind} = 'text' AND {vocab_ok} AND {val} IN ({markers}))"

    def regex(self, cand: Any, pattern: str) -> str:
        kind, val = cand
        return f"({kind} = 'text' AND {val} REGEXP {self.param(pattern)})"


def _sqlite_object(alias: str) -> str:
    """The JSON text of a json_each row if it is an object, else an empty object (never an
    error: json_each's value column holds raw text for strings)."""
    return f"CASE WHEN {alias}.type = 'object' THEN {alias}.value ELSE '{{}}' END"


def _sqlite_array(alias: str) -> str:
    return f"CASE WHEN {alias}.type = 'array' THEN {alias}.value ELSE '[]' END"


class _PostgresCompiler(_Compiler):
    """JSONB walked with -> and jsonb_array_elements; a candidate is a jsonb expression."""

    def exists(self, path: AttrPath, term: Comparison | ValueList | Range | Pattern | None) -> str:
        attr = f"e.doc -> {self.param(path.attr)}::text"
        froms = [
            f"jsonb_array_elements(CASE WHEN jsonb_typeof({attr}) = 'array' THEN {attr} "
            "ELSE '[]'::jsonb END) AS i0(v)"
        ]
        inst = "i0.v"
        for sub in path.subattrs:
            inst = f"({inst} -> {self.param(sub)}::text)"
        wheres = [f"jsonb_typeof({inst}) = 'object'"]
        type_sql = f"({inst} ->> 'type')"
        if path.member is not None:
            node = f"{inst} -> {self.param(path.member)}::text"
        else:
            node = f"{inst} -> {_value_case(type_sql)}"
        for key in path.keys:
            node = f"{node} -> {self.param(key)}::text"
        froms.append(f"LATERAL (SELECT {node} AS v) AS n")
        wheres.append("n.v IS NOT NULL")
        if term is not None:
            language_map = path.member is None and not path.keys
            matched = self.node_test(term, type_sql, language_map)
            wheres.append(("NOT " if term.op in _NEGATED else "") + matched)
        return f"EXISTS (SELECT 1 FROM {', '.join(froms)} WHERE {' AND '.join(wheres)})"

    def node_test(
        self, term: Comparison | ValueList | Range | Pattern, type_sql: str, language_map: bool
    ) -> str:
        selects = [
            "SELECT n.v",
            "SELECT x.c FROM jsonb_array_elements(CASE WHEN jsonb_typeof(n.v) = 'array' "
            "THEN n.v ELSE '[]'::jsonb END) AS x(c)",
        ]
        if language_map:
            texts = (
                f"jsonb_each(CASE WHEN COALESCE({type_sql}, '') = 'LanguageProperty' AND "
                "jsonb_typeof(n.v) = 'object' THEN n.v ELSE '{}'::jsonb END)"
            )
            selects += [
                f"SELECT l.c FROM {texts} AS l(k, c)",
                f"SELECT y.c FROM {texts} AS l(k, c), jsonb_array_elements(CASE WHEN "
                "jsonb_typeof(l.c) = 'array' THEN l.c ELSE '[]'::jsonb END) AS y(c)",
            ]
        union = " UNION ALL ".join(selects)
        matched = self.test(term, "cand.c", type_sql)
        return f"EXISTS (SELECT 1 FROM ({union}) AS cand(c) WHERE {matched})"

    def scalar(self, cand: Any, op: str, value: Scalar) -> str:
        if isinstance(value, bool):
            return f"({cand} = '{'true' if value else 'false'}'::jsonb)"
        if isinstance(value, str):
            return (
                f"(CASE WHEN jsonb_typeof({cand}) = 'string' THEN ({cand} #>> '{{}}') "
                f'COLLATE "C" {op} {self.param(value)}::text ELSE false END)'
            )
        return (
            f"(CASE WHEN jsonb_typeof({cand}) = 'number' THEN ({cand})::numeric {op} "
            f"{self.param(_number_text(value))}::numeric ELSE false END)"
        )

    def number_in(self, cand: Any, values: Sequence[Scalar]) -> str:
        markers = ", ".join(f"{self.param(_number_text(v))}::numeric" for v in values)
        return (
            f"(CASE WHEN jsonb_typeof({cand}) = 'number' THEN ({cand})::numeric IN ({markers}) "
            "ELSE false END)"
        )

    def string_in(self, cand: Any, values: list[str]) -> str:
        markers = ", ".join(f"{self.param(v)}::text" for v in values)
        return (
            f"(CASE WHEN jsonb_typeof({cand}) = 'string' THEN ({cand} #>> '{{}}') IN ({markers}) "
            "ELSE false END)"
        )

    def vocab(self, cand: Any, vocab_ok: str, values: list[str]) -> str:
        markers = ", ".join(f"{self.param(v)}::text" for v in values)
        return (
            f"(CASE WHEN jsonb_typeof({cand}) = 'string' AND {vocab_ok} THEN ({cand} #>> '{{}}') "
            f"IN ({markers}) ELSE false END)"
        )

    def regex(self, cand: Any, pattern: str) -> str:
        return (
            f"(CASE WHEN jsonb_typeof({cand}) = 'string' THEN ({cand} #>> '{{}}') ~ "
            f"{self.param(pattern)}::text ELSE false END)"
        )
