"""Every write tells the store's observer what it changed, inside the write's transaction.

History and notifications are built from these changes (stadsnav/changes.py), so each write path
of both backends is checked here: what it reports as before and after, that it reports nothing
when nothing changed, and that a failing observer rolls the write back with it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stadsnav.api.app import create_app
from stadsnav.changes import ChangeFeed, history_rows
from stadsnav.ngsild.entity import Entity
from stadsnav.ngsild.query import EntityQuery, TypeName
from stadsnav.settings import Settings
from stadsnav.store.base import Consequences, EntityChange, Store, UplinkKey
from tests.test_store import BIN, LEVEL, NS, T0, T1, instance, make, store  # noqa: F401

STATUS = NS + "status"


class Recorder:
    """An observer that keeps what it is told; `fail` makes it raise like a broken one."""

    def __init__(self, watching: bool = True) -> None:
        self.watches = watching
        self.fail = False
        self.told: list[tuple[str, list[EntityChange]]] = []

    def watching(self, tenant: str) -> bool:
        return self.watches

    def consequences(self, tenant: str, changes: list[EntityChange], at: str) -> Consequences:
        if self.fail:
            raise RuntimeError("observer failed")
        self.told.append((tenant, list(changes)))
        return Consequences()

    def changes(self) -> list[EntityChange]:
        return [change for _, changes in self.told for change in changes]


def level(entity: Entity | None) -> Any:
    assert entity is not None
    return entity.attrs[LEVEL][0]["value"]


@pytest.fixture
def recorder(store: Store) -> Recorder:  # noqa: F811
    found = Recorder()
    store.observer = found
    return found


async def test_a_created_entity_is_reported_without_a_before(
    store: Store,  # noqa: F811
    recorder: Recorder,
) -> None:
    await store.insert("", make("urn:ngsi-ld:WasteContainer:1"))
    [change] = recorder.changes()
    assert change.before is None
    assert change.after is not None
    assert change.after.id == "urn:ngsi-ld:WasteContainer:1"
    assert not change.replaced


async def test_an_insert_refused_for_a_taken_id_reports_nothing(
    store: Store,  # noqa: F811
    recorder: Recorder,
) -> None:
    await store.insert_many("", [make("urn:ngsi-ld:WasteContainer:1")])
    recorder.told.clear()
    assert await store.insert_many("", [make("urn:ngsi-ld:WasteContainer:1", level=0.9)]) == [False]
    assert recorder.changes() == []


async def test_an_upsert_reports_what_it_replaced_when_the_tenant_is_watched(
    store: Store,  # noqa: F811
    recorder: Recorder,
) -> None:
    await store.insert("", make("urn:ngsi-ld:WasteContainer:1", level=0.2))
    recorder.told.clear()
    await store.upsert_many(
        "", [make("urn:ngsi-ld:WasteContainer:1", level=0.7), make("urn:ngsi-ld:X:2")]
    )
    replaced, created = recorder.changes()
    assert level(replaced.before) == 0.2
    assert level(replaced.after) == 0.7
    assert replaced.replaced
    assert created.before is None
    assert not created.replaced


async def test_an_upsert_does_not_read_what_it_replaces_when_nobody_watches(
    store: Store,  # noqa: F811
    recorder: Recorder,
) -> None:
    recorder.watches = False
    await store.insert("", make("urn:ngsi-ld:WasteContainer:1", level=0.2))
    recorder.told.clear()
    await store.upsert_many("", [make("urn:ngsi-ld:WasteContainer:1", level=0.7)])
    [change] = recorder.changes()
    assert change.before is None
    assert change.replaced
    assert level(change.after) == 0.7


async def test_a_modification_reports_the_entity_before_and_after(
    store: Store,  # noqa: F811
    recorder: Recorder,
) -> None:
    await store.insert("", make("urn:ngsi-ld:WasteContainer:1", level=0.2))
    recorder.told.clear()

    def fill(entity: Entity) -> bool:
        entity.attrs[LEVEL][0]["value"] = 0.8
        return True

    assert await store.modify("", "urn:ngsi-ld:WasteContainer:1", fill)
    [change] = recorder.changes()
    assert level(change.before) == 0.2
    assert level(change.after) == 0.8


async def test_a_modification_that_changes_nothing_reports_nothing(
    store: Store,  # noqa: F811
    recorder: Recorder,
) -> None:
    await store.insert("", make("urn:ngsi-ld:WasteContainer:1"))
    recorder.told.clear()
    assert await store.modify_many("", ["urn:ngsi-ld:WasteContainer:1"], lambda e: False)
    assert recorder.changes() == []


async def test_deletes_report_the_deleted_entity_to_a_watcher(
    store: Store,  # noqa: F811
    recorder: Recorder,
) -> None:
    await store.insert_many(
        "",
        [
            make("urn:ngsi-ld:WasteContainer:1", level=0.1),
            make("urn:ngsi-ld:WasteContainer:2", level=0.2),
            make("urn:ngsi-ld:Sensor:3", [NS + "Sensor"], level=0.3),
        ],
    )
    recorder.told.clear()
    assert await store.delete("", "urn:ngsi-ld:WasteContainer:1")
    assert await store.purge("", EntityQuery(types=TypeName(BIN))) == 1
    gone = recorder.changes()
    assert [c.after for c in gone] == [None, None]
    assert [level(c.before) for c in gone] == [0.1, 0.2]


async def test_expired_entities_are_reported_per_tenant(
    store: Store,  # noqa: F811
    recorder: Recorder,
) -> None:
    past = "2000-01-01T00:00:00.000000Z"
    await store.insert("", make("urn:ngsi-ld:A:1", expires_at=past))
    await store.insert("other", make("urn:ngsi-ld:B:1", expires_at=past))
    recorder.told.clear()
    assert await store.delete_expired(T1) == 2
    told = sorted(
        (tenant, [c.before.id for c in changes if c.before]) for tenant, changes in recorder.told
    )
    assert told == [("", ["urn:ngsi-ld:A:1"]), ("other", ["urn:ngsi-ld:B:1"])]


async def test_device_observations_report_their_merge(
    store: Store,  # noqa: F811
    recorder: Recorder,
) -> None:
    await store.insert("", make("urn:ngsi-ld:WasteContainer:1", level=0.2))
    recorder.told.clear()
    fresh = make("urn:ngsi-ld:WasteContainer:1", level=0.6)
    fresh.attrs = {LEVEL: fresh.attrs[LEVEL]}

    def merge(stored: Entity, fragment: Entity) -> None:
        stored.attrs.update(fragment.attrs)

    await store.record(
        "", [fresh, make("urn:ngsi-ld:WasteContainer:9")], merge, [], [UplinkKey("d", 1, "x")]
    )
    merged, created = sorted(recorder.changes(), key=lambda c: c.after.id if c.after else "")
    assert level(merged.before) == 0.2
    assert level(merged.after) == 0.6
    assert created.before is None
    assert created.after is not None


async def test_a_failing_observer_rolls_the_write_back(
    store: Store,  # noqa: F811
    recorder: Recorder,
) -> None:
    await store.insert("", make("urn:ngsi-ld:WasteContainer:1", level=0.2))
    recorder.fail = True

    def fill(entity: Entity) -> bool:
        entity.attrs[LEVEL][0]["value"] = 0.8
        return True

    with pytest.raises(RuntimeError):
        await store.modify("", "urn:ngsi-ld:WasteContainer:1", fill)
    with pytest.raises(RuntimeError):
        await store.upsert_many("", [make("urn:ngsi-ld:WasteContainer:2")])
    with pytest.raises(RuntimeError):
        await store.delete("", "urn:ngsi-ld:WasteContainer:1")
    recorder.fail = False
    assert level(await store.get("", "urn:ngsi-ld:WasteContainer:1")) == 0.2
    assert await store.get("", "urn:ngsi-ld:WasteContainer:2") is None


# -- history rows of API writes -------------------------------------------------------------


def test_only_the_instances_a_write_put_in_go_to_history() -> None:
    before = make("urn:ngsi-ld:WasteContainer:1", level=0.2, status=[instance(value="ok")])
    after = make("urn:ngsi-ld:WasteContainer:1", level=0.2, status=[instance(value="full")])
    after.attrs[STATUS][0]["modifiedAt"] = T1
    rows = history_rows(EntityChange(before, after), T1)
    assert [(r.attr, r.instance["value"], r.observed_at) for r in rows] == [(STATUS, "full", T1)]


def test_a_deletion_has_no_history_rows() -> None:
    assert history_rows(EntityChange(make("urn:ngsi-ld:X:1"), None), T1) == []


values = st.one_of(st.integers(), st.text(max_size=5), st.booleans())


@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), values, min_size=1))
def test_a_new_entity_puts_every_instance_in_history_and_an_unchanged_one_none(
    attrs: dict[str, Any],
) -> None:
    entity = Entity(
        "urn:ngsi-ld:X:1",
        [BIN],
        {NS + k: [instance(value=v)] for k, v in attrs.items()},
        created_at=T0,
        modified_at=T0,
    )
    created = history_rows(EntityChange(None, entity), T1)
    assert sorted(r.attr for r in created) == sorted(NS + k for k in attrs)
    assert all(r.observed_at == T0 for r in created)
    assert history_rows(EntityChange(entity, entity), T1) == []


THERMOMETER = {
    "id": "urn:ngsi-ld:Thermometer:1",
    "type": "Thermometer",
    "temperature": {"type": "Property", "value": 4, "observedAt": "2026-11-23T08:00:00Z"},
    "name": {"type": "Property", "value": "north gate"},
}


async def history_after_create_and_patch(client: httpx.AsyncClient) -> list[tuple[str, Any]]:
    base = "/ngsi-ld/v1/entities"
    assert (await client.post(base, json=THERMOMETER)).status_code == 201
    patch = {"temperature": {"type": "Property", "value": 5, "observedAt": "2026-11-23T09:00:00Z"}}
    answer = await client.patch(f"{base}/urn:ngsi-ld:Thermometer:1/attrs", json=patch)
    assert answer.status_code == 204, answer.text
    kept = client._transport.app.state.services.broker.store  # type: ignore[attr-defined]
    rows = await kept.history("", "urn:ngsi-ld:Thermometer:1")
    return sorted((r.attr.rsplit("/", 1)[-1], r.instance["value"]) for r in rows)


async def test_api_writes_keep_their_observations_in_history(client: httpx.AsyncClient) -> None:
    assert await history_after_create_and_patch(client) == [("temperature", 4), ("temperature", 5)]


@pytest.mark.parametrize("mode", ["all", "off"])
async def test_api_writes_keep_all_or_nothing_in_history_when_set_so(
    settings: Settings, mode: str
) -> None:
    app = create_app(settings.model_copy(update={"history_api_writes": mode}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            found = await history_after_create_and_patch(client)
    expected = [("name", "north gate"), ("temperature", 4), ("temperature", 5)]
    assert found == (expected if mode == "all" else [])


def test_the_feed_asks_the_subscriptions_only_for_watched_tenants() -> None:
    watched = Recorder(watching=False)
    feed = ChangeFeed(watched, history="off")
    found = feed.consequences("", [EntityChange(None, make("urn:ngsi-ld:X:1"))], T1)
    assert found.history == []
    assert watched.told == []
    watched.watches = True
    feed.consequences("", [EntityChange(None, make("urn:ngsi-ld:X:1"))], T1)
    assert len(watched.told) == 1
