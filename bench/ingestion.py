"""The ingestion workload: LoRaWAN uplinks through Mosquitto into stadsnav, and the ceiling.

A Mosquitto of the bench's own runs with deploy/mosquitto/stadsnav.conf on a free port. The
uplinks are the simulator's (stadsnav.sim.runner.uplinks: ChirpStack v4 `up` events of a
Stockholm fleet, real payload formats), generated and serialised before any clock starts.

- **ceiling**: the same messages published to a bare subscriber (one aiomqtt client, QoS 1, no
  work per message): how fast this machine moves them through Mosquitto at all.
- **ingest_throughput**: the fleet registered, stadsnav subscribed (`serve --mqtt`), every
  message published as fast as the publisher can; uplinks per second from the first publish to
  the moment /health reports every one taken in (stored, duplicate or dead-lettered), each
  decoded, mapped, merged into its entities and appended to history.
- **ingest_latency**: publishing paced at a fixed rate; for one message in `sample_every`, the
  time from its publish until GET of its Device entity shows that uplink (open loop: the
  publisher keeps its schedule whatever stadsnav does).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import orjson

from bench.stats import CpuMeter, latency_summary

DEPLOY_CONF = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "stadsnav.conf"
TOPICS = ("application/+/device/+/event/+", "v3/+/devices/+/#")
SIM_START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


class IngestError(RuntimeError):
    pass


@dataclass(frozen=True)
class Uplink:
    topic: str
    body: bytes
    device_id: str
    time: str  # the network server's time of the uplink, as the Device entity will show it


def fleet_and_uplinks(devices: int, count: int, seed: int) -> tuple[list[Any], list[Uplink]]:
    from stadsnav.sim.faults import Faults
    from stadsnav.sim.fleet import build_fleet
    from stadsnav.sim.runner import uplinks

    fleet = build_fleet(devices, seed)
    stream = uplinks(fleet, SIM_START, SIM_START + timedelta(days=30), faults=Faults(), seed=seed)
    found: list[Uplink] = []
    for topic, _, body in itertools.islice(stream, count):
        event = orjson.loads(body)
        eui = event["deviceInfo"]["devEui"]
        found.append(Uplink(topic, body, f"urn:ngsi-ld:Device:{eui}", event["time"]))
    if len(found) < count:
        raise IngestError(f"the simulated month gave only {len(found)} uplinks")
    return fleet, found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def mosquitto() -> Iterator[str]:
    """A Mosquitto of the bench's own with the project's deploy configuration."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise IngestError("mosquitto is not installed")
    with tempfile.TemporaryDirectory(prefix="stadsnav-bench-mqtt-") as directory:
        port = _free_port()
        conf = DEPLOY_CONF.read_text().replace("listener 1883", f"listener {port} 127.0.0.1")
        conf = conf.replace(
            "persistence true", f"persistence true\npersistence_location {directory}/"
        )
        path = Path(directory) / "mosquitto.conf"
        path.write_text(conf + "\nallow_anonymous true\n")
        process = subprocess.Popen(
            [binary, "-c", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise IngestError("mosquitto did not start")
                time.sleep(0.05)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


# aiomqtt warns at every publish while many are in flight, which is the point here.
_QUIET = logging.getLogger("bench.mqtt")
_QUIET.setLevel(logging.ERROR)


def _client(url: str, **options: Any) -> aiomqtt.Client:
    host, port = url.removeprefix("mqtt://").split(":")
    return aiomqtt.Client(
        host,
        int(port),
        protocol=aiomqtt.ProtocolVersion.V5,
        max_inflight_messages=1000,
        logger=_QUIET,
        **options,
    )


async def _publish(
    url: str,
    uplinks: list[Uplink],
    *,
    rate: float | None = None,
    on_sent: Callable[[int, float], None] | None = None,
) -> float:
    """Publish with QoS 1, as fast as PUBACKs come or paced at `rate` per second; `on_sent` is
    told each message's index and publish time. Returns the publish rate achieved."""
    window = asyncio.Semaphore(1000)
    started = time.perf_counter()
    async with _client(url) as client:

        async def one(uplink: Uplink) -> None:
            try:
                await client.publish(uplink.topic, uplink.body, qos=1)
            finally:
                window.release()

        tasks: list[asyncio.Task[None]] = []
        for i, uplink in enumerate(uplinks):
            if rate is not None:
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await window.acquire()
            if on_sent is not None:
                on_sent(i, time.perf_counter())
            tasks.append(asyncio.create_task(one(uplink)))
        await asyncio.gather(*tasks)
    return len(uplinks) / (time.perf_counter() - started)


async def ceiling(url: str, uplinks: list[Uplink]) -> dict[str, Any]:
    """The same publisher into Mosquitto's own C subscriber (mosquitto_sub, QoS 1, output
    discarded): what the publisher and the broker manage with no work at the receiving end."""
    binary = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
    host, port = url.removeprefix("mqtt://").split(":")
    command = [binary, "-h", host, "-p", port, "-q", "1", "-V", "mqttv5"]
    for topic in TOPICS:
        command += ["-t", topic]
    command += ["-C", str(len(uplinks)), "-i", "bench-bare-subscriber"]
    subscriber = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        await asyncio.sleep(0.5)  # subscribed before the first publish
        if subscriber.returncode is not None:
            raise IngestError("mosquitto_sub failed to start")
        with CpuMeter([subscriber.pid], None) as meter:
            started = time.perf_counter()
            published = await _publish(url, uplinks)
            await asyncio.wait_for(subscriber.wait(), timeout=300)
            elapsed = time.perf_counter() - started
    finally:
        if subscriber.returncode is None:
            subscriber.kill()
            await subscriber.wait()
    return {
        "value": round(len(uplinks) / elapsed),
        "unit": "messages/s",
        "detail": {
            "messages": len(uplinks),
            "publish_rate": round(published),
            "subscriber": "mosquitto_sub (C, QoS 1)",
            "cpu": meter.result,
        },
    }


async def _taken_in(http: httpx.AsyncClient) -> int:
    health = (await http.get("/health")).json()
    return int(sum(health.get("ingest", {}).values()))


async def _wait_connected(http: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 30
    while (await http.get("/health")).json().get("mqtt") != "connected":
        if time.monotonic() > deadline:
            raise IngestError("stadsnav did not connect to the bench's Mosquitto")
        await asyncio.sleep(0.1)


async def register(base_url: str, fleet: list[Any]) -> None:
    """Register the fleet through the registry's API, as an operator's import would."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        await _wait_connected(http)
        window = asyncio.Semaphore(8)

        async def one(device: Any) -> None:
            body: dict[str, Any] = {
                "devEUI": device.dev_eui,
                "model": device.model,
                "owner": "stockholms-stad",
                "state": "active",
                "location": [device.lon, device.lat],
                "settings": {},
                # The simulator places devices at random: a few stations of a kind end up
                # closer than the registry's co-use radius.
                "override": {"reason": "simulated fleet, placed at random"},
            }
            if device.target_id is not None:
                body["target"] = {"id": device.target_id, "type": device.target_type}
            if device.bin_depth is not None:
                body["settings"]["binDepth"] = device.bin_depth
            if device.sensor_height is not None:
                body["settings"]["sensorHeight"] = device.sensor_height
            async with window:
                answer = await http.post("/devices", json=body)
            if answer.status_code != 201:
                raise IngestError(f"registering {device.dev_eui}: {answer.text[:300]}")

        await asyncio.gather(*(one(device) for device in fleet))


async def throughput(
    base_url: str, url: str, uplinks: list[Uplink], meter_pids: list[int], database: str | None
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        before = await _taken_in(http)
        with CpuMeter(meter_pids, database) as meter:
            started = time.perf_counter()
            publishing = asyncio.create_task(_publish(url, uplinks))
            deadline = started + 600
            while await _taken_in(http) - before < len(uplinks):
                if time.perf_counter() > deadline:
                    raise IngestError("stadsnav took in too few uplinks within 10 minutes")
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            published = await publishing
        health = (await http.get("/health")).json()
    return {
        "value": round(len(uplinks) / elapsed),
        "unit": "uplinks/s",
        "detail": {
            "uplinks": len(uplinks),
            "publish_rate": round(published),
            "outcomes": health.get("ingest"),
            "cpu": meter.result,
        },
    }


async def latency(
    base_url: str,
    url: str,
    uplinks: list[Uplink],
    *,
    rate: float,
    sample_every: int,
    meter_pids: list[int],
    database: str | None,
) -> dict[str, Any]:
    seen: list[float] = []
    missing = 0
    watchers: list[asyncio.Task[None]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        before = await _taken_in(http)

        async def watch(uplink: Uplink, published_at: float) -> None:
            nonlocal missing
            wanted = datetime.fromisoformat(uplink.time)
            while time.perf_counter() < published_at + 30:
                answer = await http.get(
                    f"/ngsi-ld/v1/entities/{uplink.device_id}",
                    params={"pick": "dateLastValueReported", "options": "keyValues"},
                )
                if answer.status_code == 200:
                    shown = answer.json().get("dateLastValueReported")
                    if shown and datetime.fromisoformat(shown) >= wanted:
                        seen.append(time.perf_counter() - published_at)
                        return
                await asyncio.sleep(0.01)
            missing += 1

        def on_sent(index: int, at: float) -> None:
            if index % sample_every == 0:
                watchers.append(asyncio.create_task(watch(uplinks[index], at)))

        with CpuMeter(meter_pids, database) as meter:
            published = await _publish(url, uplinks, rate=rate, on_sent=on_sent)
            await asyncio.gather(*watchers)
            deadline = time.perf_counter() + 120
            while await _taken_in(http) - before < len(uplinks):
                if time.perf_counter() > deadline:
                    raise IngestError("stadsnav fell behind the paced publisher")
                await asyncio.sleep(0.05)
    if missing:
        raise IngestError(f"{missing} sampled uplinks never became visible within 30 s")
    summary = latency_summary(seen)
    return {
        "value": summary["p99_ms"],
        "unit": "ms (p99)",
        "detail": {
            **summary,
            "rate": rate,
            "publish_rate": round(published),
            "uplinks": len(uplinks),
            "samples": len(seen),
            "cpu": meter.result,
        },
    }
