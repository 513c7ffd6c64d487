"""Device data over HTTP webhooks: stored once, with history; what cannot be stored is kept."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import orjson
import pytest

from tests.ingest_data import (
    BIN_DEPTH,
    BIN_FRAME,
    BIN_SENSOR,
    DATA,
    bin_sensor,
    chirpstack_up,
    tts_up,
)

E = "/ngsi-ld/v1/entities"
EUI = "a84041000181c4d1"
BIN = "urn:ngsi-ld:WasteContainer:sthlm-kungsholmen-0001"
FILL = 1 - 2.116 / BIN_DEPTH


async def register(client: httpx.AsyncClient, eui: str = EUI, container: str = BIN) -> None:
    answer = await client.post("/devices", json=bin_sensor(eui, container))
    assert answer.status_code == 201, answer.text


async def send(client: httpx.AsyncClient, event: dict[str, object]) -> httpx.Response:
    return await client.post("/ingest/chirpstack", params={"event": "up"}, json=event)


async def history(client: httpx.AsyncClient, entity: str) -> list[dict[str, object]]:
    store = client._transport.app.state.services.broker.store  # type: ignore[attr-defined]
    rows = await store.history("", entity)
    return [{"attr": r.attr.rsplit("/", 1)[-1], "at": r.observed_at} for r in rows]


async def test_an_uplink_updates_the_bin_it_measures_and_is_kept_in_history(
    client: httpx.AsyncClient,
) -> None:
    await register(client)
    answer = await send(client, chirpstack_up(EUI, 7))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "stored"
    container = (await client.get(f"{E}/{BIN}")).json()
    assert container["type"] == "WasteContainer"
    assert container["fillingLevel"]["value"] == pytest.approx(FILL, abs=0.01)
    assert container["fillingLevel"]["observedAt"] == "2026-11-23T08:00:00Z"
    assert container["fillingLevel"]["unitCode"] == "P1"
    device = (await client.get(f"{E}/urn:ngsi-ld:Device:{EUI}")).json()
    assert device["batteryLevel"]["value"] == pytest.approx(0.92)
    assert {"attr": "fillingLevel", "at": "2026-11-23T08:00:00.000000Z"} in await history(
        client, BIN
    )


async def test_readings_accumulate_in_history_while_the_entity_shows_the_latest(
    client: httpx.AsyncClient,
) -> None:
    await register(client)
    for n, hour in enumerate(("08", "09", "10")):
        frame = BIN_FRAME[:5] + bytes([0x44 - 0x10 * n]) + BIN_FRAME[6:]
        event = chirpstack_up(EUI, 10 + n, frame, time=f"2026-11-23T{hour}:00:00Z")
        assert (await send(client, event)).json()["outcome"] == "stored"
    rows = [r for r in await history(client, BIN) if r["attr"] == "fillingLevel"]
    assert [r["at"] for r in rows] == [f"2026-11-23T{h}:00:00.000000Z" for h in ("08", "09", "10")]
    container = (await client.get(f"{E}/{BIN}")).json()
    assert container["fillingLevel"]["observedAt"] == "2026-11-23T10:00:00Z"


async def test_a_duplicate_uplink_is_stored_once(client: httpx.AsyncClient) -> None:
    await register(client)
    first = await send(client, chirpstack_up(EUI, 42))
    again = await send(client, chirpstack_up(EUI, 42, time="2026-11-23T08:00:05Z"))
    assert first.json()["outcome"] == "stored"
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert len([r for r in await history(client, BIN) if r["attr"] == "fillingLevel"]) == 1


async def test_concurrent_uplinks_are_all_stored(client: httpx.AsyncClient) -> None:
    eui = [f"a8404100018{n:05x}" for n in range(20)]
    for n, device in enumerate(eui):
        await register(client, device, f"{BIN}-{n}")
    events = [
        chirpstack_up(device, f_cnt, time=f"2026-11-23T08:{f_cnt:02d}:00Z")
        for device in eui
        for f_cnt in range(5)
    ]
    answers = await asyncio.gather(*(send(client, event) for event in events))
    assert [a.json()["outcome"] for a in answers] == ["stored"] * len(events)
    for n in range(20):
        rows = [r for r in await history(client, f"{BIN}-{n}") if r["attr"] == "fillingLevel"]
        assert len(rows) == 5


async def test_the_things_stack_webhook_is_taken_in(client: httpx.AsyncClient) -> None:
    await register(client)
    answer = await client.post("/ingest/tts", json=tts_up(EUI, 3))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "stored"
    container = (await client.get(f"{E}/{BIN}")).json()
    assert container["fillingLevel"]["value"] == pytest.approx(FILL, abs=0.01)


async def test_events_without_measurements_are_ignored(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/ingest/chirpstack", params={"event": "join"}, content=b'{"deviceInfo": {}}'
    )
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "ignored"


async def test_an_unknown_device_is_dead_lettered_then_replayed_after_registration(
    client: httpx.AsyncClient,
) -> None:
    event = chirpstack_up(EUI, 5)
    answer = await send(client, event)
    assert answer.status_code == 202
    found = answer.json()
    assert found["outcome"] == "dead-letter"
    assert found["stage"] == "device"
    assert EUI in found["reason"]
    letter = (await client.get(f"/ingest/dead-letters/{found['deadLetter']}")).json()
    assert orjson.loads(base64.b64decode(letter["body"])) == event
    assert letter["device"] == EUI
    assert (await client.get(f"{E}/{BIN}")).status_code == 404

    await register(client)
    replayed = await client.post(f"/ingest/dead-letters/{found['deadLetter']}/replay")
    assert replayed.json()["outcome"] == "stored"
    assert (await client.get(f"{E}/{BIN}")).status_code == 200
    open_letters = (await client.get("/ingest/dead-letters")).json()
    assert found["deadLetter"] not in [x["id"] for x in open_letters]
    closed = (await client.get(f"/ingest/dead-letters/{found['deadLetter']}")).json()
    assert closed["outcome"] == "stored"
    assert closed["replayedAt"] is not None


async def test_an_undecodable_payload_is_dead_lettered_with_its_bytes(
    client: httpx.AsyncClient,
) -> None:
    await register(client)
    garbage = bytes.fromhex("0175")
    answer = await send(client, chirpstack_up(EUI, 8, garbage))
    assert answer.status_code == 202
    found = answer.json()
    assert found["stage"] == "decode"
    assert BIN_SENSOR in found["reason"]
    letter = (await client.get(f"/ingest/dead-letters/{found['deadLetter']}")).json()
    sent = orjson.loads(base64.b64decode(letter["body"]))
    assert base64.b64decode(sent["data"]) == garbage
    assert (await client.get(f"{E}/{BIN}")).status_code == 404
    # Replaying does not help while the payload stays undecodable: the letter stays open.
    replayed = await client.post("/ingest/dead-letters/replay")
    assert replayed.json()[str(found["deadLetter"])]["outcome"] == "dead-letter"
    open_ids = [x["id"] for x in (await client.get("/ingest/dead-letters")).json()]
    assert found["deadLetter"] in open_ids


async def test_a_body_that_is_no_network_server_event_is_400_and_kept(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(
        "/ingest/chirpstack", params={"event": "up"}, content=b"not json at all"
    )
    assert answer.status_code == 400
    assert answer.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    letters = (await client.get("/ingest/dead-letters")).json()
    assert [base64.b64decode(x["body"]) for x in letters] == [b"not json at all"]
    assert letters[0]["stage"] == "envelope"


async def test_data_from_a_retired_device_is_not_stored(client: httpx.AsyncClient) -> None:
    await register(client)
    retired = await client.post(f"/devices/{EUI}/transitions", json={"to": "retired"})
    assert retired.status_code == 200, retired.text
    found = (await send(client, chirpstack_up(EUI, 1))).json()
    assert found["stage"] == "device"
    assert "retired" in found["reason"]


@pytest.mark.parametrize(
    "device",
    [
        {"devEUI": "xyz", "model": BIN_SENSOR, "owner": "Trafikkontoret"},
        {"devEUI": EUI, "model": "toaster-9000", "owner": "Trafikkontoret"},
        {"devEUI": EUI, "model": BIN_SENSOR},
        {"devEUI": EUI, "model": BIN_SENSOR, "owner": "x", "state": "lost"},
        {"devEUI": EUI, "model": BIN_SENSOR, "owner": "x", "location": [200, 0]},
    ],
)
async def test_invalid_device_records_are_refused(
    client: httpx.AsyncClient, device: dict[str, object]
) -> None:
    answer = await client.post("/devices", json=device)
    assert answer.status_code == 400
    assert (await client.get("/devices")).json() == []


def _status(eui: str, **members: object) -> dict[str, object]:
    event = json.loads((DATA / "lorawan" / "chirpstack-v4-status.json").read_text())
    event["deviceInfo"]["devEui"] = eui
    event.update(members)
    return event


async def test_a_status_event_updates_the_battery_of_the_device(client: httpx.AsyncClient) -> None:
    await register(client)
    answer = await client.post(
        "/ingest/chirpstack", params={"event": "status"}, json=_status(EUI, batteryLevel=42.5)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "stored"
    device = (await client.get(f"{E}/urn:ngsi-ld:Device:{EUI}")).json()
    assert device["batteryLevel"]["value"] == pytest.approx(0.425)
    assert device["batteryLevel"]["unitCode"] == "P1"
    again = await client.post(
        "/ingest/chirpstack", params={"event": "status"}, json=_status(EUI, batteryLevel=42.5)
    )
    assert again.json()["outcome"] == "duplicate"
    mains = await client.post(
        "/ingest/chirpstack",
        params={"event": "status"},
        json=_status(EUI, externalPowerSource=True, time="2022-07-18T10:00:00Z"),
    )
    assert mains.json()["outcome"] == "ignored"


async def test_a_status_of_an_unknown_device_is_a_dead_letter(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/ingest/chirpstack", params={"event": "status"}, json=_status("0101010101010101")
    )
    assert answer.status_code == 202
    assert answer.json()["stage"] == "device"
