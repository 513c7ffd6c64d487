"""Nothing acknowledged is lost when stadsnav is killed mid-work, and concurrent workers on one
database never lose each other's updates."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import httpx

E = "/ngsi-ld/v1/entities"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _server(database_url: str, workers: int = 1) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """stadsnav as its own process group, so a test can kill it (and its workers) with -9."""
    port = _free_port()
    command = [sys.executable, "-m", "stadsnav", "serve", "--port", str(port)]
    command += ["--database", database_url, "--workers", str(workers)]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, "STADSNAV_LOG_LEVEL": "warning"},
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{base}/health", timeout=1)
                    break
                except httpx.TransportError:
                    assert process.poll() is None, _tail(log)
                    assert time.monotonic() < deadline, "server did not start"
                    time.sleep(0.1)
            yield base, process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-3000:]


def test_acknowledged_writes_survive_a_kill_during_writes(database_url: str) -> None:
    acknowledged: list[str] = []
    with _server(database_url) as (base, process):
        stop = threading.Event()

        def write() -> None:
            with httpx.Client(base_url=base, timeout=5) as http:
                n = 0
                while not stop.is_set():
                    batch = [
                        {"id": f"urn:d:{n}:{k}", "type": "T", "p": {"type": "Property", "value": k}}
                        for k in range(50)
                    ]
                    try:
                        response = http.post("/ngsi-ld/v1/entityOperations/upsert", json=batch)
                    except httpx.TransportError:
                        return
                    if response.status_code in (201, 204):
                        acknowledged.extend(e["id"] for e in batch)
                    n += 1

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(1.5)
        os.killpg(process.pid, signal.SIGKILL)
        stop.set()
        writer.join(10)
    assert len(acknowledged) > 100
    with _server(database_url) as (base, _):
        found = httpx.get(
            f"{base}{E}", params={"type": "T", "count": "true", "limit": "0"}
        ).headers["NGSILD-Results-Count"]
        assert int(found) >= len(acknowledged)
        for entity_id in acknowledged[-50:]:
            assert httpx.get(f"{base}{E}/{entity_id}").status_code == 200


def test_two_workers_never_lose_concurrent_updates_to_one_entity(database_url: str) -> None:
    with _server(database_url, workers=2) as (base, _):
        created = httpx.post(f"{base}{E}", json={"id": "urn:c:1", "type": "T"})
        assert created.status_code == 201

        async def append_all() -> list[int]:
            limits = httpx.Limits(max_connections=20)
            async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
                responses = await asyncio.gather(
                    *(
                        http.post(
                            f"{E}/urn:c:1/attrs", json={f"a{n}": n}, headers={"Connection": "close"}
                        )
                        for n in range(60)
                    )
                )
            return [r.status_code for r in responses]

        statuses = asyncio.run(append_all())
        assert statuses == [204] * 60
        body = httpx.get(f"{base}{E}/urn:c:1").json()
        assert {f"a{n}" for n in range(60)} <= set(body)
