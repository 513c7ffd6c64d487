"""The temporal store on SQLite: history rows written, read, aggregated and expired.

Functions take the connection of the thread they run on (the writer's for writes). Rows are
keyed (tenant, entity, attribute, observedAt, datasetId), so one attribute's instances are read
in time order; aggregation over periods of whole seconds is grouped in SQL, anything else
runs in Python (ngsild/temporal.py), with the results PostgreSQL computes.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Callable
from typing import Any

import orjson

from stadsnav.ngsild.entity import Instance
from stadsnav.ngsild.names import format_datetime, parse_datetime
from stadsnav.ngsild.temporal import (
    AggregatePage,
    AggregateSeries,
    Aggregation,
    HistoryScan,
    PeriodWindow,
    aggregate_series,
    aggregated_json,
    instance_time,
    is_number,
    period_window,
    value_of,
)
from stadsnav.store.base import DEFAULT_TENANT, HistoryRow

_TIME_COLUMN = {"observedAt": "observed_at", "createdAt": "created_at", "modifiedAt": "modified_at"}
_ROW = "h.entity_id, h.attr, h.dataset_id, h.observed_at, h.instance_id, h.instance"


# Instance ids are opaque: a random prefix per process and a counter make them unique at a
# fraction of a uuid4's cost, which showed in every history row written.
_INSTANCE_PREFIX = f"urn:ngsi-ld:Instance:{os.urandom(8).hex()}-"
_instance_numbers = itertools.count(1)


def new_instance_id() -> str:
    return f"{_INSTANCE_PREFIX}{next(_instance_numbers):x}"


def history_values(tenant: str, row: HistoryRow) -> tuple[Any, ...]:
    """The column values of a history row (its instance id made here when it has none)."""
    instance = row.instance
    value = value_of(instance)
    return (
        tenant,
        row.entity_id,
        row.attr,
        row.observed_at,
        row.dataset_id or "",
        row.instance_id or new_instance_id(),
        instance.get("createdAt", row.observed_at),
        instance.get("modifiedAt", row.observed_at),
        float(value) if is_number(value) else None,
        orjson.dumps(instance).decode(),
    )


def add_history(conn: sqlite3.Connection, tenant: str, rows: list[HistoryRow]) -> None:
    """Append attribute instances; a row already there (same time and datasetId) stays."""
    if not rows:
        return
    if tenant != DEFAULT_TENANT:
        conn.execute(
            "INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?, ?)",
            (tenant, rows[0].instance.get("modifiedAt", rows[0].observed_at)),
        )
    conn.executemany(
        "INSERT OR IGNORE INTO history (tenant, entity_id, attr, observed_at, dataset_id, "
        "instance_id, created_at, modified_at, num, instance) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [history_values(tenant, row) for row in rows],
    )
    types: dict[str, str] = {}
    for row in rows:
        if row.entity_type or row.entity_id not in types:
            types[row.entity_id] = row.entity_type or types.get(row.entity_id, "")
    conn.executemany(
        "INSERT INTO history_entities (tenant, entity_id, entity_type) VALUES (?, ?, ?) "
        "ON CONFLICT (tenant, entity_id) DO UPDATE SET entity_type = excluded.entity_type "
        "WHERE excluded.entity_type != '' AND excluded.entity_type != entity_type",
        [(tenant, entity_id, kind) for entity_id, kind in types.items()],
    )


def _row_filter(scan: HistoryScan, params: list[Any]) -> str:
    """Conditions on history rows `h` by attributes, datasets and time."""
    where = ""
    if scan.attrs is not None:
        where += " AND h.attr IN (SELECT value FROM json_each(?))"
        params.append(orjson.dumps(list(scan.attrs)).decode())
    if scan.datasets is not None:
        where += " AND h.dataset_id IN (SELECT value FROM json_each(?))"
        params.append(orjson.dumps(["" if d == "@none" else d for d in scan.datasets]).decode())
    column = "h." + _TIME_COLUMN[scan.time.timeproperty]
    if scan.time.timerel == "before":
        where += f" AND {column} < ?"
        params.append(scan.time.time_at)
    elif scan.time.timerel == "after":
        where += f" AND {column} >= ?"
        params.append(scan.time.time_at)
    elif scan.time.timerel == "between":
        where += f" AND {column} >= ? AND {column} < ?"
        params += [scan.time.time_at, scan.time.end_time_at]
    return where


def history_entities(
    conn: sqlite3.Connection,
    tenant: str,
    scan: HistoryScan,
    limit: int,
    offset: int,
    count: bool,
) -> tuple[list[tuple[str, str]], int | None]:
    """The (id, type) of entities with history rows the scan selects, by id; with a count."""
    params: list[Any] = [tenant]
    where = "he.tenant = ?"
    if scan.ids is not None:
        where += " AND he.entity_id IN (SELECT value FROM json_each(?))"
        params.append(orjson.dumps(list(scan.ids)).decode())
    if scan.id_pattern is not None:
        where += " AND stadsnav_regexp(?, he.entity_id)"
        params.append(scan.id_pattern)
    if scan.types is not None:
        where += " AND he.entity_type IN (SELECT value FROM json_each(?))"
        params.append(orjson.dumps(sorted(scan.types)).decode())
    where += (
        " AND EXISTS (SELECT 1 FROM history h WHERE h.tenant = he.tenant "
        f"AND h.entity_id = he.entity_id{_row_filter(scan, params)})"
    )
    found = conn.execute(
        f"SELECT he.entity_id, he.entity_type FROM history_entities he WHERE {where} "
        "ORDER BY he.entity_id LIMIT ? OFFSET ?",
        (*params, limit, offset),
    ).fetchall()
    total = None
    if count:
        total = conn.execute(
            f"SELECT count(*) FROM history_entities he WHERE {where}", params
        ).fetchone()[0]
    return [(i, t) for i, t in found], total


def _pairs(
    conn: sqlite3.Connection, tenant: str, scan: HistoryScan, ids: list[str]
) -> list[tuple[str, str]]:
    """The (entity, attribute) pairs to read: every attribute asked for, else those stored,
    found by skipping from one attribute to the next in the key (not a scan of the history)."""
    if scan.attrs is not None:
        return [(e, a) for e in ids for a in scan.attrs]
    pairs = []
    for entity_id in ids:
        found = conn.execute(
            "WITH RECURSIVE s(a) AS (SELECT (SELECT min(attr) FROM history WHERE tenant = ?1 "
            "AND entity_id = ?2) UNION ALL SELECT (SELECT min(attr) FROM history "
            "WHERE tenant = ?1 AND entity_id = ?2 AND attr > s.a) FROM s WHERE s.a IS NOT NULL) "
            "SELECT a FROM s WHERE a IS NOT NULL",
            (tenant, entity_id),
        )
        pairs += [(entity_id, a) for (a,) in found]
    return pairs


def history_instances(
    conn: sqlite3.Connection,
    tenant: str,
    scan: HistoryScan,
    ids: list[str],
    most: int,
    *,
    newest: bool,
) -> list[HistoryRow]:
    """Per entity and attribute at most `most` instances, the oldest (or the newest), returned
    oldest first: each attribute's rows read straight from the key, forwards or backwards."""
    params: list[Any] = []
    where = _row_filter(scan, params)
    column = "h." + _TIME_COLUMN[scan.time.timeproperty]
    order = "DESC" if newest else "ASC"
    sql = (
        f"SELECT {_ROW}, {column} FROM history h WHERE h.tenant = ? AND h.entity_id = ? "
        f"AND h.attr = ?{where} ORDER BY {column} {order}, h.dataset_id {order} LIMIT ?"
    )
    found = []
    for entity_id, attr in _pairs(conn, tenant, scan, ids):
        rows = conn.execute(sql, (tenant, entity_id, attr, *params, most)).fetchall()
        if newest:
            rows.reverse()
        found += rows
    if scan.time.timeproperty != "observedAt":
        found.sort(key=lambda r: (r[0], r[1], r[6], r[2]))
    return [
        HistoryRow(e, a, d or None, o, orjson.loads(i), instance_id=k)
        for e, a, d, o, k, i, _ in found
    ]


def history_aggregate(
    conn: sqlite3.Connection,
    tenant: str,
    scan: HistoryScan,
    ids: list[str],
    aggregation: Aggregation,
) -> AggregatePage:
    """Aggregated values, at most aggregation.most_periods periods per attribute (counted
    from the one holding the first selected instance). Periods of whole seconds are grouped
    in SQL; calendar periods, stddev and distinctCount in Python (ngsild/temporal.py)."""
    pairs = _pairs(conn, tenant, scan, ids)
    if not pairs:
        return AggregatePage([])
    period = aggregation.period
    column = "h." + _TIME_COLUMN[scan.time.timeproperty]
    if period.is_zero:
        return AggregatePage(_in_python(conn, tenant, scan, pairs, aggregation, None))
    firsts = [
        row[0]
        for row in (
            _series_rows(conn, tenant, scan, pair, f"min({column})").fetchone() for pair in pairs
        )
        if row is not None and row[0] is not None
    ]
    if not firsts:
        return AggregatePage([])
    first = parse_datetime(min(firsts), "time")
    window = period_window(scan.time, period, first, aggregation.most_periods)
    start = window.edges[0]
    whole_seconds = (
        period.months == 0
        and period.seconds == int(period.seconds)
        and start.microsecond == 0
        and not {"stddev", "distinctCount"} & set(aggregation.methods)
    )
    if whole_seconds:
        series = _in_sql(conn, tenant, scan, pairs, aggregation, window)
    else:
        series = _in_python(conn, tenant, scan, pairs, aggregation, window)
    cut = None
    if window.more_after is not None:
        bound = f" AND {column} >= ?"
        for pair in pairs:
            more = _series_rows(conn, tenant, scan, pair, "1", bound, [window.more_after])
            if more.fetchone() is not None:
                cut = (window.range_start, window.stop)
                break
    return AggregatePage(series, cut)


def _series_rows(
    conn: sqlite3.Connection,
    tenant: str,
    scan: HistoryScan,
    pair: tuple[str, str],
    what: str,
    extra: str = "",
    extra_params: list[Any] | None = None,
) -> sqlite3.Cursor:
    params: list[Any] = [tenant, *pair]
    where = _row_filter(scan, params)
    return conn.execute(
        f"SELECT {what} FROM history h WHERE h.tenant = ? AND h.entity_id = ? AND h.attr = ?"
        f"{where}{extra} LIMIT 1",
        (*params, *(extra_params or [])),
    )


def _in_sql(
    conn: sqlite3.Connection,
    tenant: str,
    scan: HistoryScan,
    pairs: list[tuple[str, str]],
    aggregation: Aggregation,
    window: PeriodWindow,
) -> list[AggregateSeries]:
    """Periods of whole seconds: each row's period number from its Unix time, grouped in SQL;
    the JSON of each series made here from the numbers."""
    column = "h." + _TIME_COLUMN[scan.time.timeproperty]
    methods = aggregation.methods
    origin = int(window.edges[0].timestamp())
    step = int(aggregation.period.seconds)
    texts = window.texts
    strings = bool({"min", "max"} & set(methods))
    text = (
        "CASE WHEN h.num IS NULL AND json_type(h.instance, '$.value') = 'text' "
        "THEN json_extract(h.instance, '$.value') END"
    )
    extremes = f"min({text}), max({text})" if strings else "NULL, NULL"
    params: list[Any] = [origin, step, tenant]
    where = _row_filter(scan, params)
    sql = (
        f"SELECT h.dataset_id, (unixepoch({column}) - ?) / ? AS i, count(*), count(h.num), "
        f"sum(h.num), avg(h.num), min(h.num), max(h.num), sum(h.num * h.num), {extremes} "
        "FROM history h WHERE h.tenant = ? AND h.entity_id = ? AND h.attr = ?"
        f"{where} AND {column} >= ? AND {column} < ? GROUP BY 1, 2 ORDER BY 1, 2"
    )
    bounds = [format_datetime(window.edges[0]), format_datetime(window.edges[-1])]
    series = []
    for entity_id, attr in pairs:
        rows = conn.execute(sql, (origin, step, tenant, entity_id, attr, *params[3:], *bounds))
        by_dataset: dict[str, dict[str, list[list[Any]]]] = {}
        for dataset, i, n, nums, total, mean, low, high, squares, low_text, high_text in rows:
            results = by_dataset.get(dataset)
            if results is None:
                results = by_dataset[dataset] = {m: [] for m in methods}
            span = texts[i], texts[i + 1]
            for method in methods:
                if method == "totalCount":
                    value: Any = n
                elif method in ("min", "max"):
                    if nums:
                        value = float(low if method == "min" else high)
                    else:
                        value = low_text if method == "min" else high_text
                elif not nums:
                    value = None
                else:
                    value = float(
                        total if method == "sum" else mean if method == "avg" else squares
                    )
                if value is not None:
                    results[method].append([value, *span])
        if not by_dataset:
            continue
        kind = _kind(conn, tenant, entity_id, attr)
        for dataset, results in by_dataset.items():
            series.append(
                AggregateSeries(
                    entity_id,
                    attr,
                    dataset or None,
                    kind,
                    {m: orjson.dumps(v).decode() for m, v in results.items()},
                )
            )
    return series


def _kind(conn: sqlite3.Connection, tenant: str, entity_id: str, attr: str) -> str:
    """The attribute type of an entity attribute, from its latest instance."""
    row = conn.execute(
        "SELECT json_extract(instance, '$.type') FROM history WHERE tenant = ? "
        "AND entity_id = ? AND attr = ? ORDER BY observed_at DESC, dataset_id DESC LIMIT 1",
        (tenant, entity_id, attr),
    ).fetchone()
    return str(row[0]) if row is not None and row[0] else "Property"


def _in_python(
    conn: sqlite3.Connection,
    tenant: str,
    scan: HistoryScan,
    pairs: list[tuple[str, str]],
    aggregation: Aggregation,
    window: PeriodWindow | None,
) -> list[AggregateSeries]:
    """The reference aggregation (ngsild/temporal.py) over the rows of each series."""
    params: list[Any] = []
    where = _row_filter(scan, params)
    column = "h." + _TIME_COLUMN[scan.time.timeproperty]
    if window is not None:
        where += f" AND {column} >= ? AND {column} < ?"
        params += [format_datetime(window.edges[0]), format_datetime(window.edges[-1])]
    sql = (
        f"SELECT h.dataset_id, {column}, h.instance FROM history h WHERE h.tenant = ? "
        f"AND h.entity_id = ? AND h.attr = ?{where} ORDER BY h.dataset_id, {column}"
    )
    series = []
    for entity_id, attr in pairs:
        by_dataset: dict[str, tuple[list[tuple[str, Any]], list[str]]] = {}
        for dataset, moment, text in conn.execute(sql, (tenant, entity_id, attr, *params)):
            instance = orjson.loads(text)
            values, kinds = by_dataset.setdefault(dataset, ([], []))
            values.append((canonical(moment), value_of(instance)))
            kinds[:] = [instance.get("type", "Property")]
        for dataset, (values, kinds) in by_dataset.items():
            results = aggregate_series(values, aggregation, scan.time)
            texts = {m: aggregated_json(t) for m, t in results.items()}
            series.append(AggregateSeries(entity_id, attr, dataset or None, kinds[0], texts))
    return series


def history_exists(conn: sqlite3.Connection, tenant: str, entity_id: str) -> bool:
    found = conn.execute(
        "SELECT 1 FROM history WHERE tenant = ? AND entity_id = ? LIMIT 1", (tenant, entity_id)
    ).fetchone()
    return found is not None


def history_type(conn: sqlite3.Connection, tenant: str, entity_id: str) -> str | None:
    found = conn.execute(
        "SELECT entity_type FROM history_entities WHERE tenant = ? AND entity_id = ?",
        (tenant, entity_id),
    ).fetchone()
    return None if found is None else str(found[0])


def delete_history(
    conn: sqlite3.Connection,
    tenant: str,
    entity_id: str,
    attr: str | None,
    dataset_id: str | None,
    every_dataset: bool,
) -> int:
    """Delete an entity's history, or one attribute's (its default instance, one datasetId or
    every one); returns the number of rows deleted."""
    sql = "DELETE FROM history WHERE tenant = ? AND entity_id = ?"
    params: list[Any] = [tenant, entity_id]
    if attr is not None:
        sql += " AND attr = ?"
        params.append(attr)
        if not every_dataset:
            sql += " AND dataset_id = ?"
            params.append(dataset_id or "")
    deleted = conn.execute(sql, params).rowcount
    if attr is None:
        conn.execute(
            "DELETE FROM history_entities WHERE tenant = ? AND entity_id = ?", (tenant, entity_id)
        )
    return int(deleted)


def change_history_instance(
    conn: sqlite3.Connection,
    tenant: str,
    entity_id: str,
    attr: str,
    instance_id: str,
    change: Callable[[Instance], Instance] | None,
) -> bool:
    """Replace one instance by what `change` makes of it (or delete it when `change` is None);
    False when no such instance exists."""
    found = conn.execute(
        "SELECT observed_at, dataset_id, instance FROM history WHERE tenant = ? "
        "AND entity_id = ? AND attr = ? AND instance_id = ?",
        (tenant, entity_id, attr, instance_id),
    ).fetchone()
    if found is None:
        return False
    conn.execute(
        "DELETE FROM history WHERE tenant = ? AND entity_id = ? AND attr = ? "
        "AND observed_at = ? AND dataset_id = ?",
        (tenant, entity_id, attr, found[0], found[1]),
    )
    if change is not None:
        instance = change(orjson.loads(found[2]))
        observed = instance.get("observedAt", instance.get("modifiedAt", found[0]))
        row = HistoryRow(entity_id, attr, found[1] or None, observed, instance, "", instance_id)
        conn.execute(
            "INSERT OR REPLACE INTO history (tenant, entity_id, attr, observed_at, dataset_id, "
            "instance_id, created_at, modified_at, num, instance) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            history_values(tenant, row),
        )
    return True


def expire_history(
    conn: sqlite3.Connection,
    before: str,
    types: frozenset[str] | None,
    keep: frozenset[str],
    most_entities: int,
    after_entity: tuple[str, str],
) -> tuple[int, tuple[str, str] | None]:
    """Delete the history older than `before` of up to `most_entities` entities (of these
    types, or of any type but `keep`), in every tenant, starting after (tenant, entity id).
    Returns the rows deleted and where to go on (None when done)."""
    params: list[Any] = [*after_entity]
    sql = "SELECT tenant, entity_id FROM history_entities WHERE (tenant, entity_id) > (?, ?)"
    if types is not None:
        sql += " AND entity_type IN (SELECT value FROM json_each(?))"
        params.append(orjson.dumps(sorted(types)).decode())
    if keep:
        sql += " AND entity_type NOT IN (SELECT value FROM json_each(?))"
        params.append(orjson.dumps(sorted(keep)).decode())
    entities = conn.execute(sql + " ORDER BY tenant, entity_id LIMIT ?", (*params, most_entities))
    chosen = entities.fetchall()
    deleted = 0
    for tenant, entity_id in chosen:
        deleted += conn.execute(
            "DELETE FROM history WHERE tenant = ? AND entity_id = ? AND observed_at < ?",
            (tenant, entity_id, before),
        ).rowcount
    following = (chosen[-1][0], chosen[-1][1]) if len(chosen) == most_entities else None
    return deleted, following


def row_time(row: HistoryRow, timeproperty: str) -> str:
    return instance_time(row.instance, timeproperty, row.observed_at)


def canonical(moment: Any) -> str:
    return moment if isinstance(moment, str) else format_datetime(moment)
