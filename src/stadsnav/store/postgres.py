"""The PostgreSQL store: a pool of asyncio connections, PostGIS for geometry, JSONB documents.

Every write is one transaction and set-based: a batch travels as a handful of array parameters
(`unnest`), the entities are written with one `INSERT ... ON CONFLICT` or `UPDATE ... FROM`, and
the geo index rows (entity_geo) are rewritten with one DELETE and one INSERT, only where they
changed. Which attributes an entity has is one shared attribute set (store/attrsets.py). Reads
run in autocommit, so fetching an entity is one round trip.

The database is created (if missing) and migrated on first start; migrations run in a
transaction holding an advisory lock, so several workers starting together do not race.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import psycopg
import shapely
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool

from stadsnav.ngsild.entity import GEOPROPERTY, Entity, Instance
from stadsnav.ngsild.errors import AlreadyExists
from stadsnav.ngsild.names import format_datetime
from stadsnav.ngsild.query import EntityQuery
from stadsnav.ngsild.temporal import AggregatePage, Aggregation, HistoryScan
from stadsnav.store import subscriptions_postgres, temporal_postgres
from stadsnav.store.attrsets import AttrSetIds, Members, members_of, signature
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
from stadsnav.store.copytext import copy_json, copy_text
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

Conn = AsyncConnection[TupleRow]
Mode = Literal["insert", "upsert"]

# pg_advisory_xact_lock key serialising migrations ("stadsnav" in ASCII).
_MIGRATION_LOCK = 0x7374_6164_736E_6176
_COLUMNS = "e.id, e.types, e.scopes, e.doc, e.created_at, e.modified_at, e.expires_at, e.version"
_LIVE = "(e.expires_at IS NULL OR e.expires_at > %s)"

# Batches are copied into this per-connection staging table, then written set-based from it.
_STAGE = "stadsnav_stage"
_STAGE_DDL = (
    f'CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (id TEXT COLLATE "C" NOT NULL, types TEXT NOT NULL, '
    "scopes JSONB, doc JSONB NOT NULL, created_at TEXT NOT NULL, modified_at TEXT NOT NULL, "
    "expires_at TEXT, attrset BIGINT NOT NULL, version INTEGER NOT NULL) ON COMMIT DELETE ROWS"
)
_COPY_STAGE = (
    f"COPY {_STAGE} (id, types, scopes, doc, created_at, modified_at, expires_at, attrset, "
    "version) FROM STDIN"
)
# The geo rows of a batch are staged too, so that a rewrite only touches rows that changed:
# an entity replaced with the same location (the usual sensor update) costs no index writes.
_GEO_STAGE = "stadsnav_geo_stage"
_STAGE_GEO_DDL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_GEO_STAGE} (entity BIGINT NOT NULL, attr TEXT NOT NULL, "
    "geom geometry NOT NULL) ON COMMIT DELETE ROWS"
)
_COPY_GEO = "COPY entity_geo (entity, attr, geom) FROM STDIN"
# History rows are staged too (store/temporal_postgres.py): COPY is far cheaper than array
# parameters, and the final INSERT leaves rows that are already there (a redelivery) alone.
_COPY_GEO_STAGE = f"COPY {_GEO_STAGE} (entity, attr, geom) FROM STDIN"
_UNSTAGE_GEO = f"DELETE FROM {_GEO_STAGE}"
# Drop the geo rows of rewritten entities (%s: their pks) that the staged rows do not repeat,
# then add the staged rows that are not there yet.
_DROP_GEO = (
    "DELETE FROM entity_geo g WHERE g.entity = ANY(%s::bigint[]) AND NOT EXISTS "
    f"(SELECT 1 FROM {_GEO_STAGE} s WHERE s.entity = g.entity AND s.attr = g.attr "
    "AND s.geom = g.geom)"
)
_ADD_GEO = (
    "INSERT INTO entity_geo (entity, attr, geom) SELECT s.entity, s.attr, s.geom "
    f"FROM {_GEO_STAGE} s WHERE NOT EXISTS (SELECT 1 FROM entity_geo g "
    "WHERE g.entity = ANY(%s::bigint[]) "
    "AND g.entity = s.entity AND g.attr = s.attr AND g.geom = s.geom)"
)
# Rows are taken in id order so that concurrent batches lock shared rows in the same order.
_INSERT = (
    "INSERT INTO entities AS e (tenant, id, types, scopes, doc, created_at, modified_at, "
    "expires_at, attrset, version) SELECT %s, t.id, t.types::text[], t.scopes, t.doc, "
    f"t.created_at, t.modified_at, t.expires_at, t.attrset, 1 FROM {_STAGE} t ORDER BY t.id "
    "ON CONFLICT (tenant, id) DO "
)
_INSERT_SQL = _INSERT + "NOTHING RETURNING e.id, e.pk, true, e.created_at, e.version"
_UPSERT_SQL = _INSERT + (
    "UPDATE SET types = EXCLUDED.types, scopes = EXCLUDED.scopes, doc = EXCLUDED.doc, "
    "modified_at = EXCLUDED.modified_at, expires_at = EXCLUDED.expires_at, "
    "attrset = EXCLUDED.attrset, version = e.version + 1 "
    "RETURNING e.id, e.pk, (e.xmax = 0), e.created_at, e.version"
)
_SAVE_SQL = (
    "UPDATE entities AS e SET types = l.types::text[], scopes = l.scopes, doc = l.doc, "
    "created_at = l.created_at, modified_at = l.modified_at, expires_at = l.expires_at, "
    "attrset = l.attrset, version = e.version + 1 FROM (SELECT c.pk, t.* FROM entities c JOIN "
    f"{_STAGE} t ON c.tenant = %s AND c.id = t.id AND c.version = t.version "
    "ORDER BY c.id FOR UPDATE OF c) AS l WHERE e.pk = l.pk "
    "RETURNING e.id, e.pk, false, e.created_at, e.version"
)
# One entity at a time: plain parameters, geo rows from arrays.
_ROW = "%s, %s, %s, %s, %s, %s, %s, %s, %s"
_INSERT_ONE = (
    "WITH ins AS (INSERT INTO entities (tenant, id, types, scopes, doc, created_at, modified_at, "
    f"expires_at, attrset, version) VALUES ({_ROW}, 1) ON CONFLICT (tenant, id) DO NOTHING "
    "RETURNING pk), "
    "g AS (INSERT INTO entity_geo (entity, attr, geom) SELECT ins.pk, u.attr, u.geom::geometry "
    "FROM ins, unnest(%s::text[], %s::text[]) AS u(attr, geom)) "
    "SELECT pk FROM ins"
)
# Deleting entities deletes their index rows in the same statement.
_DELETE = (
    "WITH gone AS (DELETE FROM entities e WHERE {where} RETURNING e.pk, e.id), "
    "g AS (DELETE FROM entity_geo WHERE entity IN (SELECT pk FROM gone)) "
    "SELECT id FROM gone"
)
# The same, returning what was deleted (as _COLUMNS, then the tenant) for the change observer.
_DELETE_WHOLE = (
    "WITH gone AS (DELETE FROM entities e WHERE {where} RETURNING e.*), "
    "g AS (DELETE FROM entity_geo WHERE entity IN (SELECT pk FROM gone)) "
    f"SELECT {_COLUMNS}, e.tenant FROM gone e"
)


# New attribute sets (%s: signatures, then members as signature, attr, kinds), each with its
# members in one statement; a set another worker made meanwhile is left alone and looked up.
_CREATE_SETS = (
    "WITH new AS (INSERT INTO attr_sets (signature) SELECT unnest(%s::text[]) "
    "ON CONFLICT (signature) DO NOTHING RETURNING id, signature), "
    "m AS (INSERT INTO attr_set_members (attrset, attr, kinds) SELECT new.id, u.attr, u.kinds "
    "FROM new JOIN unnest(%s::text[], %s::text[], %s::text[]) AS u(signature, attr, kinds) "
    "ON u.signature = new.signature) "
    "SELECT id, signature FROM new"
)
# The distinct (type, attribute set) pairs of a tenant's live entities.
_TYPE_SETS = (
    "SELECT DISTINCT t.type, e.attrset FROM entities e CROSS JOIN unnest(e.types) AS t(type) "
    f"WHERE e.tenant = %s AND {_LIVE}"
)


def _now() -> str:
    return format_datetime(datetime.now(UTC))


async def _insert_history(conn: Conn, tenant: str, history: list[HistoryRow]) -> None:
    """Append attribute instances to the temporal store; a row already there stays as it is."""
    await temporal_postgres.add_history(conn, tenant, history)


class PostgresStore:
    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 10) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._sets = AttrSetIds()
        # New attribute sets are made on a connection of their own, in autocommit: a set is then
        # visible to every worker at once, and making one never waits on (or holds) the locks of
        # an entity write, nor a second connection from the pool.
        self._sets_conn: Conn | None = None
        self._sets_lock = asyncio.Lock()
        # Told of every entity change inside its transaction (history, subscriptions).
        self.observer: ChangeObserver | None = None

    # -- connections ---------------------------------------------------------------------------

    @property
    def pool(self) -> AsyncConnectionPool[Conn]:
        if self._pool is None:
            raise RuntimeError("PostgresStore is not open")
        return self._pool

    @staticmethod
    async def _configure(conn: Conn) -> None:
        set_json_dumps(orjson.dumps, conn)
        set_json_loads(orjson.loads, conn)
        for ddl in (_STAGE_DDL, _STAGE_GEO_DDL, temporal_postgres.STAGE_DDL):
            await conn.execute(ddl)

    async def open(self) -> None:
        conn = await self._connect_creating()
        async with conn:
            await self._migrate(conn)
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url,
            min_size=self.min_size,
            max_size=self.max_size,
            kwargs={"autocommit": True, "client_encoding": "utf8"},
            configure=self._configure,
            open=False,
            name="stadsnav",
        )
        await pool.open(wait=True, timeout=30)
        self._pool = pool

    async def _connect_creating(self) -> Conn:
        """A connection to the configured database, which is created first if it is missing."""
        try:
            return await AsyncConnection.connect(self.url, autocommit=True)
        except psycopg.OperationalError as error:
            name = conninfo_to_dict(self.url).get("dbname")
            if not name or not await _create_database(self.url, str(name)):
                raise error from None
        return await AsyncConnection.connect(self.url, autocommit=True)

    async def _migrate(self, conn: Conn) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            cursor = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cursor.fetchall()}
            for version, sql in migration_files("postgres"):
                if version in done:
                    continue
                # Without parameters psycopg sends the script as one simple query.
                await conn.execute(sql.encode())
                await conn.execute(
                    "INSERT INTO schema_migrations (version) VALUES (%s)", (version,)
                )
            await conn.execute(
                "INSERT INTO tenants (name) VALUES (%s) ON CONFLICT DO NOTHING", (DEFAULT_TENANT,)
            )

    async def close(self) -> None:
        if self._sets_conn is not None:
            await self._sets_conn.close()
            self._sets_conn = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- tenants -------------------------------------------------------------------------------

    async def tenant_exists(self, tenant: str) -> bool:
        async with self.pool.connection() as conn:
            cursor = await conn.execute("SELECT 1 FROM tenants WHERE name = %s", (tenant,))
            return await cursor.fetchone() is not None

    async def tenants(self) -> list[str]:
        async with self.pool.connection() as conn:
            cursor = await conn.execute('SELECT name FROM tenants ORDER BY name COLLATE "C"')
            return [row[0] for row in await cursor.fetchall()]

    # -- writes --------------------------------------------------------------------------------

    async def _set_ids(self, entities: Sequence[Entity]) -> list[int]:
        """The attribute set of each entity, made first where it is new."""
        signatures: list[str] = []
        missing: dict[str, Members] = {}
        for entity in entities:
            members = members_of(entity.attrs)
            sig = signature(members)
            signatures.append(sig)
            if self._sets.get(sig) is None:
                missing[sig] = members
        if missing:
            await self._make_sets(missing)
        return [self._sets.get(sig) or 0 for sig in signatures]

    async def _make_sets(self, missing: dict[str, Members]) -> None:
        # Sorted, so that two workers making overlapping sets take the unique-index locks in the
        # same order.
        ordered = sorted(missing)
        columns: tuple[list[str], list[str], list[str]] = ([], [], [])
        for sig in ordered:
            for attr, kinds in missing[sig]:
                columns[0].append(sig)
                columns[1].append(attr)
                columns[2].append(kinds)
        async with self._sets_lock:
            if self._sets_conn is None or self._sets_conn.closed:
                self._sets_conn = await AsyncConnection.connect(self.url, autocommit=True)
            conn = self._sets_conn
            cursor = await conn.execute(_CREATE_SETS, (ordered, *columns))
            found = {sig: int(set_id) for set_id, sig in await cursor.fetchall()}
            others = [sig for sig in ordered if sig not in found]
            if others:
                cursor = await conn.execute(
                    "SELECT id, signature FROM attr_sets WHERE signature = ANY(%s)", (others,)
                )
                found.update({sig: int(set_id) for set_id, sig in await cursor.fetchall()})
        self._sets.remember(found)

    async def insert(self, tenant: str, entity: Entity) -> None:
        if self.observer is not None:
            if not (await self.insert_many(tenant, [entity]))[0]:
                raise AlreadyExists(f"Entity {entity.id} already exists")
            return
        # One statement writes the entity row and its geo rows, if the id is free.
        (set_id,) = await self._set_ids([entity])
        params = (*_row_params(tenant, entity), set_id, *_geo_arrays(entity))
        async with self.pool.connection() as conn:
            async with conn.pipeline():
                await conn.execute("BEGIN")
                if tenant != DEFAULT_TENANT:
                    await conn.execute(
                        "INSERT INTO tenants (name) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,)
                    )
                inserted = await conn.execute(_INSERT_ONE, params)
                await conn.execute("COMMIT")
            if await inserted.fetchone() is None:
                raise AlreadyExists(f"Entity {entity.id} already exists")
        entity.version = 1

    async def insert_many(self, tenant: str, entities: list[Entity]) -> list[bool]:
        return await self._write(tenant, entities, "insert")

    async def upsert_many(self, tenant: str, entities: list[Entity]) -> list[bool]:
        return await self._write(tenant, entities, "upsert")

    async def _write(self, tenant: str, entities: list[Entity], mode: Mode) -> list[bool]:
        results = [False] * len(entities)
        if not entities:
            return results
        sql = _INSERT_SQL if mode == "insert" else _UPSERT_SQL
        set_ids = await self._set_ids(entities)
        async with self.pool.connection() as conn, conn.transaction():
            await _ensure_tenant(conn, tenant)
            before: dict[str, Entity] = {}
            if mode == "upsert" and self._watching(tenant):
                before = await self._locked(conn, tenant, [e.id for e in entities])
            created = await _write_rounds(conn, tenant, entities, set_ids, sql)
            await self._tell(
                conn,
                tenant,
                [
                    EntityChange(before.get(e.id), e, replaced=not new)
                    for e, new in zip(entities, created, strict=True)
                    if new or mode == "upsert"
                ],
            )
            return created

    def _watching(self, tenant: str) -> bool:
        return self.observer is not None and self.observer.watching(tenant)

    async def _tell(
        self, conn: Conn, tenant: str, changes: list[EntityChange], *, history: bool = True
    ) -> None:
        """Write what the observer makes of these changes, in the same transaction."""
        if self.observer is None or not changes:
            return
        found = self.observer.consequences(tenant, changes, _now())
        if history:
            await _insert_history(conn, tenant, found.history)
        if found.notifications:
            async with conn.cursor() as cursor:
                await subscriptions_postgres.add_notifications(cursor, tenant, found.notifications)

    async def record(
        self,
        tenant: str,
        fragments: list[Entity],
        merge: Merge,
        history: list[HistoryRow],
        uplinks: list[UplinkKey],
    ) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await _ensure_tenant(conn, tenant)
            pending = list(fragments)
            # Twice at most: an entity another worker creates meanwhile is merged into then.
            watching = self._watching(tenant)
            changes: list[EntityChange] = []
            for _ in range(2):
                stored = await self._locked(conn, tenant, [f.id for f in pending])
                before = {i: copy_entity(e) for i, e in stored.items()} if watching else {}
                created, changed = merge_fragments(pending, stored, merge)
                if watching:
                    changes.extend(EntityChange(before[e.id], e) for e in changed)
                if changed:
                    await _save(conn, tenant, changed, await self._set_ids(changed))
                done = await _write_rounds(
                    conn, tenant, created, await self._set_ids(created), _INSERT_SQL
                )
                lost = {e.id for e, ok in zip(created, done, strict=True) if not ok}
                if watching:
                    changes.extend(
                        EntityChange(None, e) for e, ok in zip(created, done, strict=True) if ok
                    )
                pending = [f for f in fragments if f.id in lost]
                if not pending:
                    break
            else:
                raise RuntimeError(f"Entities {sorted(lost)} could be neither created nor merged")
            await _insert_history(conn, tenant, history)
            await self._tell(conn, tenant, changes, history=False)
            if uplinks:
                await conn.execute(
                    "INSERT INTO uplinks (tenant, device, f_cnt, digest, stored_at) "
                    "SELECT %s, u.*, %s FROM unnest(%s::text[], %s::bigint[], %s::text[]) AS u "
                    "ON CONFLICT DO NOTHING",
                    (
                        tenant,
                        _now(),
                        [key.device for key in uplinks],
                        [key.f_cnt for key in uplinks],
                        [key.digest for key in uplinks],
                    ),
                )

    async def _locked(self, conn: Conn, tenant: str, ids: list[str]) -> dict[str, Entity]:
        """The stored entities with these ids, locked for update in id order."""
        cursor = await conn.execute(
            f"SELECT {_COLUMNS} FROM entities e WHERE e.tenant = %s AND e.id = ANY(%s) "
            "ORDER BY e.id FOR UPDATE",
            (tenant, sorted(set(ids))),
        )
        return {row[0]: _entity(row) for row in await cursor.fetchall()}

    async def stored_uplinks(self, tenant: str, keys: list[UplinkKey]) -> set[UplinkKey]:
        if not keys:
            return set()
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT u.device, u.f_cnt, u.digest FROM uplinks u JOIN unnest(%s::text[], "
                "%s::bigint[], %s::text[]) AS k(device, f_cnt, digest) ON u.tenant = %s "
                "AND u.device = k.device AND u.f_cnt = k.f_cnt AND u.digest = k.digest",
                (
                    [key.device for key in keys],
                    [key.f_cnt for key in keys],
                    [key.digest for key in keys],
                    tenant,
                ),
            )
            return {UplinkKey(d, int(f), g) for d, f, g in await cursor.fetchall()}

    async def history(
        self, tenant: str, entity_id: str, attr: str | None = None
    ) -> list[HistoryRow]:
        sql = (
            "SELECT entity_id, attr, dataset_id, observed_at, instance FROM history "
            "WHERE tenant = %s AND entity_id = %s"
        )
        params: list[Any] = [tenant, entity_id]
        if attr is not None:
            sql += " AND attr = %s"
            params.append(attr)
        async with self.pool.connection() as conn:
            cursor = await conn.execute(sql + " ORDER BY observed_at, attr", params)
            rows = await cursor.fetchall()
            return [HistoryRow(e, a, d or None, format_datetime(o), i) for e, a, d, o, i in rows]

    # -- temporal (store/temporal_postgres.py) -------------------------------------------------

    async def add_history(
        self, tenant: str, rows: list[HistoryRow], *, fresh: bool = False
    ) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await temporal_postgres.add_history(conn, tenant, rows, fresh=fresh)

    async def history_entities(
        self, tenant: str, scan: HistoryScan, limit: int, offset: int, count: bool
    ) -> tuple[list[tuple[str, str]], int | None]:
        async with self.pool.connection() as conn:
            return await temporal_postgres.history_entities(
                conn, tenant, scan, limit, offset, count
            )

    async def history_instances(
        self, tenant: str, scan: HistoryScan, ids: list[str], most: int, *, newest: bool
    ) -> list[HistoryRow]:
        async with self.pool.connection() as conn:
            return await temporal_postgres.history_instances(
                conn, tenant, scan, ids, most, newest=newest
            )

    async def history_aggregate(
        self, tenant: str, scan: HistoryScan, ids: list[str], aggregation: Aggregation
    ) -> AggregatePage:
        async with self.pool.connection() as conn:
            return await temporal_postgres.history_aggregate(conn, tenant, scan, ids, aggregation)

    async def history_type(self, tenant: str, entity_id: str) -> str | None:
        async with self.pool.connection() as conn:
            if not await temporal_postgres.history_exists(conn, tenant, entity_id):
                return None
            return await temporal_postgres.history_type(conn, tenant, entity_id) or ""

    async def delete_history(
        self,
        tenant: str,
        entity_id: str,
        attr: str | None = None,
        dataset_id: str | None = None,
        every_dataset: bool = False,
    ) -> int:
        async with self.pool.connection() as conn, conn.transaction():
            return await temporal_postgres.delete_history(
                conn, tenant, entity_id, attr, dataset_id, every_dataset
            )

    async def change_history_instance(
        self,
        tenant: str,
        entity_id: str,
        attr: str,
        instance_id: str,
        change: Callable[[Instance], Instance] | None,
    ) -> bool:
        async with self.pool.connection() as conn, conn.transaction():
            return await temporal_postgres.change_history_instance(
                conn, tenant, entity_id, attr, instance_id, change
            )

    async def expire_history(
        self,
        before: str,
        types: frozenset[str] | None,
        keep: frozenset[str],
        most_entities: int,
        after: tuple[str, str],
    ) -> tuple[int, tuple[str, str] | None]:
        async with self.pool.connection() as conn, conn.transaction():
            return await temporal_postgres.expire_history(
                conn, before, types, keep, most_entities, after
            )

    async def drop_history_partitions(self, before: str) -> int:
        async with self.pool.connection() as conn:
            return await temporal_postgres.drop_partitions(conn, before)

    async def put_device(self, tenant: str, device: DeviceRecord) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await _ensure_tenant(conn, tenant)
            await conn.execute(
                f"INSERT INTO devices (tenant, {DEVICE_COLUMNS}) VALUES ({_DEVICE_MARKS}) "
                "ON CONFLICT (tenant, key) DO UPDATE SET device_id = EXCLUDED.device_id, "
                "model = EXCLUDED.model, owner = EXCLUDED.owner, state = EXCLUDED.state, "
                "target_id = EXCLUDED.target_id, target_type = EXCLUDED.target_type, "
                "settings = EXCLUDED.settings, lon = EXCLUDED.lon, lat = EXCLUDED.lat, "
                "secret_hash = EXCLUDED.secret_hash, modified_at = EXCLUDED.modified_at, "
                "name = EXCLUDED.name, district = EXCLUDED.district, "
                "controlled_property = EXCLUDED.controlled_property, "
                "co_users = EXCLUDED.co_users, installed_at = EXCLUDED.installed_at",
                _device_params(tenant, device),
            )

    async def add_devices(
        self, tenant: str, devices: list[DeviceRecord], events: list[DeviceEvent]
    ) -> list[bool]:
        if not devices:
            return []
        added: list[bool] = []
        async with self.pool.connection() as conn, conn.transaction():
            await _ensure_tenant(conn, tenant)
            for device in devices:
                # No conflict target: a taken key and a taken device id both leave the row out.
                cursor = await conn.execute(
                    f"INSERT INTO devices (tenant, {DEVICE_COLUMNS}) VALUES ({_DEVICE_MARKS}) "
                    "ON CONFLICT DO NOTHING",
                    _device_params(tenant, device),
                )
                added.append(cursor.rowcount == 1)
            taken = {d.key for d, ok in zip(devices, added, strict=True) if not ok}
            await _add_device_events(conn, tenant, [e for e in events if e.device not in taken])
        return added

    async def change_device(
        self, tenant: str, key: str, change: DeviceChange
    ) -> DeviceRecord | None:
        async with self.pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                f"SELECT {DEVICE_COLUMNS} FROM devices WHERE tenant = %s AND key = %s FOR UPDATE",
                (tenant, key),
            )
            row = await cursor.fetchone()
            if row is None:
                return None
            device, events = change(_device(row))
            # Every column but the key (the tenant and key come first in the parameters).
            await conn.execute(
                f"UPDATE devices SET {_DEVICE_UPDATE} WHERE tenant = %s AND key = %s",
                (*_device_params(tenant, device)[2:], tenant, key),
            )
            await _add_device_events(conn, tenant, events)
        return device

    async def find_devices(self, tenant: str, query: DeviceQuery) -> list[DeviceRecord]:
        sql = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE tenant = %s"
        params: list[Any] = [tenant]
        for column, value in (
            ("owner", query.owner),
            ("model", query.model),
            ("target_id", query.target_id),
        ):
            if value is not None:
                sql += f" AND {column} = %s"
                params.append(value)
        if query.states is not None:
            sql += " AND state = ANY(%s)"
            params.append(sorted(query.states))
        if query.controlled_property is not None:
            sql += " AND controlled_property && %s::text[]"
            params.append(sorted(query.controlled_property))
        if query.box is not None:
            min_lon, min_lat, max_lon, max_lat = query.box
            sql += " AND lat BETWEEN %s AND %s AND lon BETWEEN %s AND %s"
            params.extend((min_lat, max_lat, min_lon, max_lon))
        sql += " ORDER BY key LIMIT %s OFFSET %s"
        params.extend((query.limit, query.offset))
        async with self.pool.connection() as conn:
            cursor = await conn.execute(sql, params)
            return [_device(row) for row in await cursor.fetchall()]

    async def device_events(self, tenant: str, key: str) -> list[DeviceEvent]:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM device_events WHERE tenant = %s AND device = %s "
                "ORDER BY id",
                (tenant, key),
            )
            return [
                DeviceEvent(d, a, k, w, f, t, r, x, int(i))
                for i, d, a, k, w, f, t, r, x in await cursor.fetchall()
            ]

    async def devices(self, tenant: str, keys: list[str] | None = None) -> list[DeviceRecord]:
        sql = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE tenant = %s"
        params: list[Any] = [tenant]
        if keys is not None:
            sql += " AND key = ANY(%s)"
            params.append(keys)
        async with self.pool.connection() as conn:
            cursor = await conn.execute(sql + " ORDER BY key", params)
            return [_device(row) for row in await cursor.fetchall()]

    async def add_dead_letters(self, tenant: str, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        async with self.pool.connection() as conn, conn.transaction():
            for letter in letters:
                cursor = await conn.execute(
                    "INSERT INTO dead_letters (tenant, received_at, transport, network, event, "
                    "source, device, stage, reason, body) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
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
                row = await cursor.fetchone()
                letter.id = 0 if row is None else int(row[0])

    async def dead_letters(
        self, tenant: str, *, open_only: bool, limit: int, offset: int, ids: list[int] | None = None
    ) -> list[DeadLetter]:
        sql = f"SELECT {LETTER_COLUMNS} FROM dead_letters WHERE tenant = %s"
        params: list[Any] = [tenant]
        if open_only:
            sql += " AND (outcome IS NULL OR outcome != 'stored')"
        if ids is not None:
            sql += " AND id = ANY(%s)"
            params.append(ids)
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                sql + " ORDER BY id DESC LIMIT %s OFFSET %s", [*params, limit, offset]
            )
            return [letter_from_row(row) for row in await cursor.fetchall()]

    async def settle_dead_letter(
        self, tenant: str, letter_id: int, when: str, outcome: str
    ) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE dead_letters SET replayed_at = %s, outcome = %s "
                "WHERE tenant = %s AND id = %s",
                (when, outcome, tenant, letter_id),
            )

    async def modify(self, tenant: str, entity_id: str, change: Change) -> bool:
        return bool(await self.modify_many(tenant, [entity_id], change))

    async def modify_many(self, tenant: str, ids: list[str], change: Change) -> list[str]:
        if not ids:
            return []
        async with self.pool.connection() as conn, conn.transaction():
            # Locked in id order, so concurrent batches over shared entities cannot deadlock.
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM entities e WHERE e.tenant = %s AND e.id = ANY(%s) "
                f"AND {_LIVE} ORDER BY e.id FOR UPDATE",
                (tenant, list(dict.fromkeys(ids)), _now()),
            )
            found = [_entity(row) for row in await cursor.fetchall()]
            changes: list[EntityChange] = []
            for entity in found:
                before = copy_entity(entity) if self.observer is not None else None
                if change(entity):
                    changes.append(EntityChange(before, entity))
            changed = [c.after for c in changes if c.after is not None]
            if changed:
                await _save(conn, tenant, changed, await self._set_ids(changed))
                await self._tell(conn, tenant, changes)
        present = {entity.id for entity in found}
        return [entity_id for entity_id in dict.fromkeys(ids) if entity_id in present]

    async def delete(self, tenant: str, entity_id: str) -> bool:
        return (await self.delete_many(tenant, [entity_id]))[0]

    async def delete_many(self, tenant: str, ids: list[str]) -> list[bool]:
        if not ids:
            return []
        where = "e.tenant = %s AND e.id = ANY(%s)"
        async with self.pool.connection() as conn, conn.transaction():
            gone = await self._delete(conn, where, (tenant, list(dict.fromkeys(ids))))
            deleted = set(gone)
        results = []
        for entity_id in ids:
            results.append(entity_id in deleted)
            deleted.discard(entity_id)
        return results

    async def purge(self, tenant: str, query: EntityQuery) -> int:
        where, params = compile_where(query, tenant, _now(), "postgres")
        return await self._delete_where(where, params)

    async def delete_expired(self, now: str) -> int:
        return await self._delete_where("e.expires_at IS NOT NULL AND e.expires_at <= %s", [now])

    async def _delete_where(self, where: str, params: Sequence[Any]) -> int:
        async with self.pool.connection() as conn, conn.transaction():
            return len(await self._delete(conn, where, params))

    async def _delete(self, conn: Conn, where: str, params: Sequence[Any]) -> list[str]:
        """Delete the entities `where` selects and tell the observer; the deleted ids."""
        if self.observer is None:
            cursor = await conn.execute(_DELETE.format(where=where), params)
            return [row[0] for row in await cursor.fetchall()]
        cursor = await conn.execute(_DELETE_WHOLE.format(where=where), params)
        rows = await cursor.fetchall()
        gone: dict[str, list[EntityChange]] = {}
        for row in rows:
            if self._watching(row[-1]):
                gone.setdefault(row[-1], []).append(EntityChange(_entity(row), None))
        for owner, changes in gone.items():
            await self._tell(conn, owner, changes)
        return [row[0] for row in rows]

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, tenant: str, entity_id: str) -> Entity | None:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM entities e WHERE e.tenant = %s AND e.id = %s AND {_LIVE}",
                (tenant, entity_id, _now()),
            )
            row = await cursor.fetchone()
        return None if row is None else _entity(row)

    async def get_many(self, tenant: str, ids: list[str]) -> dict[str, Entity]:
        if not ids:
            return {}
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM entities e WHERE e.tenant = %s AND e.id = ANY(%s) "
                f"AND {_LIVE}",
                (tenant, list(dict.fromkeys(ids)), _now()),
            )
            rows = await cursor.fetchall()
        return {row[0]: _entity(row) for row in rows}

    async def query(self, tenant: str, query: EntityQuery) -> tuple[list[Entity], int | None]:
        where, params = compile_where(query, tenant, _now(), "postgres")
        entities: list[Entity] = []
        total = None
        async with self.pool.connection() as conn:
            if query.limit > 0:
                cursor = await conn.execute(
                    f"SELECT {_COLUMNS} FROM entities e WHERE {where} "
                    "ORDER BY e.id LIMIT %s OFFSET %s",
                    [*params, query.limit, query.offset],
                )
                entities = [_entity(row) for row in await cursor.fetchall()]
            if query.count:
                cursor = await conn.execute(
                    f"SELECT count(*) FROM entities e WHERE {where}", params
                )
                found = await cursor.fetchone()
                total = 0 if found is None else int(found[0])
        return entities, total

    async def put_context(self, context: HostedContext) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO hosted_contexts (id, url, document, created_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, "
                "document = EXCLUDED.document",
                (context.id, context.url, Jsonb(context.document), context.created_at),
            )

    async def delete_context(self, context_id: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM hosted_contexts WHERE id = %s", (context_id,))

    async def hosted_contexts(self) -> list[HostedContext]:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, url, document, created_at FROM hosted_contexts ORDER BY created_at"
            )
            return [HostedContext(*row) for row in await cursor.fetchall()]

    async def type_stats(self, tenant: str) -> list[TypeStat]:
        now = _now()
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT t.type, count(*) FROM entities e CROSS JOIN unnest(e.types) AS t(type) "
                f"WHERE e.tenant = %s AND {_LIVE} GROUP BY t.type",
                (tenant, now),
            )
            counts = await cursor.fetchall()
            cursor = await conn.execute(
                f"SELECT DISTINCT ts.type, m.attr, m.kinds FROM ({_TYPE_SETS}) ts "
                "JOIN attr_set_members m ON m.attrset = ts.attrset",
                (tenant, now),
            )
            attrs: dict[str, dict[str, set[str]]] = {}
            for type_, attr, kinds in await cursor.fetchall():
                attrs.setdefault(type_, {}).setdefault(attr, set()).update(kinds.split(","))
        return [
            TypeStat(type_, count, {a: frozenset(k) for a, k in attrs.get(type_, {}).items()})
            for type_, count in sorted(counts)
        ]

    async def attribute_stats(self, tenant: str) -> list[AttributeStat]:
        now = _now()
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT m.attr, sum(c.n)::bigint, array_agg(DISTINCT m.kinds) FROM "
                "(SELECT e.attrset, count(*) AS n FROM entities e "
                f"WHERE e.tenant = %s AND {_LIVE} GROUP BY e.attrset) c "
                "JOIN attr_set_members m ON m.attrset = c.attrset GROUP BY m.attr",
                (tenant, now),
            )
            stats: dict[str, tuple[int, set[str], set[str]]] = {}
            for attr, count, kinds in await cursor.fetchall():
                stats[attr] = (count, set(), {k for each in kinds for k in each.split(",")})
            cursor = await conn.execute(
                f"SELECT DISTINCT m.attr, ts.type FROM ({_TYPE_SETS}) ts "
                "JOIN attr_set_members m ON m.attrset = ts.attrset",
                (tenant, now),
            )
            for attr, type_ in await cursor.fetchall():
                if attr in stats:
                    stats[attr][1].add(type_)
        return [
            AttributeStat(attr, count, frozenset(types), frozenset(kinds))
            for attr, (count, types, kinds) in sorted(stats.items())
        ]

    # -- subscriptions and their notification outbox (store/subscriptions_postgres.py) --------

    async def add_subscription(self, tenant: str, record: SubscriptionRecord) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await subscriptions_postgres.add_subscription(conn, tenant, record)

    async def update_subscription(self, tenant: str, record: SubscriptionRecord) -> bool:
        async with self.pool.connection() as conn:
            return await subscriptions_postgres.update_subscription(conn, tenant, record)

    async def delete_subscription(self, tenant: str, subscription_id: str) -> bool:
        async with self.pool.connection() as conn, conn.transaction():
            return await subscriptions_postgres.delete_subscription(conn, tenant, subscription_id)

    async def get_subscription(
        self, tenant: str, subscription_id: str
    ) -> SubscriptionRecord | None:
        async with self.pool.connection() as conn:
            return await subscriptions_postgres.get_subscription(conn, tenant, subscription_id)

    async def list_subscriptions(
        self, tenant: str | None, limit: int, offset: int
    ) -> tuple[list[SubscriptionRecord], int]:
        async with self.pool.connection() as conn:
            return await subscriptions_postgres.list_subscriptions(conn, tenant, limit, offset)

    async def claim_notifications(
        self, owner: str, now: str, lease_until: str, most: int, rows: int
    ) -> list[Claim]:
        async with self.pool.connection() as conn, conn.transaction():
            return await subscriptions_postgres.claim(conn, owner, now, lease_until, most, rows)

    async def settle_notifications(self, outcomes: list[Delivered]) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await subscriptions_postgres.settle(conn, outcomes)

    async def queued_notifications(self, tenant: str, subscription_id: str) -> int:
        async with self.pool.connection() as conn:
            return await subscriptions_postgres.queued(conn, tenant, subscription_id)


async def _create_database(url: str, name: str) -> bool:
    """Create database `name` through the server's maintenance database; False if it exists."""
    admin = make_conninfo(url, dbname="postgres")
    async with await AsyncConnection.connect(admin, autocommit=True) as conn:
        cursor = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if await cursor.fetchone() is not None:
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        # Another worker may have created it meanwhile (two concurrent CREATE DATABASE can also
        # collide on pg_database's unique index rather than report a duplicate database).
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            await conn.execute(f"CREATE DATABASE {quoted}".encode())
    return True


_DEVICE_MARKS = ", ".join("%s" for _ in range(DEVICE_COLUMNS.count(",") + 2))
_DEVICE_UPDATE = ", ".join(f"{c.strip()} = %s" for c in DEVICE_COLUMNS.split(",")[1:])


def _as_is(value: Any) -> Any:
    """psycopg has already turned jsonb and arrays into Python values."""
    return value


def _device(row: Any) -> DeviceRecord:
    return device_from_row(row, _as_is)


def _device_params(tenant: str, device: DeviceRecord) -> tuple[Any, ...]:
    return device_values(tenant, device, Jsonb, _as_is)


async def _add_device_events(conn: Conn, tenant: str, events: list[DeviceEvent]) -> None:
    if not events:
        return
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO device_events (tenant, device, at, kind, actor, from_state, to_state, "
            "reason, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
                    Jsonb(e.detail),
                )
                for e in events
            ],
        )


async def _ensure_tenant(conn: Conn, tenant: str) -> None:
    if tenant != DEFAULT_TENANT:
        await conn.execute(
            "INSERT INTO tenants (name) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,)
        )


async def _write_rounds(
    conn: Conn, tenant: str, entities: list[Entity], set_ids: list[int], sql: str
) -> list[bool]:
    """Insert (or upsert, by `sql`) entities in rounds of distinct ids; True where created."""
    results = [False] * len(entities)
    for n, indexes in enumerate(_rounds(entities)):
        batch = [entities[i] for i in indexes]
        sets = [set_ids[i] for i in indexes]
        rows = await _stage_and_run(conn, batch, sets, sql, (tenant,), first=n == 0)
        written: list[tuple[int, Entity, bool]] = []
        for i, entity in zip(indexes, batch, strict=True):
            row = rows.get(entity.id)
            if row is None:
                continue
            _, pk, created, entity.created_at, entity.version = row
            results[i] = created
            written.append((pk, entity, created))
        await _reindex(conn, written, first=n == 0)
    return results


def _rounds(entities: Sequence[Entity]) -> list[list[int]]:
    """Positions split so no id repeats within a round: round n holds each id's n-th occurrence.

    One statement cannot write the same row twice, and applying the rounds in order gives the
    result of applying the entities one by one.
    """
    seen: dict[str, int] = {}
    rounds: list[list[int]] = []
    for position, entity in enumerate(entities):
        n = seen.get(entity.id, 0)
        seen[entity.id] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(position)
    return rounds


async def _stage_and_run(
    conn: Conn,
    entities: list[Entity],
    set_ids: list[int],
    sql: str,
    params: Sequence[Any],
    *,
    first: bool,
) -> dict[str, tuple[Any, ...]]:
    """Copy entities (distinct ids) into the staging table, run `sql` over it; rows by id.

    The staging table empties itself at commit, so only later rounds of a transaction clear it.
    """
    lines: list[bytes] = []
    for entity, set_id in zip(entities, set_ids, strict=True):
        scopes = b"\\N" if entity.scopes is None else copy_json(entity.scopes)
        expires = b"\\N" if entity.expires_at is None else copy_text(entity.expires_at)
        lines.append(
            b"\t".join(
                (
                    copy_text(entity.id),
                    copy_text(_text_array(entity.types)),
                    scopes,
                    copy_json(entity.attrs),
                    copy_text(entity.created_at),
                    copy_text(entity.modified_at),
                    expires,
                    b"%d" % set_id,
                    b"%d\n" % entity.version,
                )
            )
        )
    async with conn.cursor() as cursor:
        if not first:
            await cursor.execute(f"DELETE FROM {_STAGE}")
        async with cursor.copy(_COPY_STAGE) as copy:
            await copy.write(b"".join(lines))
        await cursor.execute(sql, params)
        return {row[0]: row for row in await cursor.fetchall()}


async def _save(conn: Conn, tenant: str, entities: list[Entity], set_ids: list[int]) -> list[bool]:
    """Write back entities whose version is unchanged in the database; False for the others."""
    results = [False] * len(entities)
    for n, indexes in enumerate(_rounds(entities)):
        batch = [entities[i] for i in indexes]
        sets = [set_ids[i] for i in indexes]
        rows = await _stage_and_run(conn, batch, sets, _SAVE_SQL, (tenant,), first=n == 0)
        written: list[tuple[int, Entity, bool]] = []
        for i, entity in zip(indexes, batch, strict=True):
            row = rows.get(entity.id)
            if row is None:
                continue
            results[i] = True
            entity.version = row[4]
            written.append((row[1], entity, False))
        await _reindex(conn, written, first=n == 0)
    return results


def _text_array(items: list[str]) -> str:
    """A PostgreSQL text[] literal."""
    quoted = (item.replace("\\", "\\\\").replace('"', '\\"') for item in items)
    return "{" + ",".join(f'"{item}"' for item in quoted) + "}"


async def _reindex(conn: Conn, entities: list[tuple[int, Entity, bool]], *, first: bool) -> None:
    """Bring the entity_geo rows of entities (pk, entity, is new) up to date.

    The rows of new entities are copied straight in. Those of rewritten entities are staged and
    compared, so that only rows that changed are written: an entity replaced with the same
    location (the usual sensor update) costs no index writes at all.
    """
    new_geo: list[tuple[bytes, bytes]] = []
    old_geo: list[tuple[bytes, bytes]] = []
    stale: list[int] = []
    for pk, entity, is_new in entities:
        geo_lines = new_geo if is_new else old_geo
        if not is_new:
            stale.append(pk)
        for attr, instances in entity.attrs.items():
            for instance in instances:
                value = instance.get("value")
                if instance["type"] == GEOPROPERTY and isinstance(value, dict):
                    geo_lines.append((b"%d\t%s\t" % (pk, copy_text(attr)), orjson.dumps(value)))
    async with conn.cursor() as cursor:
        if new_geo:
            async with cursor.copy(_COPY_GEO) as copy:
                await copy.write(_geo_lines(new_geo))
        if not stale:
            return
        if not first:
            await cursor.execute(_UNSTAGE_GEO.encode())
        if old_geo:
            async with cursor.copy(_COPY_GEO_STAGE) as copy:
                await copy.write(_geo_lines(old_geo))
        await cursor.execute(_DROP_GEO, (stale,))
        if old_geo:
            await cursor.execute(_ADD_GEO, (stale,))


def _row_params(tenant: str, entity: Entity) -> tuple[Any, ...]:
    """The `_ROW` parameters of an entity."""
    return (
        tenant,
        entity.id,
        entity.types,
        None if entity.scopes is None else Jsonb(entity.scopes),
        Jsonb(entity.attrs),
        entity.created_at,
        entity.modified_at,
        entity.expires_at,
    )


def _geo_arrays(entity: Entity) -> tuple[list[str], list[str]]:
    """The geo rows of one entity: (attribute names, hex EWKB)."""
    names: list[str] = []
    geojson: list[bytes] = []
    for attr, instances in entity.attrs.items():
        for instance in instances:
            value = instance.get("value")
            if instance["type"] == GEOPROPERTY and isinstance(value, dict):
                names.append(attr)
                geojson.append(orjson.dumps(value))
    ewkb: list[str] = []
    if geojson:
        geometries = shapely.set_srid(shapely.from_geojson(geojson), 4326)
        ewkb = shapely.to_wkb(geometries, hex=True, include_srid=True, output_dimension=2).tolist()
    return names, ewkb


def _geo_lines(rows: list[tuple[bytes, bytes]]) -> bytes:
    """COPY lines (entity, attr, geom) from (COPY text of entity and attr, GeoJSON geometry)."""
    geometries = shapely.set_srid(shapely.from_geojson([geojson for _, geojson in rows]), 4326)
    ewkb = shapely.to_wkb(geometries, hex=True, include_srid=True, output_dimension=2)
    return b"".join(key + geom.encode() + b"\n" for (key, _), geom in zip(rows, ewkb, strict=True))


def _entity(row: Any) -> Entity:
    return Entity(
        id=row[0],
        types=list(row[1]),
        scopes=row[2],
        attrs=row[3],
        created_at=row[4],
        modified_at=row[5],
        expires_at=row[6],
        version=row[7],
    )
