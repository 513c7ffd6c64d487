"""The temporal store on PostgreSQL: history partitioned by month of observedAt.

`history` is partitioned by RANGE (observed_at); a month's partition is made the first time a
row of that month is written (inside the write, under a savepoint: should it fail, the row goes
to the default partition, so a write never fails for it). Rows are keyed (tenant, entity,
attribute, observedAt, datasetId): one attribute's instances over a time range are one index
range in each month. Aggregation runs in SQL: each instance falls in its period by
width_bucket over the period edges of the answer (fixed lengths and calendar months alike), and
PostgreSQL writes each series' JSON text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from stadsnav.ngsild.entity import Instance
from stadsnav.ngsild.names import format_datetime, parse_datetime
from stadsnav.ngsild.temporal import (
    AggregatePage,
    AggregateSeries,
    Aggregation,
    HistoryScan,
    PeriodWindow,
    aggregated_json,
    is_number,
    period_window,
    value_of,
    whole_range,
)
from stadsnav.store.base import DEFAULT_TENANT, HistoryRow
from stadsnav.store.copytext import copy_json, copy_text
from stadsnav.store.temporal_sqlite import new_instance_id

Conn = AsyncConnection[TupleRow]
_TIME_COLUMN = {"observedAt": "observed_at", "createdAt": "created_at", "modifiedAt": "modified_at"}
STAGE = "stadsnav_history_stage6"
STAGE_DDL = (
    f'CREATE TEMP TABLE IF NOT EXISTS {STAGE} (entity_id TEXT COLLATE "C" NOT NULL, '
    'attr TEXT COLLATE "C" NOT NULL, observed_at TIMESTAMPTZ NOT NULL, dataset_id TEXT NOT NULL, '
    "instance_id TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL, "
    "modified_at TIMESTAMPTZ NOT NULL, num DOUBLE PRECISION, instance JSONB NOT NULL) "
    "ON COMMIT DELETE ROWS"
)
_COLUMNS = "observed_at, dataset_id, instance_id, created_at, modified_at, num, instance"
_COPY_STAGE = f"COPY {STAGE} (entity_id, attr, {_COLUMNS}) FROM STDIN"
_COPY_HISTORY = f"COPY history (tenant, entity_id, attr, {_COLUMNS}) FROM STDIN"
_ADD = (
    f"INSERT INTO history (tenant, entity_id, attr, {_COLUMNS}) "
    f"SELECT %s, s.* FROM {STAGE} s ON CONFLICT DO NOTHING"
)
_ENTITIES = (
    "INSERT INTO history_entities AS he (tenant, entity_id, entity_type) "
    "SELECT %s, u.* FROM unnest(%s::text[], %s::text[]) AS u ON CONFLICT (tenant, entity_id) "
    "DO UPDATE SET entity_type = EXCLUDED.entity_type "
    "WHERE EXCLUDED.entity_type <> '' AND EXCLUDED.entity_type <> he.entity_type"
)
_PARTITION = re.compile(r"^history_(\d{4})_(\d{2})$")
# The months whose partition is known to exist, per database.
_known_months: set[tuple[str, str]] = set()


def copy_line(row: HistoryRow, tenant: str | None = None) -> bytes:
    """A history row in COPY's text format (with the tenant first when given)."""

    instance = row.instance
    value = value_of(instance)
    fields = [
        copy_text(row.entity_id),
        copy_text(row.attr),
        row.observed_at.encode(),
        copy_text(row.dataset_id or ""),
        copy_text(row.instance_id or new_instance_id()),
        str(instance.get("createdAt", row.observed_at)).encode(),
        str(instance.get("modifiedAt", row.observed_at)).encode(),
        repr(float(value)).encode() if is_number(value) else b"\\N",
        copy_json(instance),
    ]
    if tenant is not None:
        fields.insert(0, copy_text(tenant))
    return b"\t".join(fields) + b"\n"


async def ensure_partitions(conn: Conn, months: set[str]) -> None:
    """Make the monthly partitions (months as YYYY-MM) that may not exist yet."""
    database = conn.info.dbname
    for month in sorted(months):
        if (database, month) in _known_months:
            continue
        year, number = int(month[:4]), int(month[5:7])
        start = f"{year:04d}-{number:02d}-01T00:00:00Z"
        following = (year + 1, 1) if number == 12 else (year, number + 1)
        end = f"{following[0]:04d}-{following[1]:02d}-01T00:00:00Z"
        name = f"history_{year:04d}_{number:02d}"
        try:
            async with conn.transaction():
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF history "
                    f"FOR VALUES FROM ('{start}') TO ('{end}')"
                )
        except psycopg.Error:
            # Rows of that month already in the default partition, or a concurrent maker:
            # the rows go to whichever partition holds their month now.
            continue
        _known_months.add((database, month))


async def add_history(
    conn: Conn, tenant: str, rows: list[HistoryRow], *, fresh: bool = False
) -> None:
    """Append attribute instances; a row already there (same time and datasetId) stays.
    `fresh` rows are known not to be there yet and are copied straight into the table."""
    if not rows:
        return
    if tenant != DEFAULT_TENANT:
        await conn.execute(
            "INSERT INTO tenants (name) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,)
        )
    await ensure_partitions(conn, {row.observed_at[:7] for row in rows})
    async with conn.cursor() as cursor:
        if fresh:
            async with cursor.copy(_COPY_HISTORY) as copy:
                for start in range(0, len(rows), 10_000):
                    chunk = rows[start : start + 10_000]
                    await copy.write(b"".join(copy_line(r, tenant) for r in chunk))
        else:
            async with cursor.copy(_COPY_STAGE) as copy:
                await copy.write(b"".join(copy_line(r) for r in rows))
            await cursor.execute(_ADD, (tenant,))
            await cursor.execute(f"DELETE FROM {STAGE}")
    types: dict[str, str] = {}
    for row in rows:
        if row.entity_type or row.entity_id not in types:
            types[row.entity_id] = row.entity_type or types.get(row.entity_id, "")
    await conn.execute(_ENTITIES, (tenant, list(types), list(types.values())))


def _row_filter(scan: HistoryScan, params: list[Any]) -> str:
    where = ""
    if scan.attrs is not None:
        where += " AND h.attr = ANY(%s::text[])"
        params.append(list(scan.attrs))
    if scan.datasets is not None:
        where += " AND h.dataset_id = ANY(%s::text[])"
        params.append(["" if d == "@none" else d for d in scan.datasets])
    column = "h." + _TIME_COLUMN[scan.time.timeproperty]
    if scan.time.timerel == "before":
        where += f" AND {column} < %s::timestamptz"
        params.append(scan.time.time_at)
    elif scan.time.timerel == "after":
        where += f" AND {column} >= %s::timestamptz"
        params.append(scan.time.time_at)
    elif scan.time.timerel == "between":
        where += f" AND {column} >= %s::timestamptz AND {column} < %s::timestamptz"
        params += [scan.time.time_at, scan.time.end_time_at]
    return where


async def history_entities(
    conn: Conn, tenant: str, scan: HistoryScan, limit: int, offset: int, count: bool
) -> tuple[list[tuple[str, str]], int | None]:
    params: list[Any] = [tenant]
    where = "he.tenant = %s"
    if scan.ids is not None:
        where += " AND he.entity_id = ANY(%s::text[])"
        params.append(list(scan.ids))
    if scan.id_pattern is not None:
        where += " AND he.entity_id ~ %s"
        params.append(scan.id_pattern)
    if scan.types is not None:
        where += " AND he.entity_type = ANY(%s::text[])"
        params.append(sorted(scan.types))
    where += (
        " AND EXISTS (SELECT 1 FROM history h WHERE h.tenant = he.tenant "
        f"AND h.entity_id = he.entity_id{_row_filter(scan, params)})"
    )
    cursor = await conn.execute(
        f"SELECT he.entity_id, he.entity_type FROM history_entities he WHERE {where} "
        "ORDER BY he.entity_id LIMIT %s OFFSET %s",
        (*params, limit, offset),
    )
    found = [(str(i), str(t)) for i, t in await cursor.fetchall()]
    total = None
    if count:
        cursor = await conn.execute(
            f"SELECT count(*) FROM history_entities he WHERE {where}", params
        )
        row = await cursor.fetchone()
        total = int(row[0]) if row else 0
    return found, total


async def _pairs(conn: Conn, tenant: str, scan: HistoryScan, ids: list[str]) -> list[list[str]]:
    """The (entity, attribute) pairs to read: every attribute asked for, else those stored,
    found by skipping from one attribute to the next in the key (a few index probes per
    attribute, not a scan of the entity's whole history)."""
    if scan.attrs is not None:
        return [[e for e in ids for _ in scan.attrs], [a for _ in ids for a in scan.attrs]]
    cursor = await conn.execute(
        "WITH RECURSIVE s(e, a) AS ("
        "SELECT i.e, (SELECT min(h.attr) FROM history h WHERE h.tenant = %s "
        "AND h.entity_id = i.e) FROM unnest(%s::text[]) AS i(e) "
        "UNION ALL SELECT s.e, (SELECT min(h.attr) FROM history h WHERE h.tenant = %s "
        "AND h.entity_id = s.e AND h.attr > s.a) FROM s WHERE s.a IS NOT NULL) "
        "SELECT e, a FROM s WHERE a IS NOT NULL",
        (tenant, ids, tenant),
    )
    rows = await cursor.fetchall()
    return [[str(r[0]) for r in rows], [str(r[1]) for r in rows]]


async def history_instances(
    conn: Conn, tenant: str, scan: HistoryScan, ids: list[str], most: int, *, newest: bool
) -> list[HistoryRow]:
    entity_ids, attrs = await _pairs(conn, tenant, scan, ids)
    if not entity_ids:
        return []
    params: list[Any] = [entity_ids, attrs, tenant]
    where = _row_filter(scan, params)
    column = "h." + _TIME_COLUMN[scan.time.timeproperty]
    # The key's order (observedAt, then datasetId) read forwards or backwards: no sort.
    order = "DESC" if newest else "ASC"
    cursor = await conn.execute(
        "SELECT x.entity_id, x.attr, x.dataset_id, x.observed_at, x.instance_id, x.instance "
        "FROM unnest(%s::text[], %s::text[]) AS p(entity_id, attr) CROSS JOIN LATERAL "
        "(SELECT h.entity_id, h.attr, h.dataset_id, h.observed_at, h.instance_id, h.instance, "
        f"{column} AS t FROM history h WHERE h.tenant = %s AND h.entity_id = p.entity_id "
        f"AND h.attr = p.attr{where} ORDER BY {column} {order}, h.dataset_id {order} "
        "LIMIT %s) x ORDER BY x.entity_id, x.attr, x.t, x.dataset_id",
        (*params, most),
    )
    return [
        HistoryRow(e, a, d or None, format_datetime(o), i, instance_id=k)
        for e, a, d, o, k, i in await cursor.fetchall()
    ]


# The value of an instance of any attribute type, for distinctCount.
_ANY_VALUE = (
    "coalesce(h.instance -> 'value', h.instance -> 'object', h.instance -> 'languageMap', "
    "h.instance -> 'vocab', h.instance -> 'valueList', h.instance -> 'objectList', "
    "h.instance -> 'json')"
)
_TEXT = "h.instance ->> 'value' COLLATE \"C\""
_STRING = "FILTER (WHERE h.num IS NULL AND jsonb_typeof(h.instance -> 'value') = 'string')"


def _aggregates(methods: set[str], strings: bool = True) -> str:
    """Per group: n, numbers, then what the methods need (NULL where not asked). Only
    distinctCount and min/max of text (`strings`) read the instance itself; the rest read the
    number, which the key's index carries (an index-only scan)."""
    if not strings:
        methods = methods - {"min", "max"} | {m + "-numbers" for m in methods & {"min", "max"}}
    parts = [
        "count(*) AS n",
        "count(h.num) AS nums",
        "sum(h.num) AS total" if "sum" in methods else "NULL::float8 AS total",
        "avg(h.num) AS mean" if "avg" in methods else "NULL::float8 AS mean",
        "min(h.num) AS low" if methods & {"min", "min-numbers"} else "NULL::float8 AS low",
        "max(h.num) AS high" if methods & {"max", "max-numbers"} else "NULL::float8 AS high",
        "stddev_samp(h.num) AS spread" if "stddev" in methods else "NULL::float8 AS spread",
        "sum(h.num * h.num) AS squares" if "sumsq" in methods else "NULL::float8 AS squares",
        f"count(DISTINCT {_ANY_VALUE}) AS distinct_n"
        if "distinctCount" in methods
        else "0::bigint AS distinct_n",
        f"min({_TEXT}) {_STRING} AS low_text" if "min" in methods else "NULL::text AS low_text",
        f"max({_TEXT}) {_STRING} AS high_text" if "max" in methods else "NULL::text AS high_text",
    ]
    return ", ".join(parts)


# Each method's value in a group `g` as JSON text; NULL where the method does not apply.
_VALUE_JSON = {
    "totalCount": "g.n::text",
    "distinctCount": "g.distinct_n::text",
    "sum": "g.total::text",
    "avg": "g.mean::text",
    "min": "coalesce(g.low::text, to_json(g.low_text)::text)",
    "max": "coalesce(g.high::text, to_json(g.high_text)::text)",
    "stddev": "(CASE WHEN g.nums > 0 THEN coalesce(g.spread, 0) END)::text",
    "sumsq": "g.squares::text",
}


async def history_aggregate(
    conn: Conn, tenant: str, scan: HistoryScan, ids: list[str], aggregation: Aggregation
) -> AggregatePage:
    """Aggregated values in SQL, at most aggregation.most_periods periods per attribute: the
    periods are counted from the one holding the first selected instance; each series' JSON
    text is made by PostgreSQL."""
    if not ids:
        return AggregatePage([])
    entity_ids, attrs = await _pairs(conn, tenant, scan, ids)
    if not entity_ids:
        return AggregatePage([])
    if aggregation.period.is_zero:
        series = await _whole_range(conn, tenant, scan, entity_ids, attrs, aggregation)
        return AggregatePage(series)
    first = await _first_time(conn, tenant, scan, entity_ids, attrs)
    if first is None:
        return AggregatePage([])
    window = period_window(scan.time, aggregation.period, first, aggregation.most_periods)
    methods = aggregation.methods
    found = await _periods(conn, tenant, scan, entity_ids, attrs, methods, window, False)
    if {"min", "max"} & set(methods) and any(row[-1] for row in found):
        # Some periods hold values other than numbers: min and max of text need the instances.
        found = await _periods(conn, tenant, scan, entity_ids, attrs, methods, window, True)
    kinds = await _kinds(conn, tenant, [(str(r[0]), str(r[1])) for r in found])
    series = [
        AggregateSeries(
            e,
            a,
            d or None,
            kinds.get((e, a), "Property"),
            dict(zip(methods, texts[:-1], strict=True)),
        )
        for e, a, d, *texts in found
    ]
    cut = None
    if window.more_after is not None and await _more(
        conn, tenant, scan, entity_ids, attrs, window.more_after
    ):
        cut = (window.range_start, window.stop)
    return AggregatePage(series, cut)


async def _periods(
    conn: Conn,
    tenant: str,
    scan: HistoryScan,
    entity_ids: list[str],
    attrs: list[str],
    methods: tuple[str, ...],
    window: PeriodWindow,
    strings: bool,
) -> list[Any]:
    """Per series (entity, attribute, datasetId): each method's JSON text, then how many
    values were not numbers."""
    column = "h." + _TIME_COLUMN[scan.time.timeproperty]
    params: list[Any] = [window.texts[:-1], window.texts[1:], entity_ids, attrs]
    params += [window.edges, tenant]
    where = _row_filter(scan, params)
    params += [window.edges[0], window.edges[-1]]
    triples = ", ".join(
        f"coalesce('[' || string_agg('[' || {_VALUE_JSON[m]} || ',\"' || w.s || '\",\"' "
        "|| w.e || '\"]', ',' ORDER BY g.i) || ']', '[]')"
        for m in methods
    )
    # Each series read by its key in time order (an index-only scan when the methods need
    # only the number), grouped by period number (width_bucket over the answer's edges) and
    # written as JSON with the edges' text, one series at a time.
    sql = (
        "WITH w AS MATERIALIZED (SELECT * FROM unnest(%s::text[], %s::text[]) "
        "WITH ORDINALITY AS w(s, e, i)) "
        "SELECT p.e, p.a, x.* FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS p(e, a, n) "
        f"CROSS JOIN LATERAL (SELECT g.dataset_id, {triples}, sum(g.n - g.nums) FROM ("
        f"SELECT h.dataset_id, width_bucket({column}, %s::timestamptz[]) AS i, "
        f"{_aggregates(set(methods), strings)} FROM history h WHERE h.tenant = %s "
        f"AND h.entity_id = p.e AND h.attr = p.a{where} AND {column} >= %s::timestamptz "
        f"AND {column} < %s::timestamptz GROUP BY 1, 2) g JOIN w ON w.i = g.i GROUP BY 1) x "
        "ORDER BY p.n, x.dataset_id"
    )
    async with conn.transaction():
        # Compiling this query costs more than it saves.
        await conn.execute("SET LOCAL jit = off")
        cursor = await conn.execute(sql, params)
        return await cursor.fetchall()


async def _whole_range(
    conn: Conn,
    tenant: str,
    scan: HistoryScan,
    entity_ids: list[str],
    attrs: list[str],
    aggregation: Aggregation,
) -> list[AggregateSeries]:
    """One period per series (no aggrPeriodDuration): the query's range, closed by the first
    or last instance where it is open."""
    column = "h." + _TIME_COLUMN[scan.time.timeproperty]
    params: list[Any] = [tenant, entity_ids, attrs]
    where = _row_filter(scan, params)
    methods = set(aggregation.methods)
    found: list[Any] = []
    for strings in (False, True):
        cursor = await conn.execute(
            f"SELECT h.entity_id, h.attr, h.dataset_id, {_aggregates(methods, strings)}, "
            f"min({column}), max({column}) FROM history h WHERE h.tenant = %s "
            "AND (h.entity_id, h.attr) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
            f"{where} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            params,
        )
        found = await cursor.fetchall()
        # min and max of text need the instances: only when some values are not numbers.
        if not {"min", "max"} & methods or all(row[3] == row[4] for row in found):
            break
    kinds = await _kinds(conn, tenant, [(str(r[0]), str(r[1])) for r in found])
    series = []
    for row in found:
        begin, end = whole_range(scan.time, format_datetime(row[14]), format_datetime(row[15]))
        results = {}
        for method in aggregation.methods:
            value = _result(method, row)
            results[method] = aggregated_json([] if value is None else [[value, begin, end]])
        entity_id, attr = str(row[0]), str(row[1])
        kind = kinds.get((entity_id, attr), "Property")
        series.append(AggregateSeries(entity_id, attr, row[2] or None, kind, results))
    return series


def _result(method: str, row: Any) -> Any:
    """A method's value from a row of _aggregates (from its fourth column)."""
    n, nums, total, mean, low, high, spread, squares, distinct, low_text, high_text = row[3:14]
    if method == "totalCount":
        return int(n)
    if method == "distinctCount":
        return int(distinct)
    if method in ("min", "max"):
        if nums:
            return float(low if method == "min" else high)
        return low_text if method == "min" else high_text
    if not nums:
        return None
    if method == "sum":
        return float(total)
    if method == "avg":
        return float(mean)
    if method == "sumsq":
        return float(squares)
    return float(spread) if spread is not None else 0.0


async def _first_time(
    conn: Conn, tenant: str, scan: HistoryScan, entity_ids: list[str], attrs: list[str]
) -> datetime | None:
    """The earliest time of a selected instance (one index probe per series)."""
    column = "h." + _TIME_COLUMN[scan.time.timeproperty]
    params: list[Any] = [entity_ids, attrs, tenant]
    where = _row_filter(scan, params)
    cursor = await conn.execute(
        "SELECT min(x.t) FROM unnest(%s::text[], %s::text[]) AS p(e, a) CROSS JOIN LATERAL "
        f"(SELECT {column} AS t FROM history h WHERE h.tenant = %s AND h.entity_id = p.e "
        f"AND h.attr = p.a{where} ORDER BY {column} LIMIT 1) x",
        params,
    )
    row = await cursor.fetchone()
    return None if row is None or row[0] is None else row[0]


async def _more(
    conn: Conn,
    tenant: str,
    scan: HistoryScan,
    entity_ids: list[str],
    attrs: list[str],
    after: str,
) -> bool:
    """Whether a selected instance lies at or after `after`."""
    column = "h." + _TIME_COLUMN[scan.time.timeproperty]
    params: list[Any] = [entity_ids, attrs, tenant]
    where = _row_filter(scan, params)
    cursor = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM unnest(%s::text[], %s::text[]) AS p(e, a) "
        "CROSS JOIN LATERAL (SELECT 1 FROM history h WHERE h.tenant = %s "
        f"AND h.entity_id = p.e AND h.attr = p.a{where} AND {column} >= %s::timestamptz "
        "LIMIT 1) x)",
        (*params, after),
    )
    row = await cursor.fetchone()
    return bool(row and row[0])


async def _kinds(
    conn: Conn, tenant: str, series: list[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """The attribute type of each (entity, attribute), from its latest instance."""
    pairs = list(dict.fromkeys(series))
    if not pairs:
        return {}
    cursor = await conn.execute(
        "SELECT p.e, p.a, x.kind FROM unnest(%s::text[], %s::text[]) AS p(e, a) "
        "CROSS JOIN LATERAL (SELECT h.instance ->> 'type' AS kind FROM history h "
        "WHERE h.tenant = %s AND h.entity_id = p.e AND h.attr = p.a "
        "ORDER BY h.observed_at DESC, h.dataset_id DESC LIMIT 1) x",
        ([e for e, _ in pairs], [a for _, a in pairs], tenant),
    )
    return {(str(e), str(a)): str(k or "Property") for e, a, k in await cursor.fetchall()}


async def history_exists(conn: Conn, tenant: str, entity_id: str) -> bool:
    cursor = await conn.execute(
        "SELECT 1 FROM history WHERE tenant = %s AND entity_id = %s LIMIT 1", (tenant, entity_id)
    )
    return await cursor.fetchone() is not None


async def history_type(conn: Conn, tenant: str, entity_id: str) -> str | None:
    cursor = await conn.execute(
        "SELECT entity_type FROM history_entities WHERE tenant = %s AND entity_id = %s",
        (tenant, entity_id),
    )
    row = await cursor.fetchone()
    return None if row is None else str(row[0])


async def delete_history(
    conn: Conn,
    tenant: str,
    entity_id: str,
    attr: str | None,
    dataset_id: str | None,
    every_dataset: bool,
) -> int:
    sql = "DELETE FROM history WHERE tenant = %s AND entity_id = %s"
    params: list[Any] = [tenant, entity_id]
    if attr is not None:
        sql += " AND attr = %s"
        params.append(attr)
        if not every_dataset:
            sql += " AND dataset_id = %s"
            params.append(dataset_id or "")
    cursor = await conn.execute(sql, params)
    if attr is None:
        await conn.execute(
            "DELETE FROM history_entities WHERE tenant = %s AND entity_id = %s",
            (tenant, entity_id),
        )
    return cursor.rowcount


async def change_history_instance(
    conn: Conn,
    tenant: str,
    entity_id: str,
    attr: str,
    instance_id: str,
    change: Callable[[Instance], Instance] | None,
) -> bool:
    cursor = await conn.execute(
        "DELETE FROM history WHERE tenant = %s AND entity_id = %s AND attr = %s "
        "AND instance_id = %s RETURNING observed_at, dataset_id, instance",
        (tenant, entity_id, attr, instance_id),
    )
    found = await cursor.fetchone()
    if found is None:
        return False
    if change is not None:
        instance = change(found[2])
        observed = instance.get("observedAt", instance.get("modifiedAt"))
        observed = observed or format_datetime(found[0])
        row = HistoryRow(entity_id, attr, found[1] or None, observed, instance, "", instance_id)
        await ensure_partitions(conn, {observed[:7]})
        await conn.execute(
            f"INSERT INTO history (tenant, entity_id, attr, {_COLUMNS}) VALUES "
            "(%s, %s, %s, %s::timestamptz, %s, %s, %s::timestamptz, %s::timestamptz, %s, %s) "
            "ON CONFLICT (tenant, entity_id, attr, observed_at, dataset_id) DO UPDATE SET "
            "instance_id = EXCLUDED.instance_id, created_at = EXCLUDED.created_at, "
            "modified_at = EXCLUDED.modified_at, num = EXCLUDED.num, instance = EXCLUDED.instance",
            _values(tenant, row),
        )
    return True


def _values(tenant: str, row: HistoryRow) -> tuple[Any, ...]:
    value = value_of(row.instance)
    return (
        tenant,
        row.entity_id,
        row.attr,
        row.observed_at,
        row.dataset_id or "",
        row.instance_id,
        row.instance.get("createdAt", row.observed_at),
        row.instance.get("modifiedAt", row.observed_at),
        float(value) if is_number(value) else None,
        Jsonb(row.instance),
    )


async def expire_history(
    conn: Conn,
    before: str,
    types: frozenset[str] | None,
    keep: frozenset[str],
    most_entities: int,
    after_entity: tuple[str, str],
) -> tuple[int, tuple[str, str] | None]:
    params: list[Any] = [*after_entity]
    sql = "SELECT tenant, entity_id FROM history_entities WHERE (tenant, entity_id) > (%s, %s)"
    if types is not None:
        sql += " AND entity_type = ANY(%s::text[])"
        params.append(sorted(types))
    if keep:
        sql += " AND NOT entity_type = ANY(%s::text[])"
        params.append(sorted(keep))
    cursor = await conn.execute(
        sql + " ORDER BY tenant, entity_id LIMIT %s", (*params, most_entities)
    )
    chosen = [(str(t), str(e)) for t, e in await cursor.fetchall()]
    if not chosen:
        return 0, None
    cursor = await conn.execute(
        "DELETE FROM history h USING unnest(%s::text[], %s::text[]) AS c(tenant, entity_id) "
        "WHERE h.tenant = c.tenant AND h.entity_id = c.entity_id "
        "AND h.observed_at < %s::timestamptz",
        ([t for t, _ in chosen], [e for _, e in chosen], before),
    )
    following = chosen[-1] if len(chosen) == most_entities else None
    return cursor.rowcount, following


async def drop_partitions(conn: Conn, before: str) -> int:
    """Drop the monthly partitions wholly older than `before`; returns how many."""
    cursor = await conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'history'::regclass"
    )
    limit = parse_datetime(before, "time")
    dropped = 0
    for (name,) in await cursor.fetchall():
        match = _PARTITION.match(str(name))
        if match is None:
            continue
        year, month = int(match.group(1)), int(match.group(2))
        end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
        if end <= limit:
            await conn.execute(f"DROP TABLE IF EXISTS {name}")
            _known_months.discard((conn.info.dbname, f"{year:04d}-{month:02d}"))
            dropped += 1
    return dropped
