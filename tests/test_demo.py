"""`make run`'s living city: the simulated fleet registers itself and its uplinks are stored."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn

from stadsnav.api.app import create_app
from stadsnav.settings import Settings


def test_the_simulated_fleet_is_registered_and_its_uplinks_are_stored(settings: Settings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = settings.model_copy(update={"port": port, "simulate_devices": 40})
    config = uvicorn.Config(create_app(demo), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        stored = 0
        while stored < 20:
            assert time.monotonic() < deadline, f"only {stored} uplinks stored"
            time.sleep(0.2)
            try:
                stored = httpx.get(f"{base}/health").json()["ingest"].get("stored", 0)
            except httpx.HTTPError:
                continue
        devices = httpx.get(f"{base}/devices", params={"limit": 100}).json()
        assert len(devices) == 40
        assert {d["owner"] for d in devices} == {"stockholms-stad"}
        bins = httpx.get(
            f"{base}/ngsi-ld/v1/entities", params={"type": "WasteContainer", "count": "true"}
        )
        assert int(bins.headers["NGSILD-Results-Count"]) > 0
    finally:
        server.should_exit = True
        thread.join(10)
