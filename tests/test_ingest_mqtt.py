"""Device data over MQTT against a real Mosquitto: QoS 1, persistent sessions, shared subscriptions.

The basic transport runs against the machine's Mosquitto (127.0.0.1:1883). The tests of what
the broker queues while stadsnav is down start a Mosquitto of their own with
deploy/mosquitto/stadsnav.conf, so that they prove that configuration, not the machine's.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import httpx
import orjson
import pytest
from starlette.applications import Starlette

from stadsnav.api.app import create_app
from stadsnav.settings import Settings
from tests import mosquitto
from tests.ingest_data import bin_sensor, chirpstack_up, tts_up

E = "/ngsi-ld/v1/entities"
SYSTEM_BROKER = ("127.0.0.1", 1883)


@pytest.fixture
def system_broker() -> str:
    if not mosquitto.reachable(*SYSTEM_BROKER):
        if os.environ.get("CI") == "true":
            pytest.fail("Mosquitto on 127.0.0.1:1883 is required under CI")
        pytest.skip("Mosquitto not reachable on 127.0.0.1:1883")
    host, port = SYSTEM_BROKER
    return f"mqtt://{host}:{port}"


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[str]:
    """A Mosquitto of this test's own, configured with the project's deploy configuration."""

    def conf(port: int) -> str:
        text = mosquitto.deploy_conf(port)
        text = text.replace(
            "persistence true", f"persistence true\npersistence_location {tmp_path}/"
        )
        return text + "\nallow_anonymous true\n"

    port, process = mosquitto.start(tmp_path, conf)
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        mosquitto.stop(process)


def _ingest_settings(settings: Settings, broker: str, client_id: str, group: str) -> Settings:
    return settings.model_copy(
        update={"mqtt_url": broker, "mqtt_client_id": client_id, "mqtt_share_group": group}
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://stadsnav.test") as http:
            deadline = time.monotonic() + 10
            while not app.state.services.mqtt_connected():
                assert time.monotonic() < deadline, "stadsnav did not connect to MQTT"
                await asyncio.sleep(0.05)
            yield app, http


async def publish(broker: str, messages: list[tuple[str, bytes]]) -> None:
    host, port = broker.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port), protocol=aiomqtt.ProtocolVersion.V5) as client:
        for topic, body in messages:
            await client.publish(topic, body, qos=1)


async def forget_session(broker: str, client_id: str) -> None:
    """End a persistent session so that it does not hold on to messages after the test."""
    host, port = broker.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(
        host, int(port), identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,
    ):  # fmt: skip
        pass


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def up_topic(eui: str) -> str:
    return f"application/city-bins/device/{eui}/event/up"


async def test_uplinks_published_on_both_network_server_layouts_are_stored(
    settings: Settings, system_broker: str
) -> None:
    client_id = f"stadsnav-test-{uuid.uuid4().hex[:8]}"
    group = f"g{uuid.uuid4().hex[:8]}"
    eui_a, eui_b = "a840410001810001", "a840410001810002"
    try:
        async with running(_ingest_settings(settings, system_broker, client_id, group)) as (
            _,
            http,
        ):
            for eui, n in ((eui_a, 1), (eui_b, 2)):
                answer = await http.post(
                    "/devices", json=bin_sensor(eui, f"urn:ngsi-ld:WasteContainer:m{n}")
                )
                assert answer.status_code == 201
            await publish(
                system_broker,
                [
                    (up_topic(eui_a), orjson.dumps(chirpstack_up(eui_a, 1))),
                    ("v3/city-bins@stockholm/devices/bin-2/up", orjson.dumps(tts_up(eui_b, 1))),
                    (up_topic(eui_a), b"\x00 not json"),
                ],
            )

            async def arrived() -> bool:
                found = [await http.get(f"{E}/urn:ngsi-ld:WasteContainer:m{n}") for n in (1, 2)]
                return all(r.status_code == 200 for r in found)

            await wait_for(arrived)

            async def dead_lettered() -> bool:
                return bool((await http.get("/ingest/dead-letters")).json())

            await wait_for(dead_lettered)
            letter = (await http.get("/ingest/dead-letters")).json()[0]
            assert letter["transport"] == "mqtt"
            assert letter["source"] == up_topic(eui_a)
            assert letter["stage"] == "envelope"
    finally:
        await forget_session(system_broker, client_id)


async def test_what_arrives_while_stadsnav_is_down_is_stored_after_restart(
    settings: Settings, own_broker: str
) -> None:
    """More than Mosquitto's default queue of 1000 messages, so its limits are tested too."""
    client_id = f"stadsnav-test-{uuid.uuid4().hex[:8]}"
    ingest = _ingest_settings(settings, own_broker, client_id, "stadsnav")
    devices = [f"a8404100019{n:05x}" for n in range(30)]
    async with running(ingest) as (_, http):
        for n, eui in enumerate(devices):
            container = f"urn:ngsi-ld:WasteContainer:r{n}"
            assert (await http.post("/devices", json=bin_sensor(eui, container))).status_code == 201
    # stadsnav is down: the devices keep sending.
    await publish(
        own_broker,
        [
            (
                up_topic(eui),
                orjson.dumps(
                    chirpstack_up(
                        eui, f_cnt, time=f"2026-11-23T{f_cnt // 60:02d}:{f_cnt % 60:02d}:00Z"
                    )
                ),
            )
            for f_cnt in range(40)
            for eui in devices
        ],
    )
    async with running(ingest) as (app, http):
        store = app.state.services.broker.store

        async def all_stored() -> bool:
            return app.state.services.pipeline.counts["stored"] >= 1200

        await wait_for(all_stored, seconds=60)
        for n in range(30):
            rows = await store.history("", f"urn:ngsi-ld:WasteContainer:r{n}")
            assert len([r for r in rows if r.attr.endswith("fillingLevel")]) == 40


async def test_workers_share_the_device_traffic(settings: Settings, own_broker: str) -> None:
    first = _ingest_settings(settings, own_broker, "stadsnav-w1", "stadsnav")
    second = _ingest_settings(settings, own_broker, "stadsnav-w2", "stadsnav")
    devices = [f"a840410001a{n:05x}" for n in range(10)]
    async with running(first) as (app1, http), running(second) as (app2, _):
        for n, eui in enumerate(devices):
            container = f"urn:ngsi-ld:WasteContainer:s{n}"
            assert (await http.post("/devices", json=bin_sensor(eui, container))).status_code == 201
        await publish(
            own_broker,
            [
                (up_topic(eui), orjson.dumps(chirpstack_up(eui, f_cnt)))
                for f_cnt in range(20)
                for eui in devices
            ],
        )

        def taken(app: Starlette) -> int:
            counts = app.state.services.pipeline.counts
            return int(counts["stored"] + counts["duplicate"] + counts["dead-letter"])

        async def all_taken() -> bool:
            return taken(app1) + taken(app2) == 200

        await wait_for(all_taken)
        assert taken(app1) > 0
        assert taken(app2) > 0
        assert app1.state.services.pipeline.counts["dead-letter"] == 0
