"""Real receivers of notifications for the subscription tests: an HTTP server on a loopback
port (which can be told to fail) and an MQTT subscriber on the machine's Mosquitto."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import httpx
import pytest
from starlette.applications import Starlette

from stadsnav.api.app import create_app
from stadsnav.settings import Settings
from tests import mosquitto

SYSTEM_BROKER = ("127.0.0.1", 1883)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    """Notifications posted to it, in arrival order; answers `status` (200 unless a test
    makes it fail)."""

    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 200
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def entities(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                entity
                for r in self.received
                if path is None or r.path == path
                for entity in r.body["data"]
            ]

    async def wait(self, count: int, path: str | None = None, seconds: float = 10) -> None:
        """Until `count` entities have arrived (on `path`, if given)."""
        deadline = time.monotonic() + seconds
        while len(self.entities(path)) < count:
            assert time.monotonic() < deadline, f"only {self.entities(path)} arrived"
            await asyncio.sleep(0.02)


class _Handler(http.server.BaseHTTPRequestHandler):
    receiver: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        receiver = self.receiver
        with receiver.lock:
            receiver.attempts += 1
            status = receiver.status
            if status < 300:
                receiver.received.append(
                    Received(self.path, dict(self.headers.items()), json.loads(raw))
                )
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    handler = type("Handler", (_Handler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    found = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    handler.receiver = found
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def notify_settings(settings: Settings) -> Settings:
    """Quick delivery, quick retries: the tests wait for them."""
    return settings.model_copy(
        update={
            "notify_poll_interval": 0.05,
            "notify_refresh_interval": 0.2,
            "notify_retry_base": 0.1,
            "notify_retry_max": 0.4,
            "notify_timeout": 2.0,
        }
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://stadsnav.test") as http:
            yield app, http


@pytest.fixture
async def api(notify_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(notify_settings) as (_, http):
        yield http


@pytest.fixture
def system_broker() -> str:
    if not mosquitto.reachable(*SYSTEM_BROKER):
        if os.environ.get("CI") == "true":
            pytest.fail("Mosquitto on 127.0.0.1:1883 is required under CI")
        pytest.skip("Mosquitto not reachable on 127.0.0.1:1883")
    host, port = SYSTEM_BROKER
    return f"mqtt://{host}:{port}"


@asynccontextmanager
async def mqtt_listener(broker: str) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A topic of this test's own on the broker, and the messages published on it."""
    topic = f"stadsnav-test/{uuid.uuid4().hex}/notifications"
    messages: list[dict[str, Any]] = []
    host, port = broker.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port)) as client:
        await client.subscribe(topic, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                messages.append(json.loads(message.payload))

        task = asyncio.create_task(collect())
        try:
            yield topic, messages
        finally:
            task.cancel()


def subscription(uri: str, **members: Any) -> dict[str, Any]:
    """A subscription to WasteContainers notifying `uri`, with more members as given."""
    notification = members.pop("notification", {})
    return {
        "type": "Subscription",
        "entities": [{"type": "WasteContainer"}],
        "notification": {"endpoint": {"uri": uri}, **notification},
        **members,
    }
