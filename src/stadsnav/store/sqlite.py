"""The embedded SQLite store: one file in WAL mode, one writer thread, a few reader threads.

Writes run on a single thread with its own connection (SQLite allows one writer at a time, so a
queue in front of it is both the simplest and the fastest arrangement); every write is one
transaction, so a crash mid-write leaves the previous state. Reads run on a small pool of threads,
each with its own connection, concurrently with the writer thanks to WAL.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import orjson
import shapely

from stadsnav.ngsild.entity import GEOPROPERTY, Entity, Instance
from stadsnav.ngsild.errors import AlreadyExists
from stadsnav.ngsild.names import format_datetime
from stadsnav.ngsild.query import EntityQuery
from stadsnav.ngsild.temporal import AggregatePage, Aggregation, HistoryScan
from stadsnav.store import geosql, qsql, subscriptions_sqlite, temporal_sqlite
from stadsnav.store.attrsets import AttrSetIds, members_of, signature
from stadsnav.store.base import (
    DEFAULT_TENANT,
    AttributeStat,
    Change,
    ChangeObserver,
    DeadLetter,
    DeviceChange,
    DeviceEvent,
    DeviceQuery,
    DeviceRecord,
    EntityChange,
    HistoryRow,
    HostedContext,
    Merge,
    TypeStat,
    UplinkKey,
    copy_entity,
    merge_fragments,
)
from stadsnav.store.entitysql import compile_where
from stadsnav.store.migrations import migration_files
from stadsnav.store.records import (
    DEVICE_COLUMNS,
    EVENT_COLUMNS,
    LETTER_COLUMNS,
    device_from_row,
    device_values,
    letter_from_row,
)
from stadsnav.store.subscriptionrecords import Claim, Delivered, SubscriptionRecord

T = TypeVar("T")
_COLUMNS = (
    "e.pk, e.id, e.types, e.scopes, e.doc, e.created_at, e.modified_at, e.expires_at, e.version"
)


def _now() -> str:
    return format_datetime(datetime.now(UTC))


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regexp(pattern: str, value: str | None) -> bool:
    return value is not None and _compiled(pattern).search(value) is not None


class SQLiteStore:
    def __init__(self, path: str, *, synchronous: str = "FULL", readers: int = 4) -> None:
        self.path = path
        self.synchronous = synchronous
        self._local = threading.local()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="sqlite-reader")
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._sets = _SetResolver(AttrSetIds())
        # Told of every entity change inside its transaction (history, subscriptions).
        self.observer: ChangeObserver | None = None

    # -- connections and threads -------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA cache_size=-65536")
            conn.create_function("stadsnav_regexp", 2, _regexp, deterministic=True)
            qsql.register_sqlite_functions(conn)
            geosql.register_sqlite_functions(conn)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: fn(self._connect()))

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            conn = self._connect()
            self._sets.created.clear()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._sets.known.remember(self._sets.created)
            return result

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, run)

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        await self._write(self._migrate)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, applied_at TEXT)"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, sql in migration_files("sqlite"):
            if version in done:
                continue
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, _now()))
        conn.execute(
            "INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?, ?)",
            (DEFAULT_TENANT, _now()),
        )

    async def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    # -- tenants -------------------------------------------------------------------------------

    async def tenant_exists(self, tenant: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT 1 FROM tenants WHERE name = ?", (tenant,)).fetchone()
            return row is not None

        return await self._read(run)

    async def tenants(self) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            return [r[0] for r in conn.execute("SELECT name FROM tenants ORDER BY name")]

        return await self._read(run)

    # -- writes --------------------------------------------------------------------------------

    async def insert(self, tenant: str, entity: Entity) -> None:
        if not (await self.insert_many(tenant, [entity]))[0]:
            raise AlreadyExists(f"Entity {entity.id} already exists")

    async def insert_many(self, tenant: str, entities: list[Entity]) -> list[bool]:
        return await self._write(lambda conn: self._write_batch(conn, tenant, entities, False))

    async def upsert_many(self, tenant: str, entities: list[Entity]) -> list[bool]:
        return await self._write(lambda conn: self._write_batch(conn, tenant, entities, True))

    def _write_batch(
        self, conn: sqlite3.Connection, tenant: str, entities: list[Entity], replace: bool
    ) -> list[bool]:
        before: dict[str, Entity] = {}
        if replace and self._watching(tenant):
            before = _stored(conn, tenant, [e.id for e in entities])
        created = _write_batch(conn, self._sets, tenant, entities, replace=replace)
        self._tell(
            conn,
            tenant,
            [
                EntityChange(before.get(e.id), e, replaced=not new)
                for e, new in zip(entities, created, strict=True)
                if new or replace
            ],
        )
        return created

    def _watching(self, tenant: str) -> bool:
        return self.observer is not None and self.observer.watching(tenant)

    def _tell(
        self,
        conn: sqlite3.Connection,
        tenant: str,
        changes: list[EntityChange],
        *,
        history: bool = True,
    ) -> None:
        """Write what the observer makes of these changes, in the same transaction."""
        if self.observer is None or not changes:
            return
        found = self.observer.consequences(tenant, changes, _now())
        if history and found.history:
            _insert_history(conn, tenant, found.history)
        if found.notifications:
            subscriptions_sqlite.add_notifications(conn, tenant, found.notifications)

    async def modify(self, tenant: str, entity_id: str, change: Change) -> bool:
        return bool(await self.modify_many(tenant, [entity_id], change))

    async def modify_many(self, tenant: str, ids: list[str], change: Change) -> list[str]:
        now = _now()

        def run(conn: sqlite3.Connection) -> list[str]:
            # On the writer thread, so nobody can write these entities between read and write.
            found: list[str] = []
            changes: list[EntityChange] = []
            for entity_id in dict.fromkeys(ids):
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM entities e WHERE e.tenant = ? AND e.id = ? "
                    "AND (e.expires_at IS NULL OR e.expires_at > ?)",
                    (tenant, entity_id, now),
                ).fetchone()
                if row is None:
                    continue
                entity = _entity(row)
                if change(entity):
                    _rewrite(conn, self._sets, tenant, {row[0]: entity})
                    changes.append(EntityChange(_entity(row), entity))
                found.append(entity_id)
            self._tell(conn, tenant, changes)
            return found

        return await self._write(run)

    async def delete(self, tenant: str, entity_id: str) -> bool:
        return (await self.delete_many(tenant, [entity_id]))[0]

    async def delete_many(self, tenant: str, ids: list[str]) -> list[bool]:
        def run(conn: sqlite3.Connection) -> list[bool]:
            results = []
            gone: list[EntityChange] = []
            for entity_id in ids:
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM entities e WHERE e.tenant = ? AND e.id = ?",
                    (tenant, entity_id),
                ).fetchone()
                if row is None:
                    results.append(False)
                    continue
                _delete_pks(conn, [row[0]])
                results.append(True)
                if self._watching(tenant):
                    gone.append(EntityChange(_entity(row), None))
            self._tell(conn, tenant, gone)
            return results

        return await self._write(run)

    async def purge(self, tenant: str, query: EntityQuery) -> int:
        def run(conn: sqlite3.Connection) -> int:
            where, params = compile_where(query, tenant, _now(), "sqlite")
            if not self._watching(tenant):
                sql = f"SELECT e.pk FROM entities e WHERE {where}"
                pks = [r[0] for r in conn.execute(sql, params)]
                _delete_pks(conn, pks)
                return len(pks)
            rows = conn.execute(f"SELECT {_COLUMNS} FROM entities e WHERE {where}", params)
            gone = {row[0]: _entity(row) for row in rows}
            _delete_pks(conn, list(gone))
            self._tell(conn, tenant, [EntityChange(e, None) for e in gone.values()])
            return len(gone)

        return await self._write(run)

    async def delete_expired(self, now: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                f"SELECT {_COLUMNS}, e.tenant FROM entities e "
                "WHERE e.expires_at IS NOT NULL AND e.expires_at <= ?",
                (now,),
            ).fetchall()
            _delete_pks(conn, [row[0] for row in rows])
            gone: dict[str, list[EntityChange]] = {}
            for row in rows:
                if self._watching(row[-1]):
                    gone.setdefault(row[-1], []).append(EntityChange(_entity(row), None))
            for tenant, changes in gone.items():
                self._tell(conn, tenant, changes)
            return len(rows)

        return await self._write(run)

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, tenant: str, entity_id: str) -> Entity | None:
        found = await self.get_many(tenant, [entity_id])
        return found.get(entity_id)

    async def get_many(self, tenant: str, ids: list[str]) -> dict[str, Entity]:
        now = _now()

        def run(conn: sqlite3.Connection) -> dict[str, Entity]:
            found: dict[str, Entity] = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM entities e WHERE e.tenant = ? AND e.id IN ({marks}) "
                    "AND (e.expires_at IS NULL OR e.expires_at > ?)",
                    (tenant, *chunk, now),
                )
                for row in rows:
                    entity = _entity(row)
                    found[entity.id] = entity
            return found

        return await self._read(run)

    async def query(self, tenant: str, query: EntityQuery) -> tuple[list[Entity], int | None]:
        now = _now()

        def run(conn: sqlite3.Connection) -> tuple[list[Entity], int | None]:
            where, params = compile_where(query, tenant, now, "sqlite")
            entities: list[Entity] = []
            if query.limit > 0:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM entities e WHERE {where} "
                    "ORDER BY e.id LIMIT ? OFFSET ?",
                    (*params, query.limit, query.offset),
                )
                entities = [_entity(row) for row in rows]
            total = None
            if query.count:
                total = conn.execute(
                    f"SELECT count(*) FROM entities e WHERE {where}", params
                ).fetchone()[0]
            return entities, total

        return await self._read(run)

    async def put_context(self, context: HostedContext) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO hosted_contexts (id, url, document, created_at) "
                "VALUES (?, ?, ?, ?)",
                (
                    context.id,
                    context.url,
                    orjson.dumps(context.document).decode(),
                    context.created_at,
                ),
            )

        await self._write(run)

    async def delete_context(self, context_id: str) -> None:
        await self._write(
            lambda conn: conn.execute("DELETE FROM hosted_contexts WHERE id = ?", (context_id,))
        )

    async def hosted_contexts(self) -> list[HostedContext]:
        def run(conn: sqlite3.Connection) -> list[HostedContext]:
            rows = conn.execute(
                "SELECT id, url, document, created_at FROM hosted_contexts ORDER BY created_at"
            )
            return [HostedContext(i, u, orjson.loads(d), c) for i, u, d, c in rows]

        return await self._read(run)

    # -- device data -----------------------------------------------------------------------------

    async def record(
        self,
        tenant: str,
        fragments: list[Entity],
        merge: Merge,
        history: list[HistoryRow],
        uplinks: list[UplinkKey],
    ) -> None:
        def run(conn: sqlite3.Connection) -> None:
            changes = _record(
                conn, self._sets, tenant, fragments, merge, history, uplinks, self._watching(tenant)
            )
            self._tell(conn, tenant, changes, history=False)

        await self._write(run)

    async def stored_uplinks(self, tenant: str, keys: list[UplinkKey]) -> set[UplinkKey]:
        def run(conn: sqlite3.Connection) -> set[UplinkKey]:
            found: set[UplinkKey] = set()
            for key in keys:
                row = conn.execute(
                    "SELECT 1 FROM uplinks WHERE tenant = ? AND device = ? AND f_cnt = ? "
                    "AND digest = ?",
                    (tenant, key.device, key.f_cnt, key.digest),
                ).fetchone()
                if row is not None:
                    found.add(key)
            return found

        return await self._read(run) if keys else set()

    async def history(
        self, tenant: str, entity_id: str, attr: str | None = None
    ) -> list[HistoryRow]:
        def run(conn: sqlite3.Connection) -> list[HistoryRow]:
            sql = (
                "SELECT entity_id, attr, dataset_id, observed_at, instance FROM history "
                "WHERE tenant = ? AND entity_id = ?"
            )
            params: list[Any] = [tenant, entity_id]
            if attr is not None:
                sql += " AND attr = ?"
                params.append(attr)
            return [
                HistoryRow(e, a, d or None, o, orjson.loads(i))
                for e, a, d, o, i in conn.execute(sql + " ORDER BY observed_at, attr", params)
            ]

        return await self._read(run)

    # -- temporal (store/temporal_sqlite.py) ---------------------------------------------------

    async def add_history(
        self, tenant: str, rows: list[HistoryRow], *, fresh: bool = False
    ) -> None:
        await self._write(lambda conn: temporal_sqlite.add_history(conn, tenant, rows))

    async def history_entities(
        self, tenant: str, scan: HistoryScan, limit: int, offset: int, count: bool
    ) -> tuple[list[tuple[str, str]], int | None]:
        return await self._read(
            lambda c: temporal_sqlite.history_entities(c, tenant, scan, limit, offset, count)
        )

    async def history_instances(
        self, tenant: str, scan: HistoryScan, ids: list[str], most: int, *, newest: bool
    ) -> list[HistoryRow]:
        return await self._read(
            lambda c: temporal_sqlite.history_instances(c, tenant, scan, ids, most, newest=newest)
        )

    async def history_aggregate(
        self, tenant: str, scan: HistoryScan, ids: list[str], aggregation: Aggregation
    ) -> AggregatePage:
        return await self._read(
            lambda c: temporal_sqlite.history_aggregate(c, tenant, scan, ids, aggregation)
        )

    async def history_type(self, tenant: str, entity_id: str) -> str | None:
        def run(conn: sqlite3.Connection) -> str | None:
            if not temporal_sqlite.history_exists(conn, tenant, entity_id):
                return None
            return temporal_sqlite.history_type(conn, tenant, entity_id) or ""

        return await self._read(run)

    async def delete_history(
        self,
        tenant: str,
        entity_id: str,
        attr: str | None = None,
        dataset_id: str | None = None,
        every_dataset: bool = False,
    ) -> int:
        return await self._write(
            lambda c: temporal_sqlite.delete_history(
                c, tenant, entity_id, attr, dataset_id, every_dataset
            )
        )

    async def change_history_instance(
        self,
        tenant: str,
        entity_id: str,
        attr: str,
        instance_id: str,
        change: Callable[[Instance], Instance] | None,
    ) -> bool:
        return await self._write(
            lambda c: temporal_sqlite.change_history_instance(
                c, tenant, entity_id, attr, instance_id, change
            )
        )

    async def expire_history(
        self,
        before: str,
        types: frozenset[str] | None,
        keep: frozenset[str],
        most_entities: int,
        after: tuple[str, str],
    ) -> tuple[int, tuple[str, str] | None]:
        return await self._write(
            lambda c: temporal_sqlite.expire_history(c, before, types, keep, most_entities, after)
        )

    async def drop_history_partitions(self, before: str) -> int:
        return 0

    async def put_device(self, tenant: str, device: DeviceRecord) -> None:
        def run(conn: sqlite3.Connection) -> None:
            _ensure_tenant(conn, tenant)
            conn.execute(
                f"INSERT OR REPLACE INTO devices (tenant, {DEVICE_COLUMNS}) "
                f"VALUES ({_DEVICE_MARKS})",
                _device_params(tenant, device),
            )

        await self._write(run)

    async def add_devices(
        self, tenant: str, devices: list[DeviceRecord], events: list[DeviceEvent]
    ) -> list[bool]:
        def run(conn: sqlite3.Connection) -> list[bool]:
            _ensure_tenant(conn, tenant)
            added: list[bool] = []
            for device in devices:
                cursor = conn.execute(
                    f"INSERT OR IGNORE INTO devices (tenant, {DEVICE_COLUMNS}) "
                    f"VALUES ({_DEVICE_MARKS})",
                    _device_params(tenant, device),
                )
                added.append(cursor.rowcount == 1)
            taken = {d.key for d, ok in zip(devices, added, strict=True) if not ok}
            _add_device_events(conn, tenant, [e for e in events if e.device not in taken])
            return added

        return await self._write(run) if devices else []

    async def change_device(
        self, tenant: str, key: str, change: DeviceChange
    ) -> DeviceRecord | None:
        def run(conn: sqlite3.Connection) -> DeviceRecord | None:
            # On the writer thread, so nobody can write this record between read and write.
            row = conn.execute(
                f"SELECT {DEVICE_COLUMNS} FROM devices WHERE tenant = ? AND key = ?",
                (tenant, key),
            ).fetchone()
            if row is None:
                return None
            device, events = change(_device(row))
            # Every column but the key (the tenant and key come first in the parameters).
            conn.execute(
                f"UPDATE devices SET {_DEVICE_UPDATE} WHERE tenant = ? AND key = ?",
                (*_device_params(tenant, device)[2:], tenant, key),
            )
            _add_device_events(conn, tenant, events)
            return device

        return await self._write(run)

    async def find_devices(self, tenant: str, query: DeviceQuery) -> list[DeviceRecord]:
        def run(conn: sqlite3.Connection) -> list[DeviceRecord]:
            sql = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE tenant = ?"
            params: list[Any] = [tenant]
            for column, value in (
                ("owner", query.owner),
                ("model", query.model),
                ("target_id", query.target_id),
            ):
                if value is not None:
                    sql += f" AND {column} = ?"
                    params.append(value)
            if query.states is not None:
                sql += f" AND state IN ({', '.join('?' for _ in query.states)})"
                params.extend(sorted(query.states))
            if query.controlled_property is not None:
                marks = ", ".join("?" for _ in query.controlled_property)
                sql += (
                    " AND EXISTS (SELECT 1 FROM json_each(devices.controlled_property) "
                    f"WHERE json_each.value IN ({marks}))"
                )
                params.extend(sorted(query.controlled_property))
            if query.box is not None:
                min_lon, min_lat, max_lon, max_lat = query.box
                sql += " AND lat BETWEEN ? AND ? AND lon BETWEEN ? AND ?"
                params.extend((min_lat, max_lat, min_lon, max_lon))
            sql += " ORDER BY key LIMIT ? OFFSET ?"
            params.extend((-1 if query.limit is None else query.limit, query.offset))
            return [_device(row) for row in conn.execute(sql, params)]

        return await self._read(run)

    async def device_events(self, tenant: str, key: str) -> list[DeviceEvent]:
        def run(conn: sqlite3.Connection) -> list[DeviceEvent]:
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM device_events WHERE tenant = ? AND device = ? "
                "ORDER BY id",
                (tenant, key),
            )
            return [
                DeviceEvent(d, a, k, w, f, t, r, orjson.loads(x), i)
                for i, d, a, k, w, f, t, r, x in rows
            ]

        return await self._read(run)

    async def devices(self, tenant: str, keys: list[str] | None = None) -> list[DeviceRecord]:
        def run(conn: sqlite3.Connection) -> list[DeviceRecord]:
            if keys is None:
                rows = conn.execute(
                    f"SELECT {DEVICE_COLUMNS} FROM devices WHERE tenant = ? ORDER BY key",
                    (tenant,),
                ).fetchall()
                return [_device(row) for row in rows]
            found: list[DeviceRecord] = []
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                found.extend(
                    _device(row)
                    for row in conn.execute(
                        f"SELECT {DEVICE_COLUMNS} FROM devices WHERE tenant = ? "
                        f"AND key IN ({marks})",
                        (tenant, *chunk),
                    )
                )
            return sorted(found, key=lambda d: d.key)

        return await self._read(run)

    async def add_dead_letters(self, tenant: str, letters: list[DeadLetter]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            for letter in letters:
                cursor = conn.execute(
                    "INSERT INTO dead_letters (tenant, received_at, transport, network, event, "
                    "source, device, stage, reason, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        tenant,
                        letter.received_at,
                        letter.transport,
                        letter.network,
                        letter.event,
                        letter.source,
                        letter.device,
                        letter.stage,
                        letter.reason,
                        letter.body,
                    ),
                )
                letter.id = int(cursor.lastrowid or 0)

        if letters:
            await self._write(run)

    async def dead_letters(
        self, tenant: str, *, open_only: bool, limit: int, offset: int, ids: list[int] | None = None
    ) -> list[DeadLetter]:
        def run(conn: sqlite3.Connection) -> list[DeadLetter]:
            sql = f"SELECT {LETTER_COLUMNS} FROM dead_letters WHERE tenant = ?"
            params: list[Any] = [tenant]
            if open_only:
                sql += " AND (outcome IS NULL OR outcome != 'stored')"
            if ids is not None:
                sql += f" AND id IN ({', '.join('?' for _ in ids)})"
                params.extend(ids)
            sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
            return [letter_from_row(row) for row in conn.execute(sql, (*params, limit, offset))]

        return await self._read(run)

    async def settle_dead_letter(
        self, tenant: str, letter_id: int, when: str, outcome: str
    ) -> None:
        await self._write(
            lambda conn: conn.execute(
                "UPDATE dead_letters SET replayed_at = ?, outcome = ? WHERE tenant = ? AND id = ?",
                (when, outcome, tenant, letter_id),
            )
        )

    async def type_stats(self, tenant: str) -> list[TypeStat]:
        now = _now()

        def run(conn: sqlite3.Connection) -> list[TypeStat]:
            counts = conn.execute(
                "SELECT t.type, count(*) FROM entity_types t JOIN entities e ON e.pk = t.entity "
                "WHERE t.tenant = ? AND (e.expires_at IS NULL OR e.expires_at > ?) "
                "GROUP BY t.type ORDER BY t.type",
                (tenant, now),
            ).fetchall()
            attrs: dict[str, dict[str, set[str]]] = {}
            for type_, attr, kinds in conn.execute(
                f"SELECT DISTINCT ts.type, m.attr, m.kinds FROM ({_TYPE_SETS}) ts "
                "JOIN attr_set_members m ON m.attrset = ts.attrset",
                (tenant, now),
            ):
                attrs.setdefault(type_, {}).setdefault(attr, set()).update(kinds.split(","))
            return [
                TypeStat(
                    type_,
                    count,
                    {a: frozenset(k) for a, k in attrs.get(type_, {}).items()},
                )
                for type_, count in counts
            ]

        return await self._read(run)

    async def attribute_stats(self, tenant: str) -> list[AttributeStat]:
        now = _now()

        def run(conn: sqlite3.Connection) -> list[AttributeStat]:
            stats: dict[str, tuple[int, set[str], set[str]]] = {}
            for attr, count, kinds in conn.execute(
                "SELECT m.attr, sum(c.n), group_concat(DISTINCT m.kinds) FROM "
                "(SELECT e.attrset, count(*) AS n FROM entities e WHERE e.tenant = ? "
                "AND (e.expires_at IS NULL OR e.expires_at > ?) GROUP BY e.attrset) c "
                "JOIN attr_set_members m ON m.attrset = c.attrset GROUP BY m.attr ORDER BY m.attr",
                (tenant, now),
            ):
                stats[attr] = (count, set(), set(kinds.split(",")))
            for attr, type_ in conn.execute(
                f"SELECT DISTINCT m.attr, ts.type FROM ({_TYPE_SETS}) ts "
                "JOIN attr_set_members m ON m.attrset = ts.attrset",
                (tenant, now),
            ):
                if attr in stats:
                    stats[attr][1].add(type_)
            return [
                AttributeStat(attr, count, frozenset(types), frozenset(kinds))
                for attr, (count, types, kinds) in stats.items()
            ]

        return await self._read(run)

    # -- subscriptions and their notification outbox (store/subscriptions_sqlite.py) ----------

    async def add_subscription(self, tenant: str, record: SubscriptionRecord) -> None:
        await self._write(lambda conn: subscriptions_sqlite.add_subscription(conn, tenant, record))

    async def update_subscription(self, tenant: str, record: SubscriptionRecord) -> bool:
        return await self._write(
            lambda conn: subscriptions_sqlite.update_subscription(conn, tenant, record)
        )

    async def delete_subscription(self, tenant: str, subscription_id: str) -> bool:
        return await self._write(
            lambda conn: subscriptions_sqlite.delete_subscription(conn, tenant, subscription_id)
        )

    async def get_subscription(
        self, tenant: str, subscription_id: str
    ) -> SubscriptionRecord | None:
        return await self._read(
            lambda conn: subscriptions_sqlite.get_subscription(conn, tenant, subscription_id)
        )

    async def list_subscriptions(
        self, tenant: str | None, limit: int, offset: int
    ) -> tuple[list[SubscriptionRecord], int]:
        return await self._read(
            lambda conn: subscriptions_sqlite.list_subscriptions(conn, tenant, limit, offset)
        )

    async def claim_notifications(
        self, owner: str, now: str, lease_until: str, most: int, rows: int
    ) -> list[Claim]:
        return await self._write(
            lambda conn: subscriptions_sqlite.claim(conn, owner, now, lease_until, most, rows)
        )

    async def settle_notifications(self, outcomes: list[Delivered]) -> None:
        await self._write(lambda conn: subscriptions_sqlite.settle(conn, outcomes))

    async def queued_notifications(self, tenant: str, subscription_id: str) -> int:
        return await self._read(
            lambda conn: subscriptions_sqlite.queued(conn, tenant, subscription_id)
        )


_DEVICE_MARKS = ", ".join("?" for _ in range(DEVICE_COLUMNS.count(",") + 2))
_DEVICE_UPDATE = ", ".join(f"{c.strip()} = ?" for c in DEVICE_COLUMNS.split(",")[1:])


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _device(row: Any) -> DeviceRecord:
    return device_from_row(row, orjson.loads)


def _device_params(tenant: str, device: DeviceRecord) -> tuple[Any, ...]:
    return device_values(tenant, device, _json_text, _json_text)


def _add_device_events(conn: sqlite3.Connection, tenant: str, events: list[DeviceEvent]) -> None:
    conn.executemany(
        "INSERT INTO device_events (tenant, device, at, kind, actor, from_state, to_state, "
        "reason, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                tenant,
                e.device,
                e.at,
                e.kind,
                e.actor,
                e.from_state,
                e.to_state,
                e.reason,
                orjson.dumps(e.detail).decode(),
            )
            for e in events
        ],
    )


# The distinct (type, attribute set) pairs of a tenant's live entities.
_TYPE_SETS = (
    "SELECT DISTINCT t.type, e.attrset FROM entity_types t JOIN entities e ON e.pk = t.entity "
    "WHERE t.tenant = ? AND (e.expires_at IS NULL OR e.expires_at > ?)"
)


class _SetResolver:
    """Attribute set ids for the writes of one transaction; used on the writer thread only."""

    def __init__(self, known: AttrSetIds) -> None:
        self.known = known
        self.created: dict[str, int] = {}

    def ids(self, conn: sqlite3.Connection, entities: Iterable[Entity]) -> list[int]:
        found: list[int] = []
        for entity in entities:
            members = members_of(entity.attrs)
            sig = signature(members)
            set_id = self.known.get(sig) or self.created.get(sig)
            if set_id is None:
                query = "SELECT id FROM attr_sets WHERE signature = ?"
                row = conn.execute(query, (sig,)).fetchone()
                if row is not None:
                    set_id = int(row[0])
                else:
                    cursor = conn.execute("INSERT INTO attr_sets (signature) VALUES (?)", (sig,))
                    set_id = int(cursor.lastrowid or 0)
                    conn.executemany(
                        "INSERT INTO attr_set_members (attrset, attr, kinds) VALUES (?, ?, ?)",
                        [(set_id, attr, kinds) for attr, kinds in members],
                    )
                self.created[sig] = set_id
            found.append(set_id)
        return found


def _record(
    conn: sqlite3.Connection,
    sets: _SetResolver,
    tenant: str,
    fragments: list[Entity],
    merge: Merge,
    history: list[HistoryRow],
    uplinks: list[UplinkKey],
    watching: bool,
) -> list[EntityChange]:
    """Store.record on the writer thread: merge or create, then history and marks. Returns
    the changes, with what each entity was before when `watching` (history is already given)."""
    _ensure_tenant(conn, tenant)
    stored: dict[str, Entity] = {}
    pks: dict[str, int] = {}
    ids = list(dict.fromkeys(f.id for f in fragments))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM entities e WHERE e.tenant = ? AND e.id IN ({marks})",
            (tenant, *chunk),
        ):
            stored[row[1]] = _entity(row)
            pks[row[1]] = row[0]
    before = {i: copy_entity(e) for i, e in stored.items()} if watching else {}
    new, changed = merge_fragments(fragments, stored, merge)
    _write_batch(conn, sets, tenant, new, replace=False)
    _rewrite(conn, sets, tenant, {pks[e.id]: e for e in changed})
    _insert_history(conn, tenant, history)
    now = _now()
    conn.executemany(
        "INSERT OR IGNORE INTO uplinks (tenant, device, f_cnt, digest, stored_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [(tenant, key.device, key.f_cnt, key.digest, now) for key in uplinks],
    )
    if not watching:
        return []
    return [EntityChange(None, e) for e in new] + [EntityChange(before[e.id], e) for e in changed]


def _stored(conn: sqlite3.Connection, tenant: str, ids: list[str]) -> dict[str, Entity]:
    """The stored entities with these ids."""
    found: dict[str, Entity] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in conn.execute(
            f"SELECT {_COLUMNS} FROM entities e WHERE e.tenant = ? AND e.id IN ({marks})",
            (tenant, *chunk),
        ):
            found[row[1]] = _entity(row)
    return found


def _insert_history(conn: sqlite3.Connection, tenant: str, history: list[HistoryRow]) -> None:
    """Append attribute instances to the temporal store; a row already there stays as it is."""
    temporal_sqlite.add_history(conn, tenant, history)


def _statements(sql: str) -> Iterable[str]:
    """Split a migration into statements (comments first, since they may hold semicolons)."""
    code = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    for statement in code.split(";"):
        if statement.strip():
            yield statement.strip()


def _ensure_tenant(conn: sqlite3.Connection, tenant: str) -> None:
    if tenant != DEFAULT_TENANT:
        conn.execute(
            "INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?, ?)", (tenant, _now())
        )


def _write_batch(
    conn: sqlite3.Connection,
    sets: _SetResolver,
    tenant: str,
    entities: list[Entity],
    *,
    replace: bool,
) -> list[bool]:
    """Create (or, with replace, overwrite) entities set-wise; True where created.

    Runs on the single writer thread inside one transaction, so primary keys can be handed out
    here and every table is written with one executemany per batch.
    """
    _ensure_tenant(conn, tenant)
    known: dict[str, tuple[int, str]] = {}
    ids = list(dict.fromkeys(e.id for e in entities))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        for entity_id, pk, created_at in conn.execute(
            f"SELECT id, pk, created_at FROM entities WHERE tenant = ? AND id IN ({marks})",
            (tenant, *chunk),
        ):
            known[entity_id] = (pk, created_at)
    next_pk = conn.execute("SELECT coalesce(max(pk), 0) + 1 FROM entities").fetchone()[0]
    results: list[bool] = []
    new: dict[int, Entity] = {}
    rewritten: dict[int, Entity] = {}
    for entity in entities:
        found = known.get(entity.id)
        if found is None:
            known[entity.id] = (next_pk, entity.created_at)
            entity.version = 1
            new[next_pk] = entity
            next_pk += 1
            results.append(True)
            continue
        results.append(False)
        if not replace:
            continue
        pk, entity.created_at = found
        if pk in new:
            new[pk] = entity
        else:
            rewritten[pk] = entity
    set_ids = sets.ids(conn, new.values())
    conn.executemany(
        "INSERT INTO entities (pk, tenant, id, types, scopes, doc, created_at, modified_at, "
        "expires_at, attrset, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
        [
            (pk, tenant, e.id, *_columns(e), set_id)
            for (pk, e), set_id in zip(new.items(), set_ids, strict=True)
        ],
    )
    _index(conn, tenant, new)
    _rewrite(conn, sets, tenant, rewritten)
    return results


def _rewrite(
    conn: sqlite3.Connection, sets: _SetResolver, tenant: str, entities: dict[int, Entity]
) -> None:
    """Overwrite existing rows (by primary key) and their index rows."""
    if not entities:
        return
    for entity in entities.values():
        entity.version += 1
    set_ids = sets.ids(conn, entities.values())
    conn.executemany(
        "UPDATE entities SET types = ?, scopes = ?, doc = ?, created_at = ?, modified_at = ?, "
        "expires_at = ?, attrset = ?, version = version + 1 WHERE pk = ?",
        [
            (*_columns(e), set_id, pk)
            for (pk, e), set_id in zip(entities.items(), set_ids, strict=True)
        ],
    )
    _index(conn, tenant, entities, existing=True)


def _columns(entity: Entity) -> tuple[Any, ...]:
    return (
        orjson.dumps(entity.types).decode(),
        None if entity.scopes is None else orjson.dumps(entity.scopes).decode(),
        orjson.dumps(entity.attrs).decode(),
        entity.created_at,
        entity.modified_at,
        entity.expires_at,
    )


def _delete_pks(conn: sqlite3.Connection, pks: list[int]) -> None:
    _unindex(conn, pks)
    for start in range(0, len(pks), 500):
        chunk = pks[start : start + 500]
        conn.execute(f"DELETE FROM entities WHERE pk IN ({', '.join('?' for _ in chunk)})", chunk)


def _index(
    conn: sqlite3.Connection, tenant: str, entities: dict[int, Entity], *, existing: bool = False
) -> None:
    """Write the type and geo index rows of entities (by primary key).

    For existing entities only the rows that changed are written: a new reading of a sensor
    rarely moves it or changes its type, and R*Tree deletes are the dearest writes here.
    """
    if not entities:
        return
    types: list[tuple[str, str, int]] = []
    geo: list[tuple[int, str, str, dict[str, Any]]] = []
    for pk, entity in entities.items():
        types.extend((tenant, type_, pk) for type_ in entity.types)
        for attr, instances in entity.attrs.items():
            for instance in instances:
                if instance["type"] == GEOPROPERTY:
                    value = instance["value"]
                    geo.append((pk, attr, orjson.dumps(value).decode(), value))
    if existing:
        types, geo = _changed_index_rows(conn, list(entities), types, geo)
    conn.executemany(
        "INSERT OR IGNORE INTO entity_types (tenant, type, entity) VALUES (?, ?, ?)", types
    )
    if not geo:
        return
    next_gid = conn.execute("SELECT coalesce(max(gid), 0) + 1 FROM entity_geo").fetchone()[0]
    gids = range(next_gid, next_gid + len(geo))
    conn.executemany(
        "INSERT INTO entity_geo (gid, entity, attr, geojson) VALUES (?, ?, ?, ?)",
        [(gid, pk, attr, text) for gid, (pk, attr, text, _) in zip(gids, geo, strict=True)],
    )
    conn.executemany(
        "INSERT INTO entity_geo_box (gid, minx, maxx, miny, maxy) VALUES (?, ?, ?, ?, ?)",
        [(gid, *_box(value)) for gid, (_, _, _, value) in zip(gids, geo, strict=True)],
    )


def _changed_index_rows(
    conn: sqlite3.Connection,
    pks: list[int],
    types: list[tuple[str, str, int]],
    geo: list[tuple[int, str, str, dict[str, Any]]],
) -> tuple[list[tuple[str, str, int]], list[tuple[int, str, str, dict[str, Any]]]]:
    """Delete the index rows of existing entities that the new rows do not repeat; return the
    new rows that are not there yet."""
    old_types: set[tuple[str, str, int]] = set()
    old_geo: dict[tuple[int, str, str], list[int]] = {}
    for start in range(0, len(pks), 500):
        chunk = pks[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        old_types.update(
            conn.execute(
                f"SELECT tenant, type, entity FROM entity_types WHERE entity IN ({marks})", chunk
            )
        )
        for gid, pk, attr, text in conn.execute(
            f"SELECT gid, entity, attr, geojson FROM entity_geo WHERE entity IN ({marks})", chunk
        ):
            old_geo.setdefault((pk, attr, text), []).append(gid)
    conn.executemany(
        "DELETE FROM entity_types WHERE tenant = ? AND type = ? AND entity = ?",
        old_types.difference(types),
    )
    added: list[tuple[int, str, str, dict[str, Any]]] = []
    for row in geo:
        same = old_geo.get(row[:3])
        if same:
            same.pop()
        else:
            added.append(row)
    stale = [(gid,) for gids in old_geo.values() for gid in gids]
    conn.executemany("DELETE FROM entity_geo_box WHERE gid = ?", stale)
    conn.executemany("DELETE FROM entity_geo WHERE gid = ?", stale)
    return [row for row in types if row not in old_types], added


def _box(geometry: dict[str, Any]) -> tuple[float, float, float, float]:
    """(minx, maxx, miny, maxy); points, the usual case, without a round trip through shapely."""
    if geometry["type"] == "Point":
        x, y = geometry["coordinates"][:2]
        return x, x, y, y
    minx, miny, maxx, maxy = shapely.from_geojson(orjson.dumps(geometry).decode()).bounds
    return minx, maxx, miny, maxy


def _unindex(conn: sqlite3.Connection, pks: list[int]) -> None:
    for start in range(0, len(pks), 500):
        chunk = pks[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        conn.execute(f"DELETE FROM entity_types WHERE entity IN ({marks})", chunk)
        conn.execute(
            "DELETE FROM entity_geo_box WHERE gid IN "
            f"(SELECT gid FROM entity_geo WHERE entity IN ({marks}))",
            chunk,
        )
        conn.execute(f"DELETE FROM entity_geo WHERE entity IN ({marks})", chunk)


def _entity(row: Any) -> Entity:
    return Entity(
        id=row[1],
        types=orjson.loads(row[2]),
        scopes=None if row[3] is None else orjson.loads(row[3]),
        attrs=orjson.loads(row[4]),
        created_at=row[5],
        modified_at=row[6],
        expires_at=row[7],
        version=row[8],
    )
