"""The Store contract, checked against both backends with the same tests.

Entities are written and read in internal form (ngsild/entity.py), below the broker and the API.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from stadsnav.ngsild.entity import LOCATION, Entity
from stadsnav.ngsild.errors import AlreadyExists, ResourceNotFound
from stadsnav.ngsild.geoquery import GeoQuery
from stadsnav.ngsild.query import EntityQuery, TypeAnd, TypeName, TypeOr
from stadsnav.store import sqlite as sqlite_module
from stadsnav.store.base import Store
from stadsnav.store.migrations import migration_files
from stadsnav.store.sqlite import SQLiteStore
from tests.conftest import BACKENDS, PG_ADMIN, _clear_postgres

NS = "https://example.org/city#"
BIN = NS + "WasteContainer"
SENSOR = NS + "Sensor"
LEVEL = NS + "fillingLevel"
STATUS = NS + "status"
READING = NS + "reading"
REF = NS + "refDevice"
OBSERVED = "https://uri.etsi.org/ngsi-ld/observedAt"
T0 = "2026-11-01T08:00:00.000000Z"
T1 = "2026-11-01T09:00:00.000000Z"
PAST = "2000-01-01T00:00:00.000000Z"
FUTURE = "2999-01-01T00:00:00.000000Z"


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store
    if request.param == "sqlite":
        opened = SQLiteStore(str(tmp_path / "store.db"))
    else:
        from stadsnav.store.postgres import PostgresStore

        url: str = request.getfixturevalue("pg_database")
        _clear_postgres(url)
        opened = PostgresStore(url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def instance(type_: str = "Property", **members: Any) -> dict[str, Any]:
    return {"type": type_, "createdAt": T0, "modifiedAt": T0, **members}


def point(lon: float, lat: float, dataset: str | None = None) -> dict[str, Any]:
    geometry = {"type": "Point", "coordinates": [lon, lat]}
    if dataset is None:
        return instance("GeoProperty", value=geometry)
    return instance("GeoProperty", value=geometry, datasetId=dataset)


def make(
    entity_id: str,
    types: list[str] | None = None,
    *,
    level: float = 0.5,
    expires_at: str | None = None,
    **attrs: list[dict[str, Any]],
) -> Entity:
    doc: dict[str, list[dict[str, Any]]] = {
        LEVEL: [instance(value=level, unitCode="P1", observedAt=T0)],
        LOCATION: [point(18.07, 59.33)],
    }
    doc.update({NS + name: value for name, value in attrs.items()})
    return Entity(
        id=entity_id,
        types=types or [BIN],
        attrs=doc,
        created_at=T0,
        modified_at=T0,
        expires_at=expires_at,
    )


def ids(entities: list[Entity]) -> list[str]:
    return [e.id for e in entities]


async def test_round_trip_keeps_internal_form(store: Store) -> None:
    entity = make(
        "urn:ngsi-ld:WasteContainer:1",
        [BIN, SENSOR],
        reading=[
            instance(value=1, datasetId="urn:ngsi-ld:Dataset:a"),
            instance(
                value={"nested": [1, 2.5, None, "ü"]},
                datasetId="urn:ngsi-ld:Dataset:b",
                **{OBSERVED: instance(value="sub")},
            ),
            instance("Relationship", object="urn:ngsi-ld:Device:d1"),
        ],
        refDevice=[instance("Relationship", object="urn:ngsi-ld:Device:d1")],
        path=[
            instance(
                "GeoProperty",
                value={"type": "LineString", "coordinates": [[18.0, 59.0], [18.1, 59.1]]},
            )
        ],
    )
    entity.attrs[STATUS] = [instance(value='quote " back\\slash\ttab\nnewline')]
    entity.scopes = ["/Stockholm/Kista", "/tab\there"]
    expected = copy.deepcopy(entity.attrs)
    await store.insert("", entity)
    assert entity.version == 1
    found = await store.get("", entity.id)
    assert found is not None
    assert found.id == entity.id
    assert found.types == [BIN, SENSOR]
    assert found.attrs == expected
    assert found.scopes == ["/Stockholm/Kista", "/tab\there"]
    assert (found.created_at, found.modified_at, found.expires_at) == (T0, T0, None)
    assert found.version == 1
    assert await store.get("", "urn:ngsi-ld:WasteContainer:missing") is None
    many = await store.get_many("", [entity.id, "urn:ngsi-ld:x:missing", entity.id])
    assert list(many) == [entity.id]


async def test_insert_taken_id_raises_already_exists(store: Store) -> None:
    await store.insert("", make("urn:a:1"))
    with pytest.raises(AlreadyExists):
        await store.insert("", make("urn:a:1", level=0.9))
    found = await store.get("", "urn:a:1")
    assert found is not None
    assert found.attrs[LEVEL][0]["value"] == 0.5


async def test_insert_many_reports_taken_ids(store: Store) -> None:
    await store.insert("", make("urn:a:1"))
    created = await store.insert_many("", [make("urn:a:0"), make("urn:a:1"), make("urn:a:2")])
    assert created == [True, False, True]
    # The same id twice in one batch: the first is created, the second refused.
    assert await store.insert_many("", [make("urn:a:3", level=1), make("urn:a:3", level=2)]) == [
        True,
        False,
    ]
    found = await store.get("", "urn:a:3")
    assert found is not None
    assert found.attrs[LEVEL][0]["value"] == 1
    entities, total = await store.query("", EntityQuery(count=True))
    assert total == 4
    assert ids(entities) == ["urn:a:0", "urn:a:1", "urn:a:2", "urn:a:3"]


async def test_modify_writes_what_the_change_did(store: Store) -> None:
    await store.insert("", make("urn:a:1"))

    def raise_level(entity: Entity) -> bool:
        entity.attrs[LEVEL][0]["value"] = 0.7
        entity.modified_at = T1
        return True

    assert await store.modify("", "urn:a:1", raise_level)
    found = await store.get("", "urn:a:1")
    assert found is not None
    assert found.attrs[LEVEL][0]["value"] == 0.7
    assert found.modified_at == T1

    def change_nothing(entity: Entity) -> bool:
        entity.attrs[LEVEL][0]["value"] = 0.0
        return False

    assert await store.modify("", "urn:a:1", change_nothing)
    unchanged = await store.get("", "urn:a:1")
    assert unchanged is not None
    assert unchanged.attrs[LEVEL][0]["value"] == 0.7
    assert not await store.modify("", "urn:a:missing", raise_level)


async def test_modify_rolls_back_when_the_change_fails(store: Store) -> None:
    await store.insert("", make("urn:a:1"))

    def half_then_fail(entity: Entity) -> bool:
        entity.attrs[LEVEL][0]["value"] = 0.1
        raise ResourceNotFound("attribute missing")

    with pytest.raises(ResourceNotFound):
        await store.modify("", "urn:a:1", half_then_fail)
    found = await store.get("", "urn:a:1")
    assert found is not None
    assert found.attrs[LEVEL][0]["value"] == 0.5


async def test_modify_many_returns_existing_ids_and_reindexes(store: Store) -> None:
    await store.insert_many("", [make("urn:a:1"), make("urn:a:2")])

    def add_status(entity: Entity) -> bool:
        entity.attrs[STATUS] = [instance(value=entity.id)]
        return True

    found = await store.modify_many("", ["urn:a:2", "urn:a:gone", "urn:a:1"], add_status)
    assert found == ["urn:a:2", "urn:a:1"]
    entities, _ = await store.query("", EntityQuery(attrs=(STATUS,)))
    assert ids(entities) == ["urn:a:1", "urn:a:2"]
    assert entities[0].attrs[STATUS][0]["value"] == "urn:a:1"


async def test_concurrent_modifications_lose_no_update(store: Store) -> None:
    await store.insert("", make("urn:a:1"))

    def adder(n: int) -> Any:
        def add(entity: Entity) -> bool:
            entity.attrs[f"{NS}a{n}"] = [instance(value=n)]
            return True

        return add

    results = await asyncio.gather(*(store.modify("", "urn:a:1", adder(n)) for n in range(40)))
    assert all(results)
    found = await store.get("", "urn:a:1")
    assert found is not None
    assert {f"{NS}a{n}" for n in range(40)} <= set(found.attrs)


async def test_upsert_reports_created_and_keeps_created_at(store: Store) -> None:
    await store.insert("", make("urn:a:1"))
    replacement = make("urn:a:1", level=0.9)
    replacement.created_at = replacement.modified_at = T1
    del replacement.attrs[LOCATION]
    new = make("urn:a:2")
    new.created_at = new.modified_at = T1
    assert await store.upsert_many("", [replacement, new]) == [False, True]
    assert replacement.created_at == T0
    found = await store.get_many("", ["urn:a:1", "urn:a:2"])
    assert (found["urn:a:1"].created_at, found["urn:a:1"].modified_at) == (T0, T1)
    assert found["urn:a:1"].attrs[LEVEL][0]["value"] == 0.9
    assert LOCATION not in found["urn:a:1"].attrs
    assert found["urn:a:2"].created_at == T1
    # Replaced entities are re-indexed: the dropped location is gone from the attribute index.
    entities, _ = await store.query("", EntityQuery(attrs=(LOCATION,)))
    assert ids(entities) == ["urn:a:2"]
    stats = {s.attr: s for s in await store.attribute_stats("")}
    assert stats[LOCATION].count == 1


async def test_upsert_same_id_twice_in_one_batch(store: Store) -> None:
    created = await store.upsert_many("", [make("urn:a:1", level=1), make("urn:a:1", level=2)])
    assert created == [True, False]
    found = await store.get("", "urn:a:1")
    assert found is not None
    assert found.attrs[LEVEL][0]["value"] == 2


async def test_delete_many(store: Store) -> None:
    await store.insert_many("", [make(f"urn:a:{n}") for n in range(4)])
    assert await store.delete_many("", ["urn:a:1", "urn:a:missing", "urn:a:3", "urn:a:1"]) == [
        True,
        False,
        True,
        False,
    ]
    assert await store.delete("", "urn:a:0")
    assert not await store.delete("", "urn:a:0")
    entities, total = await store.query("", EntityQuery(count=True))
    assert (ids(entities), total) == (["urn:a:2"], 1)
    assert [s.attr for s in await store.attribute_stats("")] == sorted([LEVEL, LOCATION])
    assert [(s.type, s.count) for s in await store.type_stats("")] == [(BIN, 1)]


async def test_tenants_are_isolated(store: Store) -> None:
    assert await store.tenants() == [""]
    assert await store.tenant_exists("")
    assert not await store.tenant_exists("north")
    await store.insert("", make("urn:a:1", level=0.1))
    await store.insert("north", make("urn:a:1", level=0.2))
    assert await store.upsert_many("south", [make("urn:a:1", level=0.3)]) == [True]
    assert await store.tenants() == ["", "north", "south"]
    assert await store.tenant_exists("north")
    for tenant, level in (("", 0.1), ("north", 0.2), ("south", 0.3)):
        found = await store.get(tenant, "urn:a:1")
        assert found is not None
        assert found.attrs[LEVEL][0]["value"] == level
        entities, total = await store.query(tenant, EntityQuery(count=True))
        assert (ids(entities), total) == (["urn:a:1"], 1)
    assert await store.delete("north", "urn:a:1")
    assert await store.get("north", "urn:a:1") is None
    assert await store.get("", "urn:a:1") is not None
    assert await store.type_stats("north") == []
    assert [s.count for s in await store.type_stats("south")] == [1]


async def test_expired_entities_are_hidden_then_deleted(store: Store) -> None:
    await store.insert_many(
        "",
        [
            make("urn:a:old", expires_at=PAST),
            make("urn:a:later", expires_at=FUTURE),
            make("urn:a:always", [SENSOR]),
        ],
    )
    await store.insert("north", make("urn:a:old", expires_at=PAST))
    assert await store.get("", "urn:a:old") is None
    assert list(await store.get_many("", ["urn:a:old", "urn:a:later"])) == ["urn:a:later"]
    entities, total = await store.query("", EntityQuery(count=True))
    assert (ids(entities), total) == (["urn:a:always", "urn:a:later"], 2)
    assert [(s.type, s.count) for s in await store.type_stats("")] == sorted(
        [(BIN, 1), (SENSOR, 1)]
    )
    assert {s.attr: s.count for s in await store.attribute_stats("")}[LEVEL] == 2
    assert await store.delete_expired("2500-01-01T00:00:00.000000Z") == 2
    assert await store.delete_expired("2500-01-01T00:00:00.000000Z") == 0
    # Once deleted the id is free again.
    await store.insert("", make("urn:a:old"))


async def test_type_and_attribute_stats(store: Store) -> None:
    await store.insert_many(
        "",
        [
            make("urn:a:1", [BIN], refDevice=[instance("Relationship", object="urn:x:d1")]),
            make("urn:a:2", [BIN, SENSOR]),
            make(
                "urn:a:3",
                [SENSOR],
                reading=[
                    instance(value=1),
                    instance("Relationship", object="urn:x", datasetId="d"),
                ],
            ),
        ],
    )
    types = {s.type: s for s in await store.type_stats("")}
    assert [s.type for s in await store.type_stats("")] == sorted([BIN, SENSOR])
    assert (types[BIN].count, types[SENSOR].count) == (2, 2)
    assert set(types[BIN].attrs) == {LEVEL, LOCATION, REF}
    assert types[BIN].attrs[REF] == frozenset({"Relationship"})
    assert types[SENSOR].attrs[READING] == frozenset({"Property", "Relationship"})
    assert types[SENSOR].attrs[LOCATION] == frozenset({"GeoProperty"})
    attrs = await store.attribute_stats("")
    assert [s.attr for s in attrs] == sorted([LEVEL, LOCATION, READING, REF])
    by_name = {s.attr: s for s in attrs}
    assert by_name[LEVEL].count == 3
    assert by_name[LEVEL].types == frozenset({BIN, SENSOR})
    assert by_name[LEVEL].kinds == frozenset({"Property"})
    assert by_name[READING].kinds == frozenset({"Property", "Relationship"})
    assert by_name[READING].types == frozenset({SENSOR})
    assert by_name[LOCATION].kinds == frozenset({"GeoProperty"})
    assert by_name[REF].count == 1


async def test_queries(store: Store) -> None:
    await store.insert_many(
        "",
        [
            make("urn:ngsi-ld:Bin:01", [BIN], status=[instance(value="ok")]),
            make("urn:ngsi-ld:Bin:02", [BIN, SENSOR]),
            make("urn:ngsi-ld:Bin:03", [BIN], status=[instance(value="full")]),
            make("urn:ngsi-ld:Sensor:01", [SENSOR]),
            make("urn:ngsi-ld:Other:01", [NS + "Other"]),
        ],
    )

    async def found(**kwargs: Any) -> list[str]:
        entities, _ = await store.query("", EntityQuery(**kwargs))
        return ids(entities)

    every = await found()
    assert every == sorted(every)
    assert len(every) == 5
    assert await found(ids=("urn:ngsi-ld:Bin:02", "urn:ngsi-ld:Sensor:01", "urn:x")) == [
        "urn:ngsi-ld:Bin:02",
        "urn:ngsi-ld:Sensor:01",
    ]
    assert await found(types=TypeName(SENSOR)) == ["urn:ngsi-ld:Bin:02", "urn:ngsi-ld:Sensor:01"]
    assert await found(types=TypeAnd((TypeName(BIN), TypeName(SENSOR)))) == ["urn:ngsi-ld:Bin:02"]
    assert await found(types=TypeOr((TypeName(SENSOR), TypeName(NS + "Other")))) == [
        "urn:ngsi-ld:Bin:02",
        "urn:ngsi-ld:Other:01",
        "urn:ngsi-ld:Sensor:01",
    ]
    assert await found(types=TypeName(NS + "Nothing")) == []
    assert await found(attrs=(STATUS,)) == ["urn:ngsi-ld:Bin:01", "urn:ngsi-ld:Bin:03"]
    assert await found(attrs=(STATUS, NS + "none"), types=TypeName(BIN)) == [
        "urn:ngsi-ld:Bin:01",
        "urn:ngsi-ld:Bin:03",
    ]
    assert await found(id_pattern="^urn:ngsi-ld:Bin:0[13]$") == [
        "urn:ngsi-ld:Bin:01",
        "urn:ngsi-ld:Bin:03",
    ]
    assert await found(id_pattern="Sensor") == ["urn:ngsi-ld:Sensor:01"]
    assert await found(limit=2) == every[:2]
    assert await found(limit=2, offset=2) == every[2:4]
    assert await found(limit=10, offset=4) == every[4:]
    entities, total = await store.query("", EntityQuery(types=TypeName(BIN), limit=1, count=True))
    assert (ids(entities), total) == (["urn:ngsi-ld:Bin:01"], 3)
    entities, total = await store.query("", EntityQuery(limit=0, count=True))
    assert (entities, total) == ([], 5)
    _, total = await store.query("", EntityQuery())
    assert total is None


async def test_purge_deletes_matching_entities(store: Store) -> None:
    await store.insert_many("", [make("urn:a:1", [BIN]), make("urn:a:2", [SENSOR])])
    assert await store.purge("", EntityQuery(types=TypeName(BIN), limit=0)) == 1
    entities, _ = await store.query("", EntityQuery())
    assert ids(entities) == ["urn:a:2"]
    assert [s.type for s in await store.type_stats("")] == [SENSOR]


async def test_large_batch_round_trip(store: Store) -> None:
    batch = [make(f"urn:a:{n:05d}", level=n) for n in range(1500)]
    assert all(await store.upsert_many("", batch))
    again = [make(f"urn:a:{n:05d}", level=-n) for n in range(1000, 2000)]
    assert await store.upsert_many("", again) == [n >= 1500 for n in range(1000, 2000)]
    wanted = [f"urn:a:{n:05d}" for n in (0, 1499, 1999)]
    found = await store.get_many("", wanted)
    assert [found[i].attrs[LEVEL][0]["value"] for i in wanted] == [0, -1499, -1999]
    _, total = await store.query("", EntityQuery(count=True, attrs=(LOCATION,)))
    assert total == 2000


async def test_sqlite_failed_write_leaves_previous_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(str(tmp_path / "crash.db"))
    await store.open()
    try:
        await store.insert("", make("urn:a:1"))
        box = sqlite_module._box
        calls = 0

        def failing(geometry: dict[str, Any]) -> tuple[float, float, float, float]:
            # The batch's entity rows are written, then indexing fails inside the same
            # transaction, as a full disk or a crash would.
            nonlocal calls
            calls += 1
            if calls == 2:
                raise sqlite3.OperationalError("disk I/O error (simulated)")
            return box(geometry)

        monkeypatch.setattr(sqlite_module, "_box", failing)
        batch = [make("urn:a:2"), make("urn:a:1", level=0.9), make("urn:a:3")]
        with pytest.raises(sqlite3.OperationalError):
            await store.upsert_many("", batch)
        monkeypatch.setattr(sqlite_module, "_box", box)
        assert calls == 2
        entities, total = await store.query("", EntityQuery(count=True))
        assert (ids(entities), total) == (["urn:a:1"], 1)
        assert entities[0].attrs[LEVEL][0]["value"] == 0.5
        assert entities[0].version == 1
        assert [s.count for s in await store.attribute_stats("")] == [1, 1]
        # The store keeps working after the failed transaction.
        assert await store.upsert_many("", batch) == [True, False, True]
    finally:
        await store.close()
    reopened = SQLiteStore(str(tmp_path / "crash.db"))
    await reopened.open()
    try:
        entities, _ = await reopened.query("", EntityQuery())
        assert ids(entities) == ["urn:a:1", "urn:a:2", "urn:a:3"]
        assert entities[0].attrs[LEVEL][0]["value"] == 0.9
    finally:
        await reopened.close()


async def test_geo_index_follows_writes(store: Store) -> None:
    def within(lon: float, lat: float) -> EntityQuery:
        box = [[[lon - 0.01, lat - 0.01], [lon + 0.01, lat - 0.01], [lon + 0.01, lat + 0.01],
                [lon - 0.01, lat + 0.01], [lon - 0.01, lat - 0.01]]]  # fmt: skip
        polygon = {"type": "Polygon", "coordinates": box}
        return EntityQuery(geo=GeoQuery("within", None, None, polygon, LOCATION))

    moved = make("urn:a:1")
    await store.insert_many("", [moved, make("urn:a:2")])
    assert ids((await store.query("", within(18.07, 59.33)))[0]) == ["urn:a:1", "urn:a:2"]
    moved.attrs[LOCATION] = [point(11.97, 57.70)]
    assert await store.upsert_many("", [moved]) == [False]
    assert ids((await store.query("", within(18.07, 59.33)))[0]) == ["urn:a:2"]
    assert ids((await store.query("", within(11.97, 57.70)))[0]) == ["urn:a:1"]

    def two_locations(entity: Entity) -> bool:
        entity.attrs[LOCATION] = [point(11.97, 57.70), point(18.07, 59.33, dataset="urn:d:2")]
        return True

    assert await store.modify_many("", ["urn:a:2"], two_locations) == ["urn:a:2"]
    assert ids((await store.query("", within(11.97, 57.70)))[0]) == ["urn:a:1", "urn:a:2"]
    assert ids((await store.query("", within(18.07, 59.33)))[0]) == ["urn:a:2"]
    assert await store.delete("", "urn:a:1")
    assert ids((await store.query("", within(11.97, 57.70)))[0]) == ["urn:a:2"]


async def test_rewrites_keep_unchanged_index_rows_and_replace_changed_ones(store: Store) -> None:
    """A new reading of the same sensor leaves its type and location rows; a change moves them."""
    here = {"type": "Point", "coordinates": [18.07, 59.33]}
    near = EntityQuery(types=TypeName(BIN), geo=GeoQuery("near", 1000.0, None, here, LOCATION))
    await store.insert_many("", [make("urn:a:1"), make("urn:a:2")])
    for level in (0.6, 0.7):
        await store.upsert_many("", [make("urn:a:1", level=level), make("urn:a:2", level=level)])
    assert ids((await store.query("", near))[0]) == ["urn:a:1", "urn:a:2"]
    assert await store.upsert_many("", [make("urn:a:2", [SENSOR])]) == [False]
    assert ids((await store.query("", near))[0]) == ["urn:a:1"]
    assert ids((await store.query("", EntityQuery(types=TypeName(SENSOR))))[0]) == ["urn:a:2"]
    assert [(s.type, s.count) for s in await store.type_stats("")] == [(SENSOR, 1), (BIN, 1)]
    twice = make("urn:a:1")
    twice.attrs[NS + "site"] = [point(18.07, 59.33)]
    await store.upsert_many("", [twice])
    await store.upsert_many("", [make("urn:a:1")])
    site = EntityQuery(geo=GeoQuery("near", 1000.0, None, here, NS + "site"))
    assert ids((await store.query("", site))[0]) == []
    assert ids((await store.query("", near))[0]) == ["urn:a:1"]


@pytest.mark.postgres
async def test_postgres_database_is_created_and_migrated_once(pg_database: str) -> None:
    import asyncio

    import psycopg

    from stadsnav.store.postgres import PostgresStore

    url = pg_database + "_fresh"
    name = url.rsplit("/", 1)[1]
    stores = [PostgresStore(url) for _ in range(3)]
    try:
        # Several workers starting together on a database that does not exist yet.
        await asyncio.gather(*(s.open() for s in stores))
        await stores[0].insert("", make("urn:a:1"))
        found = await stores[2].get("", "urn:a:1")
        assert found is not None
        assert await stores[1].tenants() == [""]
        with psycopg.connect(url) as conn:
            versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
        assert versions == [(version,) for version, _ in migration_files("postgres")]
    finally:
        for s in stores:
            await s.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("backend", BACKENDS)
async def test_entities_written_before_attribute_sets_keep_their_attributes(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 3 turns the per-entity attribute rows into shared attribute sets."""
    if backend == "sqlite":
        module: Any = sqlite_module
        url = str(tmp_path / "old.db")
        open_store: Any = SQLiteStore
    else:
        from stadsnav.store import postgres as module

        url = request.getfixturevalue("pg_database") + "_old"
        request.addfinalizer(lambda: _drop_database(url))
        open_store = module.PostgresStore
    old = [m for m in migration_files(backend) if m[0] < 3]
    monkeypatch.setattr(module, "migration_files", lambda _backend: old)
    store = open_store(url)
    await store.open()
    await store.close()
    monkeypatch.undo()

    mark = "?" if backend == "sqlite" else "%s"
    rows = {
        "urn:a:1": {LEVEL: "Property", LOCATION: "GeoProperty"},
        "urn:a:2": {LEVEL: "Property", LOCATION: "GeoProperty"},
        "urn:a:3": {LEVEL: "Property", STATUS: "Property,Relationship"},
        "urn:a:4": {},
    }
    statements: list[tuple[str, tuple[Any, ...]]] = []
    for pk, (entity_id, attrs) in enumerate(rows.items(), start=100):
        types: Any = json.dumps([BIN]) if backend == "sqlite" else [BIN]
        statements.append(
            (
                "INSERT INTO entities (pk, tenant, id, types, doc, created_at, modified_at) "
                f"VALUES ({mark}, '', {mark}, {mark}, '{{}}', '{T0}', '{T0}')",
                (pk, entity_id, types),
            )
        )
        if backend == "sqlite":
            statements.append((f"INSERT INTO entity_types VALUES ('', {mark}, {mark})", (BIN, pk)))
        for attr, kinds in attrs.items():
            statements.append(
                (f"INSERT INTO entity_attrs VALUES ('', {mark}, {mark}, {mark})", (attr, pk, kinds))
            )
    if backend == "sqlite":
        with sqlite3.connect(url) as conn:
            for sql, params in statements:
                conn.execute(sql, params)
    else:
        with psycopg_connect(url) as conn:
            for sql, params in statements:
                conn.execute(sql, params)

    store = open_store(url)
    await store.open()
    try:
        found, _ = await store.query("", EntityQuery(attrs=(STATUS,)))
        assert ids(found) == ["urn:a:3"]
        found, _ = await store.query("", EntityQuery(attrs=(LOCATION,)))
        assert ids(found) == ["urn:a:1", "urn:a:2"]
        stats = {s.attr: (s.count, s.kinds) for s in await store.attribute_stats("")}
        assert stats == {
            LEVEL: (3, frozenset({"Property"})),
            LOCATION: (2, frozenset({"GeoProperty"})),
            STATUS: (1, frozenset({"Property", "Relationship"})),
        }
        # A new entity with the attributes of urn:a:1 joins the migrated set: the store and the
        # migration name sets alike.
        await store.insert("", make("urn:a:5"))
        if backend == "sqlite":
            with sqlite3.connect(url) as conn:
                count = conn.execute("SELECT count(*) FROM attr_sets").fetchone()[0]
        else:
            with psycopg_connect(url) as conn:
                count = conn.execute("SELECT count(*) FROM attr_sets").fetchone()[0]
        assert count == 3
    finally:
        await store.close()


def _drop_database(url: str) -> None:
    with psycopg_connect(PG_ADMIN) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def psycopg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)
