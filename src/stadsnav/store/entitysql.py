"""Compilation of an EntityQuery to a SQL WHERE clause, for either backend's dialect."""

from __future__ import annotations

from typing import Any, Literal

from stadsnav.ngsild.query import EntityQuery, TypeAnd, TypeExpr, TypeName
from stadsnav.store.geosql import compile_geo
from stadsnav.store.qsql import compile_q

Dialect = Literal["sqlite", "postgres"]


def placeholder(dialect: Dialect) -> str:
    return "?" if dialect == "sqlite" else "%s"


def compile_where(
    query: EntityQuery, tenant: str, now: str, dialect: Dialect
) -> tuple[str, list[Any]]:
    """The WHERE clause (without the keyword) selecting the query's entities from `entities e`."""
    p = placeholder(dialect)
    # With a geo-query on SQLite the R*Tree is the most selective start: the unary + keeps the
    # planner from walking the (tenant, id) index instead, and types are then checked per row.
    geo_first = dialect == "sqlite" and query.geo is not None
    tenant_clause = f"+e.tenant = {p}" if geo_first else f"e.tenant = {p}"
    clauses = [tenant_clause, f"(e.expires_at IS NULL OR e.expires_at > {p})"]
    params: list[Any] = [tenant, now]
    if query.ids is not None:
        clauses.append(f"e.id IN ({', '.join(p for _ in query.ids)})")
        params.extend(query.ids)
    if query.id_pattern is not None:
        if dialect == "sqlite":
            clauses.append(f"stadsnav_regexp({p}, e.id)")
        else:
            clauses.append(f"e.id ~ {p}")
        params.append(query.id_pattern)
    if query.types is not None:
        sql, more = _types(query.types, tenant, dialect, per_row=geo_first)
        clauses.append(sql)
        params.extend(more)
    if query.attrs is not None:
        marks = ", ".join(p for _ in query.attrs)
        clauses.append(
            f"e.attrset IN (SELECT m.attrset FROM attr_set_members m WHERE m.attr IN ({marks}))"
        )
        params.extend(query.attrs)
    if query.scope is not None:
        sql, more = _scopes(query.scope, dialect)
        clauses.append(sql)
        params.extend(more)
    if query.q is not None:
        sql, more = compile_q(query.q, dialect)
        clauses.append(f"({sql})")
        params.extend(more)
    if query.geo is not None:
        sql, more = compile_geo(query.geo, dialect)
        clauses.append(f"({sql})")
        params.extend(more)
    return " AND ".join(clauses), params


def _types(
    expr: TypeExpr, tenant: str, dialect: Dialect, *, per_row: bool
) -> tuple[str, list[Any]]:
    p = placeholder(dialect)
    if isinstance(expr, TypeName):
        if dialect == "postgres":
            return f"e.types @> ARRAY[{p}]::text[]", [expr.iri]
        if per_row:
            return (
                f"EXISTS (SELECT 1 FROM entity_types t WHERE t.entity = e.pk AND t.type = {p})",
                [expr.iri],
            )
        return (
            f"e.pk IN (SELECT t.entity FROM entity_types t WHERE t.tenant = {p} AND t.type = {p})",
            [tenant, expr.iri],
        )
    joiner = " AND " if isinstance(expr, TypeAnd) else " OR "
    parts: list[str] = []
    params: list[Any] = []
    for part in expr.parts:
        sql, more = _types(part, tenant, dialect, per_row=per_row)
        parts.append(sql)
        params.extend(more)
    return "(" + joiner.join(parts) + ")", params


def _scopes(scopes: tuple[tuple[str, ...], ...], dialect: Dialect) -> tuple[str, list[Any]]:
    """scopeQ: any alternative whose every pattern matches one of the entity's scopes."""
    p = placeholder(dialect)
    matches = f"stadsnav_regexp({p}, s.value)" if dialect == "sqlite" else f"s.value ~ {p}"
    each = (
        f"EXISTS (SELECT 1 FROM json_each(e.scopes) s WHERE {matches})"
        if dialect == "sqlite"
        else f"EXISTS (SELECT 1 FROM jsonb_array_elements_text(e.scopes) s(value) WHERE {matches})"
    )
    alternatives: list[str] = []
    params: list[Any] = []
    for patterns in scopes:
        alternatives.append("(" + " AND ".join(each for _ in patterns) + ")")
        params.extend(patterns)
    return "(" + " OR ".join(alternatives) + ")", params
