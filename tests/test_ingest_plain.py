"""Devices that send their own JSON: over HTTP with their secret, over MQTT on their own topic."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stadsnav.devices.credentials import rotate_secret
from stadsnav.ingest.lorawan import EnvelopeError
from stadsnav.ingest.plain import parse_plain
from stadsnav.settings import Settings
from tests.test_ingest_mqtt import forget_session, publish, running, system_broker  # noqa: F401

E = "/ngsi-ld/v1/entities"
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["seq", "time", "co2", "x"]), children, max_size=4)
    ),
    max_leaves=10,
)
KEY = "0a1b2c3d4e5f6071"
ROOM = "urn:ngsi-ld:AirQualityObserved:stadshuset-rum-12"
READING = {"temperature": 21.5, "humidity": 40, "co2": 650, "battery": 87, "seq": 1,
           "time": "2026-11-23T08:00:00Z"}  # fmt: skip


def sensor(key: str = KEY, room: str = ROOM) -> dict[str, object]:
    return {
        "devEUI": key,
        "model": "json-environment",
        "owner": "stadsledningskontoret",
        "state": "active",
        "location": [18.0546, 59.3275],
        "target": {"id": room, "type": "AirQualityObserved"},
    }


async def registered_with_secret(client: httpx.AsyncClient, key: str = KEY) -> str:
    assert (await client.post("/devices", json=sensor(key))).status_code == 201
    store = client._transport.app.state.services.broker.store  # type: ignore[attr-defined]
    return await rotate_secret(store, "", key)


async def test_a_device_posting_its_json_with_its_secret_is_stored(
    client: httpx.AsyncClient,
) -> None:
    secret = await registered_with_secret(client)
    answer = await client.post(
        f"/ingest/devices/{KEY}", json=READING, headers={"Authorization": f"Bearer {secret}"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "stored"
    room = (await client.get(f"{E}/{ROOM}", params={"options": "keyValues"})).json()
    assert room["co2"] == 650
    assert room["relativeHumidity"] == pytest.approx(0.40)
    assert room["temperature"] == 21.5
    again = await client.post(
        f"/ingest/devices/{KEY}", json=READING, headers={"Authorization": f"Bearer {secret}"}
    )
    assert again.json()["outcome"] == "duplicate"


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-secret", "Basic abc"])
async def test_a_device_without_its_secret_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    await registered_with_secret(client)
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = await client.post(f"/ingest/devices/{KEY}", json=READING, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["type"] == "urn:stadsnav:errors:Unauthorized"
    assert (await client.get(f"{E}/{ROOM}")).status_code == 404
    assert (await client.get("/ingest/dead-letters")).json() == []


async def test_an_unknown_device_gets_the_same_refusal_as_a_wrong_secret(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(
        "/ingest/devices/ffffffffffffffff", json=READING, headers={"Authorization": "Bearer x"}
    )
    assert answer.status_code == 401


async def test_json_the_model_does_not_know_is_a_dead_letter(client: httpx.AsyncClient) -> None:
    secret = await registered_with_secret(client)
    answer = await client.post(
        f"/ingest/devices/{KEY}",
        json={"seq": 2, "status": "ok"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert answer.status_code == 202
    assert answer.json()["stage"] == "decode"
    assert "no known measurement" in answer.json()["reason"]


async def test_a_device_publishing_on_its_own_topic_is_stored(
    settings: Settings,
    system_broker: str,  # noqa: F811
) -> None:
    client_id = f"stadsnav-test-{uuid.uuid4().hex[:8]}"
    ingest = settings.model_copy(
        update={
            "mqtt_url": system_broker,
            "mqtt_client_id": client_id,
            "mqtt_share_group": f"g{uuid.uuid4().hex[:8]}",
        }
    )
    try:
        async with running(ingest) as (_, http):
            assert (await http.post("/devices", json=sensor())).status_code == 201
            await publish(system_broker, [(f"stadsnav/devices/{KEY}/up", orjson.dumps(READING))])
            deadline = time.monotonic() + 20
            while (await http.get(f"{E}/{ROOM}")).status_code != 200:
                assert time.monotonic() < deadline, "the device's message was not stored"
                await asyncio.sleep(0.1)
    finally:
        await forget_session(system_broker, client_id)


@given(st.binary(max_size=200) | st.builds(orjson.dumps, json_values))
def test_any_body_is_an_uplink_or_an_envelope_error(body: bytes) -> None:
    try:
        uplink = parse_plain(f"stadsnav/devices/{KEY}/up", body, "2026-11-23T08:00:00.000000Z")
    except EnvelopeError:
        return
    assert uplink.dev_eui == KEY
    assert uplink.f_cnt >= 0


@pytest.mark.parametrize(
    "source", ["stadsnav/devices/xyz/up", "stadsnav/devices/0a1b/up", "/ingest/devices/../x"]
)
def test_a_source_without_a_device_key_is_an_envelope_error(source: str) -> None:
    with pytest.raises(EnvelopeError):
        parse_plain(source, orjson.dumps(READING), "2026-11-23T08:00:00.000000Z")
