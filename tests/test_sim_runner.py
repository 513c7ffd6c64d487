"""The schedule as a reproducible stream, and its delivery to real HTTP and MQTT receivers."""

from __future__ import annotations

import asyncio
import itertools
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stadsnav.ingest import lorawan
from stadsnav.sim.faults import Faults
from stadsnav.sim.fleet import Device, build_fleet
from stadsnav.sim.runner import Counters, Target, run, uplinks
from tests import mosquitto

START = datetime(2026, 11, 23, 7, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def fleet() -> list[Device]:
    return build_fleet(150, seed=4)


@dataclass
class Receiver:
    """An ingest endpoint that keeps what it gets; every ``reject_every``-th request is 422."""

    url: str = ""
    received: list[tuple[str, bytes]] = field(default_factory=list)
    reject_every: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def ingest(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.received.append((request.url.path + "?" + request.url.query, body))
            count = len(self.received)
        if self.reject_every and count % self.reject_every == 0:
            problem = {"type": "https://uri.etsi.org/ngsi-ld/errors/BadRequestData", "status": 422}
            return JSONResponse(problem, 422, media_type="application/problem+json")
        return Response(status_code=202)

    def paths(self) -> set[str]:
        return {path for path, _ in self.received}

    def bodies(self) -> list[bytes]:
        return sorted(body for _, body in self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server (uvicorn, in a thread of its own) in front of a Receiver."""
    found = Receiver()
    app = Starlette(
        routes=[
            Route("/ingest/chirpstack", found.ingest, methods=["POST"]),
            Route("/ingest/tts", found.ingest, methods=["POST"]),
        ]
    )
    port = mosquitto.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "the receiver did not start"
        assert time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.01)
    found.url = f"http://127.0.0.1:{port}"
    try:
        yield found
    finally:
        server.should_exit = True
        thread.join(10)


def bodies(
    fleet: list[Device],
    start: datetime,
    end: datetime,
    *,
    faults: Faults | None = None,
    seed: int = 0,
    network: lorawan.Network = "chirpstack",
) -> list[bytes]:
    messages = uplinks(fleet, start, end, faults=faults, seed=seed, network=network)
    return sorted(message.body for message in messages)


def sent_at(body: bytes) -> datetime:
    return datetime.fromisoformat(orjson.loads(body)["time"])


# -- the stream --------------------------------------------------------------------------------


def test_the_stream_is_reproducible_and_in_time_order(fleet: list[Device]) -> None:
    first = list(uplinks(fleet, START, START + HOUR, seed=3))
    assert first == list(uplinks(fleet, START, START + HOUR, seed=3))
    assert first != list(uplinks(fleet, START, START + HOUR, seed=4))
    times = [sent_at(message.body) for message in first]
    # Devices send within a second of their slot, and a frame is on air for up to 1.5 s.
    for earlier, later in itertools.pairwise(times):
        assert later > earlier - timedelta(seconds=2.5)
    assert times[0] >= START
    assert times[-1] < START + HOUR + timedelta(seconds=2.5)
    # Every device reports at least once an hour.
    reporting = [lorawan.parse_chirpstack("up", m.body) for m in first]
    assert len({uplink.dev_eui for uplink in reporting if uplink is not None}) == len(fleet)


def test_windows_join_up_and_frame_counters_continue(fleet: list[Device]) -> None:
    """A run that stops and one that starts where it stopped send what one long run sends."""
    middle = START + timedelta(minutes=37, seconds=11)
    split = list(uplinks(fleet, START, middle)) + list(uplinks(fleet, middle, START + HOUR))
    assert split == list(uplinks(fleet, START, START + HOUR))
    counters: dict[str, list[int]] = {}
    for message in split:
        uplink = lorawan.parse_chirpstack("up", message.body)
        assert uplink is not None
        counters.setdefault(uplink.dev_eui, []).append(uplink.f_cnt)
    for sequence in counters.values():
        assert sequence == list(range(sequence[0], sequence[0] + len(sequence)))


def test_the_same_window_of_a_bigger_fleet_has_the_same_frames(fleet: list[Device]) -> None:
    """A device's frames depend on it, the seed and the time only, not on who else is there."""
    small = set(uplinks(fleet[:40], START, START + HOUR))
    assert small <= set(uplinks(fleet, START, START + HOUR))


def test_the_stream_speaks_both_network_servers(fleet: list[Device]) -> None:
    for network in ("chirpstack", "tts"):
        for message in uplinks(fleet[:20], START, START + HOUR, network=network):
            assert lorawan.parse_topic(message.topic).network == network
            assert message.http_path.startswith(f"/ingest/{network}")


def test_a_target_is_an_http_or_mqtt_url() -> None:
    assert Target("http://127.0.0.1:8000").transport == "http"
    assert Target("https://city.example/prefix").transport == "http"
    assert Target("mqtt://user:secret@broker:1883").transport == "mqtt"
    assert Target("mqtts://broker").transport == "mqtt"
    for url in ("ftp://host", "127.0.0.1:8000", "http://"):
        with pytest.raises(ValueError, match="no target"):
            Target(url)


# -- delivery over HTTP ------------------------------------------------------------------------


async def test_a_run_delivers_the_stream_to_an_http_receiver(
    fleet: list[Device], receiver: Receiver
) -> None:
    faults = Faults(garbage=0.05, duplicate=0.05)
    counters = await run(
        Target(receiver.url),
        fleet,
        speed=math.inf,
        duration=3600,
        start=START,
        faults=faults,
        seed=9,
    )
    expected = bodies(fleet, START, START + HOUR, faults=faults, seed=9)
    assert receiver.bodies() == expected
    assert receiver.paths() == {"/ingest/chirpstack?event=up"}
    assert counters.sent == len(expected)
    assert counters.failed == 0
    assert counters.by_status == {"202": len(expected)}
    assert sum(counters.by_kind.values()) == len(expected)
    assert counters.by_kind["duplicate"] > 0
    assert counters.by_kind["garbage"] > 0
    assert counters.simulated_until is not None
    assert START <= counters.simulated_until < START + HOUR


async def test_tts_uplinks_go_to_their_endpoint(fleet: list[Device], receiver: Receiver) -> None:
    await run(
        Target(receiver.url + "/"),
        fleet[:30],
        speed=math.inf,
        duration=1800,
        start=START,
        network="tts",
    )
    assert receiver.paths() == {"/ingest/tts?"}
    assert receiver.bodies() == bodies(fleet[:30], START, START + HOUR / 2, network="tts")


async def test_answers_are_counted_by_status(fleet: list[Device], receiver: Receiver) -> None:
    receiver.reject_every = 4
    counters = await run(
        Target(receiver.url), fleet, speed=math.inf, duration=1800, start=START, concurrency=1
    )
    assert counters.sent == len(receiver.received)
    assert counters.by_status["422"] == counters.sent // 4
    assert counters.by_status["202"] == counters.sent - counters.sent // 4


async def test_an_unreachable_receiver_counts_failures(fleet: list[Device]) -> None:
    counters = await run(
        Target(f"http://127.0.0.1:{mosquitto.free_port()}"),
        fleet[:10],
        speed=math.inf,
        duration=1800,
        start=START,
    )
    assert counters.sent == 0
    assert counters.failed == len(list(uplinks(fleet[:10], START, START + HOUR / 2)))
    assert counters.by_status == {"error:ConnectError": counters.failed}


async def test_speed_paces_the_simulated_clock(fleet: list[Device], receiver: Receiver) -> None:
    # Half an hour at two simulated hours per second takes a quarter of a second.
    began = time.monotonic()
    await run(Target(receiver.url), fleet, speed=7200, duration=1800, start=START)
    assert 0.2 < time.monotonic() - began < 5
    assert receiver.bodies() == bodies(fleet, START, START + HOUR / 2)


async def test_rate_limit_caps_deliveries_per_second(
    fleet: list[Device], receiver: Receiver
) -> None:
    expected = len(list(uplinks(fleet[:20], START, START + HOUR / 2)))
    began = time.monotonic()
    await run(
        Target(receiver.url),
        fleet[:20],
        speed=math.inf,
        duration=1800,
        start=START,
        rate_limit=100,
    )
    assert time.monotonic() - began >= (expected - 1) / 100
    assert len(receiver.received) == expected


async def test_cancelling_stops_the_run_cleanly(fleet: list[Device], receiver: Receiver) -> None:
    counters = Counters()
    task = asyncio.create_task(
        run(Target(receiver.url), fleet, speed=600, start=START, counters=counters)
    )
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert counters.sent > 0
    assert counters.sent == len(receiver.received)


async def test_sigint_ends_the_run_with_its_counters(
    fleet: list[Device], receiver: Receiver
) -> None:
    before = signal.getsignal(signal.SIGINT)
    asyncio.get_running_loop().call_later(0.5, signal.raise_signal, signal.SIGINT)
    counters = await run(Target(receiver.url), fleet, speed=600, start=START)
    assert counters.sent > 0
    assert counters.sent == len(receiver.received)
    assert signal.getsignal(signal.SIGINT) is before


# -- delivery over MQTT ------------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    """A real Mosquitto on a loopback port."""
    port, process = mosquitto.start(
        tmp_path, lambda port: f"listener {port} 127.0.0.1\nallow_anonymous true\n"
    )
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        mosquitto.stop(process)


@pytest.mark.parametrize(("network", "pattern"), [("chirpstack", "application/#"), ("tts", "v3/#")])
async def test_a_run_publishes_the_stream_to_an_mqtt_broker(
    fleet: list[Device], broker: str, network: lorawan.Network, pattern: str
) -> None:
    expected = sorted(
        (m.topic, m.body) for m in uplinks(fleet[:40], START, START + HOUR, network=network)
    )
    port = int(broker.rsplit(":", 1)[1])
    received: list[tuple[str, bytes]] = []
    async with aiomqtt.Client("127.0.0.1", port) as subscriber:
        await subscriber.subscribe(pattern, qos=1)
        counters = await run(
            Target(broker), fleet[:40], speed=math.inf, duration=3600, start=START, network=network
        )
        async with asyncio.timeout(10):
            async for message in subscriber.messages:
                assert isinstance(message.payload, bytes)
                received.append((message.topic.value, message.payload))
                if len(received) == len(expected):
                    break
    assert sorted(received) == expected
    assert counters.by_status == {"puback": len(expected)}
