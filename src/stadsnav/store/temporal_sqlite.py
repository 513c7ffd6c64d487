"""The temporal store on SQLite: history rows written, read, aggregated and expired.

Functions take the connection of the thread they run on (the writer's for writes). Rows are
keyed (tenant, entity, attribute, observedAt, datasetId), so one attribute's instances are read
in time order; aggregation runs in Python (ngsild/temporal.py), with the results PostgreSQL
computes in SQL.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from stadsnav.ngsild.entity import Instance
from stadsnav.ngsild.names import format_datetime
from stadsnav.ngsild.temporal import (
    AggregateSeries,
    Aggregation,
    HistoryScan,
    aggregate_series,
    instance_time,
    is_number,
    value_of,
)
from stadsnav.store.base import DEFAULT_TENANT, HistoryRow

_TIME_COLUMN = {"observedAt": "observed_at", "createdAt": "created_at", "modifiedAt": "modified_at"}
_ROW = "h.entity_id, h.attr, h.dataset_id, h.observed_at, h.instance_id, h.instance"


def new_instance_id() -> str:
    return f"urn:ngsi-ld:Instance:{uuid.uuid4().hex}"


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
    oldest first."""
    params: list[Any] = [tenant, orjson.dumps(ids).decode()]
    where = _row_filter(scan, params)
    column = "h." + _TIME_COLUMN[scan.time.timeproperty]
    order = "DESC" if newest else "ASC"
    sql = (
        f"SELECT * FROM (SELECT {_ROW}, {column} AS t, row_number() OVER "
        f"(PARTITION BY h.entity_id, h.attr ORDER BY {column} {order}, h.dataset_id) AS n "
        "FROM history h WHERE h.tenant = ? AND h.entity_id IN (SELECT value FROM json_each(?))"
        f"{where}) WHERE n <= ? ORDER BY entity_id, attr, t, dataset_id"
    )
    return [
        HistoryRow(e, a, d or None, o, orjson.loads(i), instance_id=k)
        for e, a, d, o, k, i, _, _ in conn.execute(sql, (*params, most))
    ]


def history_aggregate(
    conn: sqlite3.Connection,
    tenant: str,
    scan: HistoryScan,
    ids: list[str],
    aggregation: Aggregation,
) -> list[AggregateSeries]:
    params: list[Any] = [tenant, orjson.dumps(ids).decode()]
    where = _row_filter(scan, params)
    column = "h." + _TIME_COLUMN[scan.time.timeproperty]
    rows = conn.execute(
        f"SELECT h.entity_id, h.attr, h.dataset_id, {column}, h.instance FROM history h "
        f"WHERE h.tenant = ? AND h.entity_id IN (SELECT value FROM json_each(?)){where} "
        f"ORDER BY h.entity_id, h.attr, h.dataset_id, {column}",
        params,
    )
    series: dict[tuple[str, str, str], tuple[list[tuple[str, Any]], list[str]]] = {}
    for entity_id, attr, dataset, moment, text in rows:
        instance = orjson.loads(text)
        values, kinds = series.setdefault((entity_id, attr, dataset), ([], []))
        values.append((moment, value_of(instance)))
        kinds[:] = [instance.get("type", "Property")]
    return [
        AggregateSeries(e, a, d or None, kinds[0], aggregate_series(values, aggregation, scan.time))
        for (e, a, d), (values, kinds) in series.items()
    ]


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
