"""The registry's store methods behave alike on both backends: atomic, and never half-written."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stadsnav.store.base import DeviceEvent, DeviceQuery, DeviceRecord, Store
from tests.test_store import store

__all__ = ["store"]

STAMP = "2026-11-23T08:00:00.000000Z"


def record(key: str, **fields: object) -> DeviceRecord:
    base = DeviceRecord(
        key=key,
        device_id=f"urn:ngsi-ld:Device:{key}",
        model="decentlab-dl-pm",
        owner="miljoforvaltningen",
        state="active",
        target_id=f"urn:ngsi-ld:AirQualityObserved:{key}",
        target_type="AirQualityObserved",
        settings={"reportingInterval": 600},
        location=(18.0717, 59.3195),
        created_at=STAMP,
        modified_at=STAMP,
        name="Slussen",
        district="Södermalm",
        controlled_property=("airPollution", "temperature"),
        co_users=("trafikkontoret",),
        installed_at=STAMP,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def registered(key: str) -> DeviceEvent:
    return DeviceEvent(key, STAMP, "registered", "miljoforvaltningen", to_state="active")


async def test_a_device_and_its_events_are_added_once(store: Store) -> None:
    first = record("a1")
    assert await store.add_devices("", [first], [registered("a1")]) == [True]
    again = record("a1", owner="trafikkontoret")
    same_id = record("a2", device_id=first.device_id)
    assert await store.add_devices("", [again, same_id], [registered("a1"), registered("a2")]) == [
        False,
        False,
    ]
    assert await store.devices("", ["a1"]) == [first]
    assert await store.devices("", ["a2"]) == []
    assert [e.kind for e in await store.device_events("", "a1")] == ["registered"]
    assert await store.device_events("", "a2") == []


async def test_a_change_is_written_with_its_events_or_not_at_all(store: Store) -> None:
    await store.add_devices("", [record("a1")], [registered("a1")])

    def retire(device: DeviceRecord) -> tuple[DeviceRecord, list[DeviceEvent]]:
        event = DeviceEvent("a1", STAMP, "transition", "x", "active", "retired", "gone", {"n": 1})
        return replace(device, state="retired"), [event]

    changed = await store.change_device("", "a1", retire)
    assert changed is not None
    assert changed.state == "retired"
    events = await store.device_events("", "a1")
    assert events[-1].reason == "gone"
    assert events[-1].detail == {"n": 1}
    assert events[-1].id > events[0].id

    def refuse(device: DeviceRecord) -> tuple[DeviceRecord, list[DeviceEvent]]:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await store.change_device("", "a1", refuse)
    assert (await store.devices("", ["a1"]))[0].state == "retired"
    assert await store.change_device("", "missing", retire) is None


async def test_devices_are_found_by_owner_state_model_purpose_place_and_target(
    store: Store,
) -> None:
    devices = [
        record("a1"),
        record("a2", owner="trafikkontoret", location=(18.2, 59.4)),
        record("a3", state="planned", controlled_property=("humidity",)),
    ]
    await store.add_devices("tenant-x", devices, [])

    async def keys(**criteria: object) -> list[str]:
        query = DeviceQuery(**criteria)  # type: ignore[arg-type]
        return [d.key for d in await store.find_devices("tenant-x", query)]

    assert await keys() == ["a1", "a2", "a3"]
    assert await keys(owner="trafikkontoret") == ["a2"]
    assert await keys(states=frozenset({"active"})) == ["a1", "a2"]
    assert await keys(model="elsys-ers-co2") == []
    assert await keys(controlled_property=frozenset({"humidity", "light"})) == ["a3"]
    assert await keys(box=(18.0, 59.3, 18.1, 59.35)) == ["a1", "a3"]
    assert await keys(target_id="urn:ngsi-ld:AirQualityObserved:a2") == ["a2"]
    assert await keys(limit=1, offset=1) == ["a2"]
    assert await store.find_devices("", DeviceQuery()) == []


async def test_put_device_keeps_the_registry_members(store: Store) -> None:
    device = record("a1")
    await store.put_device("", device)
    await store.put_device("", replace(device, secret_hash="h"))
    assert await store.devices("", ["a1"]) == [replace(device, secret_hash="h")]
