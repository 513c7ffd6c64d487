"""The living city `make run` shows: the simulated Stockholm fleet, registered in this server and
sending its uplinks to it over HTTP, like a network server would.

The fleet is imported through the registry's bulk import (one code path with `stadsnav devices
import`), as the organisation `stockholms-stad`, active; importing it again on the next start
reports the devices as already registered. The simulator then runs from twelve simulated hours
ago at sixty simulated seconds per second, so the first look already shows half a day of bins
filling and air quality following the traffic, with the simulator's default faults (silent
devices, garbage payloads, duplicates) feeding the dead letters and the health alarms.
"""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import UTC, datetime, timedelta

import httpx

from stadsnav.devices.importing import Defaults, import_rows, read_csv
from stadsnav.devices.registry import Registry
from stadsnav.sim import fleet as sim_fleet
from stadsnav.sim.faults import Faults
from stadsnav.sim.runner import Counters, Target, run

log = logging.getLogger("stadsnav.demo")

OWNER = "stockholms-stad"
SPEED = 60.0
HEAD_START = timedelta(hours=12)
FAULTS = "silent=0.01,garbage=0.002,duplicate=0.005"


async def simulate(registry: Registry, base_url: str, devices: int, *, seed: int = 0) -> None:
    city = sim_fleet.build_fleet(devices, seed)
    text = io.StringIO()
    sim_fleet.write_csv(city, text)
    rows = read_csv(text.getvalue(), Defaults(owner=OWNER, state="active"))
    report = await import_rows(registry, "", rows, actor="simulator")
    log.warning(
        "Simulated fleet: %d devices registered, %d already registered, %d rejected",
        report.count("registered"),
        report.count("already-registered"),
        report.count("rejected"),
    )
    await _until_serving(base_url)
    # The server's access log already shows every uplink; the client's echo of each doubles it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    counters = Counters()
    try:
        await run(
            Target(base_url),
            city,
            speed=SPEED,
            faults=Faults.parse(FAULTS),
            seed=seed,
            start=datetime.now(UTC) - HEAD_START,
            counters=counters,
        )
    finally:
        log.warning(
            "Simulator stopped after %d uplinks (%d failed)", counters.sent, counters.failed
        )


async def _until_serving(base_url: str) -> None:
    """The simulator starts with the server's lifespan, before uvicorn accepts connections."""
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as http:
        while True:
            try:
                if (await http.get("/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
