"""Device health alarms: silent devices, low batteries and impossible values become Smart Data
Models Alert entities that the NGSI-LD API finds, one per device and condition, closed (not
deleted) when the condition clears.

Device data arrives as ingestion writes it: through the HTTP webhook where the real payload
matters (battery), otherwise as the mapping's observations recorded by the broker.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from stadsnav.api.app import create_app
from stadsnav.broker import Broker
from stadsnav.devices.health import (
    AlertChange,
    HealthMonitor,
    alert_id,
    profile_interval,
    profile_range,
)
from stadsnav.ingest.decoders import Reading
from stadsnav.ingest.mapping import Binding, map_readings
from stadsnav.settings import Settings
from stadsnav.store.base import DeviceRecord
from tests.ingest_data import BIN_FRAME, BIN_SENSOR, chirpstack_up
from tests.test_mapping import FORMATS, REGISTRY, SCHEMAS

E = "/ngsi-ld/v1/entities"
EUI = "a84041000181c4d1"
DEVICE = f"urn:ngsi-ld:Device:{EUI}"
CONTAINER = "urn:ngsi-ld:WasteContainer:slussen-1"
REGISTERED = "2026-11-23T07:00:00.000000Z"
INTERVALS = {BIN_SENSOR: 900.0}  # a report every 15 minutes; silent after 45 without one
# By reading, as the profiles give them: distance is the Device's measuredDistance.
RANGES = {(BIN_SENSOR, "temperature"): (-60.0, 70.0), (BIN_SENSOR, "distance"): (0.0, 4.5)}


def _range(model: str, attribute: str) -> tuple[float, float] | None:
    return RANGES.get((model, attribute))


def at(clock: str) -> datetime:
    return datetime.fromisoformat(f"2026-11-23T{clock}:00+00:00")


def bin_record(key: str = EUI, **changes: Any) -> DeviceRecord:
    record = DeviceRecord(
        key=key,
        device_id=f"urn:ngsi-ld:Device:{key}",
        model=BIN_SENSOR,
        owner="Trafikkontoret",
        state="active",
        target_id=CONTAINER,
        target_type="WasteContainer",
        settings={"binDepth": 2.5},
        location=(18.0717, 59.3195),
        created_at=REGISTERED,
        modified_at=REGISTERED,
    )
    return replace(record, **changes)


async def report(
    broker: Broker,
    record: DeviceRecord,
    clock: str,
    readings: list[Reading],
    *,
    tenant: str = "",
    battery: float | None = None,
) -> None:
    """Store one uplink's observations as the ingestion pipeline does."""
    binding = Binding(
        record.device_id,
        record.model,
        record.target_id,
        record.target_type,
        record.settings,
        record.location,
    )
    observations = map_readings(binding, readings, f"2026-11-23T{clock}:00Z", battery=battery)
    stamp = f"2026-11-23T{clock}:00.000000Z"
    fragments = [
        broker.expand_observation({"id": o.entity_id, "type": o.entity_type, **o.attrs}, stamp)
        for o in observations
    ]
    await broker.record(tenant, fragments, [])


def distance(metres: float = 2.0) -> list[Reading]:
    return [Reading("distance", metres, "MTR")]


@pytest.fixture
async def platform(
    settings: Settings,
) -> AsyncIterator[tuple[Broker, httpx.AsyncClient, HealthMonitor]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        broker: Broker = app.state.services.broker
        monitor = HealthMonitor(
            broker, expected_interval=INTERVALS.get, physical_range=_range, battery_threshold=0.2
        )
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://stadsnav.test") as http:
            yield broker, http, monitor


def actions(changes: list[AlertChange]) -> list[tuple[str, str]]:
    return sorted((change.kind, change.action) for change in changes)


async def alerts(http: httpx.AsyncClient, q: str | None = None, **extra: str) -> Any:
    query = {"type": "Alert", "options": "keyValues", **extra}
    if q is not None:
        query["q"] = q
    answer = await http.get(E, params=query)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_a_silent_device_raises_one_alert_that_closes_when_it_reports_again(
    platform: tuple[Broker, httpx.AsyncClient, HealthMonitor],
) -> None:
    broker, http, monitor = platform
    record = bin_record()
    await broker.store.put_device("", record)
    await report(broker, record, "08:00", distance())

    assert await monitor.sweep(at("08:40")) == []
    assert actions(await monitor.sweep(at("09:00"))) == [("silent", "raised")]
    # Still silent: the alert says the same, so nothing is written.
    assert await monitor.sweep(at("10:00")) == []

    [alert] = await alerts(http, f'alertSource=="{DEVICE}"')
    assert alert["id"] == alert_id(DEVICE, "silent")
    assert alert["severity"] == "high"
    assert alert["category"] == "security"
    assert alert["dateIssued"] == "2026-11-23T09:00:00.000000Z"
    # It became silent when the third report in a row was missing.
    assert alert["validFrom"] == "2026-11-23T08:45:00.000000Z"
    assert "validTo" not in alert
    assert "since 2026-11-23T08:00:00.000000Z" in alert["description"]
    assert "3 times its expected interval of 15 min" in alert["description"]
    assert alert["data"] == {
        "condition": "silent",
        "lastValueReported": "2026-11-23T08:00:00.000000Z",
        "expectedInterval": 900.0,
        "silenceFactor": 3.0,
    }
    assert alert["location"] == {"type": "Point", "coordinates": [18.0717, 59.3195]}

    await report(broker, record, "10:10", distance())
    assert actions(await monitor.sweep(at("10:15"))) == [("silent", "cleared")]
    assert await alerts(http, "!validTo") == []
    [closed] = await alerts(http, "validTo")
    assert closed["validTo"] == "2026-11-23T10:15:00.000000Z"
    assert closed["validFrom"] == "2026-11-23T08:45:00.000000Z"

    # Silent again: the same alert opens again for the new episode.
    assert actions(await monitor.sweep(at("11:00"))) == [("silent", "raised")]
    [reopened] = await alerts(http)
    assert reopened["id"] == alert_id(DEVICE, "silent")
    assert "validTo" not in reopened
    assert reopened["validFrom"] == "2026-11-23T10:55:00.000000Z"
    assert reopened["dateIssued"] == "2026-11-23T11:00:00.000000Z"


async def test_a_device_that_never_reported_is_silent_counted_from_its_registration(
    platform: tuple[Broker, httpx.AsyncClient, HealthMonitor],
) -> None:
    broker, http, monitor = platform
    await broker.store.put_device("", bin_record())
    assert await monitor.sweep(at("07:40")) == []
    assert actions(await monitor.sweep(at("07:50"))) == [("silent", "raised")]
    [alert] = await alerts(http)
    assert f"since it was registered at {REGISTERED}" in alert["description"]
    assert "lastValueReported" not in alert["data"]
    # No Device entity yet, so nothing says where the device is.
    assert "location" not in alert


async def test_a_low_battery_alert_follows_the_reported_level_and_clears(
    platform: tuple[Broker, httpx.AsyncClient, HealthMonitor],
) -> None:
    """Uplinks of a real bin sensor through the ChirpStack webhook: the third byte of its frame
    is the battery percentage."""
    broker, http, monitor = platform
    await broker.store.put_device("", bin_record())

    async def uplink(f_cnt: int, battery: int, clock: str) -> None:
        frame = BIN_FRAME[:2] + bytes([battery]) + BIN_FRAME[3:]
        event = chirpstack_up(EUI, f_cnt, frame, time=f"2026-11-23T{clock}:00Z")
        answer = await http.post("/ingest/chirpstack", params={"event": "up"}, json=event)
        assert answer.json()["outcome"] == "stored", answer.text

    await uplink(1, 92, "08:00")
    assert await monitor.sweep(at("08:05")) == []
    await uplink(2, 15, "08:15")
    assert actions(await monitor.sweep(at("08:20"))) == [("batteryLow", "raised")]
    [alert] = await alerts(http, 'data[condition]=="batteryLow"')
    assert alert["severity"] == "medium"
    assert alert["validFrom"] == "2026-11-23T08:15:00.000000Z"
    assert "is at 15%, below the 20% threshold" in alert["description"]
    assert alert["data"] == {"condition": "batteryLow", "batteryLevel": 0.15, "threshold": 0.2}

    await uplink(3, 12, "08:30")
    assert actions(await monitor.sweep(at("08:35"))) == [("batteryLow", "updated")]
    [alert] = await alerts(http, "!validTo")
    assert alert["data"]["batteryLevel"] == 0.12
    # Still the first low reading's episode.
    assert alert["validFrom"] == "2026-11-23T08:15:00.000000Z"

    await uplink(4, 95, "08:45")
    assert actions(await monitor.sweep(at("08:50"))) == [("batteryLow", "cleared")]
    assert await alerts(http, "!validTo") == []


async def test_a_value_outside_the_physical_range_raises_an_alert_per_attribute(
    platform: tuple[Broker, httpx.AsyncClient, HealthMonitor],
) -> None:
    broker, http, monitor = platform
    record = bin_record()
    await broker.store.put_device("", record)
    # Temperature lands on the container, the raw distance on the Device.
    await report(broker, record, "08:00", [*distance(6.0), Reading("temperature", 120.5, "CEL")])
    found = actions(await monitor.sweep(at("08:05")))
    assert found == [
        ("outOfRange:measuredDistance", "raised"),
        ("outOfRange:temperature", "raised"),
    ]

    [alert] = await alerts(http, 'data[attribute]=="temperature"')
    assert alert["id"] == alert_id(DEVICE, "outOfRange:temperature")
    assert alert["alertSource"] == DEVICE
    assert alert["data"] == {
        "condition": "outOfRange",
        "entity": CONTAINER,
        "attribute": "temperature",
        "value": 120.5,
        "maximum": 70.0,
    }
    assert f"reported temperature 120.5 on {CONTAINER}" in alert["description"]
    assert "past the maximum of 70 that it can physically measure" in alert["description"]

    await report(broker, record, "08:15", [*distance(6.0), Reading("temperature", 21.0, "CEL")])
    assert actions(await monitor.sweep(at("08:20"))) == [("outOfRange:temperature", "cleared")]
    [still] = await alerts(http, "!validTo")
    assert still["data"]["attribute"] == "measuredDistance"


async def test_only_active_devices_are_checked_and_alerts_of_others_close(
    platform: tuple[Broker, httpx.AsyncClient, HealthMonitor],
) -> None:
    broker, http, monitor = platform
    active = bin_record()
    resting = bin_record("a84041000181c4d2", state="maintenance", target_id=None, target_type=None)
    elsewhere = bin_record("a84041000181c4d3", target_id=None, target_type=None)
    await broker.store.put_device("", active)
    await broker.store.put_device("", resting)
    await broker.store.put_device("solna", elsewhere)
    await report(broker, active, "08:00", distance(), battery=10)
    await report(broker, resting, "08:00", distance(), battery=10)
    await report(broker, elsewhere, "08:00", distance(), battery=10, tenant="solna")

    changes = await monitor.sweep(at("08:05"))
    assert sorted((c.tenant, c.device_id, c.action) for c in changes) == [
        ("", DEVICE, "raised"),
        ("solna", elsewhere.device_id, "raised"),
    ]
    # Each tenant's alerts are in that tenant.
    answer = await http.get(
        E, params={"type": "Alert", "options": "keyValues"}, headers={"NGSILD-Tenant": "solna"}
    )
    assert [a["alertSource"] for a in answer.json()] == [elsewhere.device_id]

    await broker.store.put_device("", replace(active, state="maintenance"))
    assert [(c.device_id, c.action) for c in await monitor.sweep(at("08:10"))] == [
        (DEVICE, "cleared")
    ]
    assert await alerts(http, "!validTo") == []


async def test_every_alert_fits_the_smart_data_model(
    platform: tuple[Broker, httpx.AsyncClient, HealthMonitor],
) -> None:
    """Open and closed alerts of every condition, in keyValues, against SDM's Alert schema."""
    broker, http, monitor = platform
    silent, low, wrong = (bin_record(f"a84041000181c4e{n}") for n in range(3))
    for record in (silent, low, wrong):
        await broker.store.put_device("", record)
    await report(broker, silent, "06:00", distance())
    await report(broker, low, "08:00", distance(), battery=5)
    await report(broker, wrong, "08:00", [Reading("temperature", -80.0, "CEL")])
    await monitor.sweep(at("08:05"))
    await report(broker, low, "08:10", distance(), battery=90)
    await monitor.sweep(at("08:15"))

    found = await alerts(http)
    assert {a["data"]["condition"] for a in found} == {"silent", "batteryLow", "outOfRange"}
    assert any("validTo" in a for a in found)
    validator = Draft202012Validator(SCHEMAS["Alert"], registry=REGISTRY, format_checker=FORMATS)
    for alert in found:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(alert)]
        assert errors == [], alert["id"]


async def test_a_device_set_to_report_less_often_is_measured_by_its_own_interval(
    platform: tuple[Broker, httpx.AsyncClient, HealthMonitor],
) -> None:
    broker, _, monitor = platform
    hourly = bin_record(settings={"binDepth": 2.5, "reportingInterval": 3600})
    await broker.store.put_device("", hourly)
    await report(broker, hourly, "08:00", distance())
    assert await monitor.sweep(at("10:55")) == []
    assert actions(await monitor.sweep(at("11:05"))) == [("silent", "raised")]


def test_the_profiles_give_the_intervals_and_the_physical_ranges() -> None:
    assert profile_interval("milesight-em400-tld") == 1800
    assert profile_range("milesight-em400-tld", "temperature") == (-40, 70)
    # A count has no upper bound, a state no range at all.
    assert profile_range("elsys-ers-co2", "motionCount") == (0, math.inf)
    assert profile_range("nas-ul20xx", "powerState") is None
    assert profile_interval("no-such-model") is None
    assert profile_range("no-such-model", "temperature") is None


async def test_the_platform_sweeps_by_itself_with_the_profiles(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"health_interval": 0.05}))
    async with app.router.lifespan_context(app):
        broker: Broker = app.state.services.broker
        # Registered long ago and never heard from, whatever today's date is.
        await broker.store.put_device("", bin_record(created_at="2020-01-01T00:00:00Z"))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://stadsnav.test") as http:
            deadline = time.monotonic() + 10
            while not (found := await alerts(http)):
                assert time.monotonic() < deadline, "no sweep raised the alert"
                await asyncio.sleep(0.05)
    [alert] = found
    assert alert["data"]["expectedInterval"] == 1800
