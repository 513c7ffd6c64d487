"""The device registry over HTTP, on both backends: registration, lifecycle, co-use, profiles."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from stadsnav.devices.profiles import PROFILES
from tests.helpers import assert_problem
from tests.ingest_data import chirpstack_up
from tests.test_devices_profiles import _registrations
from tests.test_mapping import FORMATS, REGISTRY, SCHEMAS

E = "/ngsi-ld/v1/entities"
SLUSSEN = (18.0717, 59.3195)
BIN_EUI = "a84041000181c4d1"
AIR_EUI = "70b3d57ba0000001"


def moved(place: tuple[float, float], east: float = 0.0, north: float = 0.0) -> list[float]:
    """A point `east` and `north` metres from `place`."""
    lon, lat = place
    metres_per_degree = 111_320.0
    return [
        lon + east / (metres_per_degree * math.cos(math.radians(lat))),
        lat + north / metres_per_degree,
    ]


def air_sensor(eui: str, place: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "devEUI": eui,
        "model": "decentlab-dl-pm",
        "owner": "miljoforvaltningen",
        "state": "active",
        "location": place,
        "target": {"id": f"urn:ngsi-ld:AirQualityObserved:{eui}", "type": "AirQualityObserved"},
        **extra,
    }


def bin_sensor(eui: str, bin_id: str, place: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "devEUI": eui,
        "model": "milesight-em310-udl",
        "owner": "trafikkontoret",
        "state": "active",
        "location": place,
        "target": {"id": bin_id, "type": "WasteContainer"},
        "settings": {"binDepth": 2.5},
        **extra,
    }


async def register(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = await client.post("/devices", json=body)
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


def _device_schema_errors(entity: dict[str, Any]) -> list[str]:
    validator = Draft202012Validator(SCHEMAS["Device"], registry=REGISTRY, format_checker=FORMATS)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(entity)]


# -- registration ----------------------------------------------------------------------------------


async def test_registering_creates_the_record_and_a_device_entity_that_fits_smart_data_models(
    client: httpx.AsyncClient,
) -> None:
    body = bin_sensor(
        BIN_EUI.upper(),
        "urn:ngsi-ld:WasteContainer:kungsholmen-1",
        list(SLUSSEN),
        coUsers=["stockholm-vatten"],
        name="Bin sensor Kungsholmen 1",
        district="Kungsholmen",
        installedAt="2026-11-01T10:00:00Z",
    )
    device = await register(client, body)
    assert device["devEUI"] == BIN_EUI
    assert device["controlledProperty"] == ["fillingLevel"]  # the profile's default purpose
    assert device["installedAt"] == "2026-11-01T10:00:00.000000Z"
    shown = (await client.get(f"/devices/{BIN_EUI}")).json()
    assert shown["owner"] == "trafikkontoret"
    assert shown["coUsers"] == ["stockholm-vatten"]
    assert shown["target"]["type"] == "WasteContainer"

    entity = await client.get(f"{E}/urn:ngsi-ld:Device:{BIN_EUI}", params={"options": "keyValues"})
    assert entity.status_code == 200
    found = entity.json()
    assert found["type"] == "Device"
    assert found["controlledProperty"] == ["fillingLevel"]
    assert found["owner"] == ["trafikkontoret"]
    assert found["deviceState"] == "active"
    assert found["location"] == {"type": "Point", "coordinates": list(SLUSSEN)}
    assert found["controlledAsset"] == ["urn:ngsi-ld:WasteContainer:kungsholmen-1"]
    assert found["address"] == {"district": "Kungsholmen"}
    assert _device_schema_errors(found) == []
    assert set(SCHEMAS["Device"]["required"]) <= set(found)


async def test_a_device_is_registered_once(client: httpx.AsyncClient) -> None:
    body = air_sensor(AIR_EUI, list(SLUSSEN))
    await register(client, body)
    assert_problem(await client.post("/devices", json=body), 409, "AlreadyExists")


async def test_the_device_shows_when_it_was_last_heard_its_battery_and_signal(
    client: httpx.AsyncClient,
) -> None:
    await register(client, bin_sensor(BIN_EUI, "urn:ngsi-ld:WasteContainer:b1", list(SLUSSEN)))
    sent = await client.post(
        "/ingest/chirpstack", params={"event": "up"}, json=chirpstack_up(BIN_EUI, 1)
    )
    assert sent.json()["outcome"] == "stored"
    shown = (await client.get(f"/devices/{BIN_EUI}")).json()
    assert shown["lastSeen"] == "2026-11-23T08:00:00.000000Z"
    assert shown["battery"] == {"level": pytest.approx(0.92)}
    assert set(shown["signal"]) == {"rssi", "snr"}


# -- profiles --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"model": "toaster-9000"}, "No profile for device model 'toaster-9000'"),
        ({"controlledProperty": ["humidity"]}, "does not measure humidity"),
        (
            {"target": {"id": "urn:ngsi-ld:AirQualityObserved:1", "type": "AirQualityObserved"}},
            "may feed WasteContainer, not AirQualityObserved",
        ),
        ({"target": None}, "must feed an entity (target) of type WasteContainer"),
        ({"settings": {}}, "needs the setting binDepth"),
        ({"settings": {"binDepth": 2.5, "reportingInterval": 86400}}, "at least every 21600 s"),
        ({"settings": {"binDepht": 2.5}}, "No setting 'binDepht'"),
        ({"state": "planned", "installedAt": "2026-11-01T10:00:00Z"}, "has no installedAt"),
        ({"state": "retired"}, "state must be one of planned, installed, active"),
        ({"owner": "Stockholms stad"}, "organisation's identifier"),
        ({"devEUI": "xyz"}, "devEUI must be 16 hexadecimal digits"),
        ({"location": [200, 0]}, "location is [longitude, latitude]"),
        ({"colour": "red"}, "has no member 'colour'"),
    ],
)
async def test_a_registration_against_the_profile_is_refused_with_the_reason(
    client: httpx.AsyncClient, change: dict[str, Any], reason: str
) -> None:
    body = {**bin_sensor(BIN_EUI, "urn:ngsi-ld:WasteContainer:b1", list(SLUSSEN)), **change}
    body = {k: v for k, v in body.items() if v is not None}
    answer = await client.post("/devices", json=body)
    assert_problem(answer, 400, "BadRequestData")
    assert reason in answer.json()["detail"]
    assert (await client.get("/devices")).json() == []


async def test_profiles_are_listed_and_shown(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/devices/profiles")).json()
    assert sorted(p["model"] for p in listed) == sorted(PROFILES)
    one = (await client.get("/devices/profiles/milesight-em310-udl")).json()
    assert list(one["requiredSettings"]) == ["WasteContainer"]
    assert list(one["requiredSettings"]["WasteContainer"]) == ["binDepth"]
    assert {"reading": "distance", "unit": "MTR", "minimum": 0, "maximum": 5} in one["quantities"]
    assert one["security"]["transport"] == "lorawan"
    assert_problem(await client.get("/devices/profiles/toaster-9000"), 404, "ResourceNotFound")


# -- lifecycle -------------------------------------------------------------------------------------


async def transition(
    client: httpx.AsyncClient, to: str, reason: str | None = None, eui: str = AIR_EUI
) -> httpx.Response:
    body = {"to": to, **({"reason": reason} if reason else {})}
    return await client.post(f"/devices/{eui}/transitions", json=body)


async def test_the_lifecycle_moves_only_along_its_transitions_and_keeps_each_one(
    client: httpx.AsyncClient,
) -> None:
    await register(client, air_sensor(AIR_EUI, list(SLUSSEN), state="planned"))
    assert_problem(await transition(client, "active"), 422, "OperationNotSupported")
    for to, reason in (
        ("installed", "mounted on the lamp post"),
        ("active", None),
        ("maintenance", "filter change"),
        ("active", None),
        ("retired", "replaced by a newer model"),
    ):
        answer = await transition(client, to, reason)
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == to
    refused = await transition(client, "active")
    assert_problem(refused, 422, "OperationNotSupported")
    assert "final" in refused.json()["detail"]

    shown = (await client.get(f"/devices/{AIR_EUI}")).json()
    assert shown["state"] == "retired"
    assert "installedAt" in shown
    trail = (await client.get(f"/devices/{AIR_EUI}/history")).json()
    assert [(e["kind"], e.get("from"), e["to"]) for e in trail] == [
        ("registered", None, "planned"),
        ("transition", "planned", "installed"),
        ("transition", "installed", "active"),
        ("transition", "active", "maintenance"),
        ("transition", "maintenance", "active"),
        ("transition", "active", "retired"),
    ]
    assert trail[3]["reason"] == "filter change"
    assert {e["actor"] for e in trail} == {"miljoforvaltningen"}

    # Each state is also a deviceState instance in the Device entity's temporal history.
    store = client._transport.app.state.services.broker.store  # type: ignore[attr-defined]
    rows = await store.history("", f"urn:ngsi-ld:Device:{AIR_EUI}")
    states = [r.instance["value"] for r in rows if r.attr.endswith("/deviceState")]
    assert states == ["planned", "installed", "active", "maintenance", "active", "retired"]
    entity = (await client.get(f"{E}/urn:ngsi-ld:Device:{AIR_EUI}")).json()
    assert entity["deviceState"]["value"] == "retired"
    assert entity["dateInstalled"]["value"] == shown["installedAt"]


async def test_a_transition_is_refused_for_an_unknown_device_or_state(
    client: httpx.AsyncClient,
) -> None:
    assert_problem(await transition(client, "active"), 404, "ResourceNotFound")
    await register(client, air_sensor(AIR_EUI, list(SLUSSEN)))
    assert_problem(await transition(client, "lost"), 400, "BadRequestData")
    assert_problem(await transition(client, "active"), 422, "OperationNotSupported")


async def test_the_actor_header_is_the_one_in_the_audit_trail(client: httpx.AsyncClient) -> None:
    headers = {"Stadsnav-Actor": "driftcentralen"}
    answer = await client.post("/devices", json=air_sensor(AIR_EUI, list(SLUSSEN)), headers=headers)
    assert answer.status_code == 201
    trail = (await client.get(f"/devices/{AIR_EUI}/history")).json()
    assert trail[0]["actor"] == "driftcentralen"


# -- co-use ----------------------------------------------------------------------------------------


async def test_the_co_use_check_finds_a_device_nearby_measuring_the_same_property(
    client: httpx.AsyncClient,
) -> None:
    await register(client, air_sensor(AIR_EUI, list(SLUSSEN)))
    await register(client, air_sensor("70b3d57ba0000002", moved(SLUSSEN, east=500)))
    weather = {
        "devEUI": "70b3d57ba0000003",
        "model": "decentlab-dl-atm41",
        "owner": "miljoforvaltningen",
        "state": "active",
        "location": moved(SLUSSEN, north=10),
        "target": {"id": "urn:ngsi-ld:WeatherObserved:slussen", "type": "WeatherObserved"},
    }
    await register(client, weather)
    planned = {"controlledProperty": ["airPollution"], "location": moved(SLUSSEN, north=30)}
    answer = await client.post("/devices/check", json=planned)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["radius"] == 50
    assert [d["devEUI"] for d in found["devices"]] == [AIR_EUI]
    assert found["devices"][0]["distance"] == pytest.approx(30, abs=0.5)
    assert found["devices"][0]["owner"] == "miljoforvaltningen"
    wider = (await client.post("/devices/check", json={**planned, "radius": 600})).json()
    assert [d["devEUI"] for d in wider["devices"]] == [AIR_EUI, "70b3d57ba0000002"]
    by_model = {"model": "decentlab-dl-pm", "location": moved(SLUSSEN, north=30)}
    assert len((await client.post("/devices/check", json=by_model)).json()["devices"]) == 1


async def test_planned_and_retired_devices_are_not_co_used(client: httpx.AsyncClient) -> None:
    await register(client, air_sensor(AIR_EUI, list(SLUSSEN), state="planned"))
    await register(client, air_sensor("70b3d57ba0000002", moved(SLUSSEN, east=5)))
    await transition(client, "retired", eui="70b3d57ba0000002")
    planned = {"controlledProperty": "airPollution", "location": list(SLUSSEN)}
    assert (await client.post("/devices/check", json=planned)).json()["devices"] == []


@pytest.mark.parametrize(
    "question",
    [
        {"location": [18.07, 59.3]},
        {"controlledProperty": ["fillinglevel"], "location": [18.07, 59.3]},
        {"controlledProperty": ["airPollution"], "location": [18.07, 59.3], "radius": 0},
        {"controlledProperty": ["airPollution"]},
    ],
)
async def test_a_malformed_co_use_question_is_400(
    client: httpx.AsyncClient, question: dict[str, Any]
) -> None:
    assert_problem(await client.post("/devices/check", json=question), 400, "BadRequestData")


async def test_a_duplicate_is_refused_unless_an_override_says_why_and_the_reason_is_kept(
    client: httpx.AsyncClient,
) -> None:
    await register(client, air_sensor(AIR_EUI, list(SLUSSEN)))
    second = air_sensor("70b3d57ba0000002", moved(SLUSSEN, east=30), owner="trafikkontoret")
    refused = await client.post("/devices", json=second)
    assert_problem(refused, 409, "AlreadyExists")
    assert AIR_EUI in refused.json()["detail"]
    assert "override" in refused.json()["detail"]
    empty = await client.post("/devices", json={**second, "override": {"reason": " "}})
    assert_problem(empty, 400, "BadRequestData")

    reason = "Traffic office needs PM readings at street level for the congestion study"
    await register(client, {**second, "override": {"reason": reason}})
    trail = (await client.get("/devices/70b3d57ba0000002/history")).json()
    override = next(e for e in trail if e["kind"] == "override")
    assert override["reason"] == reason
    assert override["actor"] == "trafikkontoret"
    assert override["detail"]["duplicates"][0]["devEUI"] == AIR_EUI


async def test_bins_side_by_side_each_have_a_sensor_but_one_bin_needs_only_one(
    client: httpx.AsyncClient,
) -> None:
    await register(client, bin_sensor(BIN_EUI, "urn:ngsi-ld:WasteContainer:b1", list(SLUSSEN)))
    await register(
        client, bin_sensor("a84041000181c4d2", "urn:ngsi-ld:WasteContainer:b2", list(SLUSSEN))
    )
    same_bin = bin_sensor("a84041000181c4d3", "urn:ngsi-ld:WasteContainer:b1", list(SLUSSEN))
    assert_problem(await client.post("/devices", json=same_bin), 409, "AlreadyExists")


# -- changes ---------------------------------------------------------------------------------------


async def test_a_change_is_applied_audited_and_reaches_the_device_entity(
    client: httpx.AsyncClient,
) -> None:
    await register(
        client, bin_sensor(BIN_EUI, "urn:ngsi-ld:WasteContainer:b1", list(SLUSSEN), name="Old")
    )
    change = {
        "coUsers": ["stockholm-vatten"],
        "settings": {"binDepth": 1.8, "reportingInterval": 900},
        "location": moved(SLUSSEN, east=3),
        "name": None,
    }
    answer = await client.patch(f"/devices/{BIN_EUI}", json=change)
    assert answer.status_code == 200, answer.text
    device = answer.json()
    assert device["settings"] == {"binDepth": 1.8, "reportingInterval": 900}
    assert "name" not in device
    entity = (
        await client.get(f"{E}/urn:ngsi-ld:Device:{BIN_EUI}", params={"options": "keyValues"})
    ).json()
    assert entity["coUsers"] == ["stockholm-vatten"]
    assert entity["location"]["coordinates"] == change["location"]
    assert "name" not in entity
    trail = (await client.get(f"/devices/{BIN_EUI}/history")).json()
    changed = trail[-1]
    assert changed["kind"] == "changed"
    assert changed["detail"]["settings"]["to"] == {"binDepth": 1.8, "reportingInterval": 900}
    assert changed["detail"]["name"] == {"from": "Old", "to": None}

    unset = await client.patch(f"/devices/{BIN_EUI}", json={"settings": {"binDepth": None}})
    assert_problem(unset, 400, "BadRequestData")
    assert "needs the setting binDepth" in unset.json()["detail"]


async def test_a_move_next_to_a_device_with_the_same_purpose_needs_an_override(
    client: httpx.AsyncClient,
) -> None:
    await register(client, air_sensor(AIR_EUI, list(SLUSSEN)))
    await register(client, air_sensor("70b3d57ba0000002", moved(SLUSSEN, east=500)))
    near = {"location": moved(SLUSSEN, east=20)}
    assert_problem(await client.patch("/devices/70b3d57ba0000002", json=near), 409, "AlreadyExists")
    reason = {"override": {"reason": "second sensor to calibrate the first"}}
    answer = await client.patch("/devices/70b3d57ba0000002", json={**near, **reason})
    assert answer.status_code == 200, answer.text


async def test_a_retired_device_cannot_be_changed(client: httpx.AsyncClient) -> None:
    await register(client, air_sensor(AIR_EUI, list(SLUSSEN)))
    await transition(client, "retired")
    answer = await client.patch(f"/devices/{AIR_EUI}", json={"coUsers": ["x"]})
    assert_problem(answer, 422, "OperationNotSupported")


# -- listing ---------------------------------------------------------------------------------------


async def test_devices_are_listed_by_owner_state_model_and_purpose(
    client: httpx.AsyncClient,
) -> None:
    await register(client, air_sensor(AIR_EUI, list(SLUSSEN)))
    await register(client, bin_sensor(BIN_EUI, "urn:ngsi-ld:WasteContainer:b1", list(SLUSSEN)))
    await register(
        client,
        air_sensor("70b3d57ba0000002", moved(SLUSSEN, east=900), state="planned"),
    )

    async def listed(**query: str) -> list[str]:
        answer = await client.get("/devices", params=query)
        assert answer.status_code == 200, answer.text
        return [d["devEUI"] for d in answer.json()]

    assert await listed() == ["70b3d57ba0000001", "70b3d57ba0000002", BIN_EUI]
    assert await listed(owner="trafikkontoret") == [BIN_EUI]
    assert await listed(state="planned") == ["70b3d57ba0000002"]
    assert await listed(model="decentlab-dl-pm", state="active") == [AIR_EUI]
    assert await listed(property="fillingLevel") == [BIN_EUI]
    assert await listed(limit="1", offset="1") == ["70b3d57ba0000002"]
    assert_problem(await client.get("/devices", params={"state": "lost"}), 400, "BadRequestData")
    assert_problem(await client.get("/devices", params={"colour": "red"}), 400, "InvalidRequest")
    assert_problem(await client.get("/devices/0000000000000000"), 404, "ResourceNotFound")


# -- never a crash ---------------------------------------------------------------------------------


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_registrations(), actor=st.none() | st.text(max_size=10))
async def test_any_registration_is_registered_or_a_client_error(
    client: httpx.AsyncClient, body: Any, actor: str | None
) -> None:
    headers = {} if actor is None or not actor.isascii() else {"Stadsnav-Actor": actor}
    answer = await client.post("/devices", json=body, headers=headers)
    assert answer.status_code == 201 or 400 <= answer.status_code < 500, answer.text
