"""Change-to-notification latency with many active subscriptions (issue 5, `--workloads notify`).

A fleet of sensors, each with a subscription of its own (1 000 in the full run: entity id,
watchedAttributes, an HTTP endpoint on this process), so every change is matched against all of
them and notified to exactly one. Changes are batch updates sent open loop at a fixed rate; each
carries its sequence number, and the receiver notes when the notification of that number
arrives. Latency is from the moment the batch request was sent to the moment its notification
was read by the receiver: matching, queueing durably, delivery and the receiver's side of HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import orjson

from bench.stats import CpuMeter, latency_summary
from bench.workloads import WorkloadError

SENSOR = "urn:ngsi-ld:AirQualitySensor:bench-{n:05d}"
CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"


class Receiver:
    """A bare HTTP/1.1 server (keep-alive, Content-Length bodies) that notes arrivals.

    Written on asyncio streams rather than a framework so the receiving end costs little CPU
    next to the server measured."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.notifications = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.changed = asyncio.Event()

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            # End the connections' tasks here, not cancelled at the loop's end (which asyncio
            # reports as errors).
            for writer in self._open.values():
                writer.close()
            if self._open:
                await asyncio.wait(list(self._open), timeout=2)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._open[task] = writer
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                now = time.perf_counter()
                self._note(body, now)
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._open.pop(task, None)
            writer.close()

    def _note(self, body: bytes, now: float) -> None:
        notification = orjson.loads(body)
        self.notifications += 1
        for entity in notification.get("data", []):
            seq = entity.get("seq")
            if isinstance(seq, dict):
                seq = seq.get("value")
            if isinstance(seq, int):
                self.arrived.setdefault(seq, now)
        self.changed.set()


def _sensor(n: int, seq: int) -> dict[str, Any]:
    return {
        "id": SENSOR.format(n=n),
        "type": "AirQualityObserved",
        "seq": {"type": "Property", "value": seq},
        "no2": {"type": "Property", "value": (seq % 400) / 10, "unitCode": "GQ"},
    }


async def subscriptions_latency(
    base_url: str,
    *,
    subscriptions: int,
    rate: float,
    seconds: float,
    batch: int,
    meter_pids: list[int],
    database: str | None,
) -> dict[str, Any]:
    """Latency p50/p99 from change to notification at `rate` changes/s, `subscriptions`
    active subscriptions (one per sensor)."""
    headers = {"Link": f'<{CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"'}
    async with (
        Receiver() as receiver,
        httpx.AsyncClient(base_url=base_url, timeout=60, headers=headers) as http,
    ):
        load = [_sensor(n, -1) for n in range(subscriptions)]
        for offset in range(0, len(load), 500):
            answer = await http.post(
                "/ngsi-ld/v1/entityOperations/upsert", json=load[offset : offset + 500]
            )
            if answer.status_code not in (201, 204):
                raise WorkloadError(f"loading sensors: {answer.status_code} {answer.text[:300]}")
        for n in range(subscriptions):
            answer = await http.post(
                "/ngsi-ld/v1/subscriptions",
                json={
                    "type": "Subscription",
                    "entities": [{"id": SENSOR.format(n=n), "type": "AirQualityObserved"}],
                    "watchedAttributes": ["seq"],
                    "notification": {
                        "attributes": ["seq", "no2"],
                        "format": "keyValues",
                        "endpoint": {"uri": receiver.url, "accept": "application/json"},
                    },
                },
            )
            if answer.status_code != 201:
                raise WorkloadError(f"subscribing: {answer.status_code} {answer.text[:300]}")
        await asyncio.sleep(1.5)  # the other workers' subscription caches catch up
        sent: dict[int, float] = {}
        total = int(rate * seconds)
        interval = batch / rate
        statuses: list[int] = []

        async def send(first: int) -> None:
            body = [_sensor((first + i) % subscriptions, first + i) for i in range(batch)]
            stamp = time.perf_counter()
            for i in range(batch):
                sent[first + i] = stamp
            answer = await http.post("/ngsi-ld/v1/entityOperations/update", json=body)
            statuses.append(answer.status_code)

        pending: set[asyncio.Task[None]] = set()
        with CpuMeter(meter_pids, database) as meter:
            start = time.perf_counter()
            for k, first in enumerate(range(0, total, batch)):
                due = start + k * interval
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(send(first))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.gather(*pending)
            sending = time.perf_counter() - start
            deadline = time.perf_counter() + 30
            while len(receiver.arrived) < total and time.perf_counter() < deadline:
                receiver.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(receiver.changed.wait(), 1)
        bad = [s for s in statuses if s != 204]
        if bad:
            raise WorkloadError(f"{len(bad)} update batches failed, e.g. {bad[0]}")
        latencies = [receiver.arrived[seq] - sent[seq] for seq in sent if seq in receiver.arrived]
        missing = total - len(latencies)
        summary = latency_summary(latencies)
        return {
            "value": summary["p99_ms"],
            "unit": "ms p99",
            "detail": {
                **summary,
                "subscriptions": subscriptions,
                "changes": total,
                "changes_per_s": round(total / sending, 1),
                "notifications": receiver.notifications,
                "not_notified_within_30s": missing,
                "batch": batch,
                **meter.result,
            },
        }
