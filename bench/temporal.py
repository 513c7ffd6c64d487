"""The temporal workload: a year of hourly-ish readings of 1 000 sensors (about 8.8 million
history rows) loaded through the store layer (COPY on PostgreSQL), then through HTTP: the
hourly average of one attribute over the year for every sensor, and lastN=100 of one sensor.

The load bypasses HTTP (it would take hours at API speed and measures nothing temporal); the
queries go through a real `stadsnav serve`, like every other figure.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.stats import latency_summary
from stadsnav.ngsild.names import format_datetime
from stadsnav.settings import Settings
from stadsnav.store.base import HistoryRow
from stadsnav.store.opening import open_store

VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
TYPE = VOCAB + "TemperatureSensor"
ATTR = VOCAB + "temperature"
START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR = timedelta(days=365)


def sensor_id(n: int) -> str:
    return f"urn:ngsi-ld:TemperatureSensor:bench-{n:05d}"


def _rows(n: int, rng: random.Random) -> list[HistoryRow]:
    """A sensor's year: one reading per hour, a few minutes early or late (8 760 rows)."""
    rows = []
    for hour in range(365 * 24):
        at = format_datetime(START + timedelta(hours=hour, seconds=rng.randrange(0, 3000)))
        value = round(10 + 8 * rng.random(), 2)
        instance = {
            "type": "Property",
            "value": value,
            "observedAt": at,
            "createdAt": at,
            "modifiedAt": at,
        }
        rows.append(HistoryRow(sensor_id(n), ATTR, None, at, instance, TYPE))
    return rows


async def load(database: str, sensors: int, seed: int) -> dict[str, Any]:
    """Load the history straight through the store; returns how long it took."""
    store: Any = open_store(Settings(database=database))
    await store.open()
    rng = random.Random(seed)
    started = time.perf_counter()
    count = 0
    try:
        for n in range(sensors):
            rows = _rows(n, rng)
            await store.add_history("", rows, fresh=True)
            count += len(rows)
    finally:
        await store.close()
    seconds = time.perf_counter() - started
    return {"rows": count, "seconds": round(seconds, 1), "rows_per_second": round(count / seconds)}


async def hourly_average(base_url: str, sensors: int, repeat: int) -> dict[str, Any]:
    """GET the hourly average of the year for every sensor (pages of 1 000 entities)."""
    params = {
        "type": "TemperatureSensor",
        "attrs": "temperature",
        "timerel": "between",
        "timeAt": format_datetime(START),
        "endTimeAt": format_datetime(START + YEAR),
        "options": "aggregatedValues",
        "aggrMethods": "avg",
        "aggrPeriodDuration": "PT1H",
        "limit": str(min(sensors, 1000)),
    }
    timings: list[float] = []
    values = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as http:
        for _ in range(repeat):
            started = time.perf_counter()
            offset, values = 0, 0
            while offset < sensors:
                response = await http.get(
                    "/ngsi-ld/v1/temporal/entities", params={**params, "offset": str(offset)}
                )
                response.raise_for_status()
                page = response.json()
                values += sum(len(e["temperature"]["avg"]) for e in page if "temperature" in e)
                offset += len(page)
                if not page:
                    break
            timings.append(time.perf_counter() - started)
    return {
        "value": round(min(timings), 3),
        "unit": "s",
        "detail": {"sensors": sensors, "hourly_values": values, "runs_s": timings},
    }


async def daily_average(base_url: str, sensors: int, repeat: int) -> dict[str, Any]:
    """The same year as daily averages (365 values per sensor), all sensors in one page."""
    params = {
        "type": "TemperatureSensor",
        "attrs": "temperature",
        "timerel": "between",
        "timeAt": format_datetime(START),
        "endTimeAt": format_datetime(START + YEAR),
        "options": "aggregatedValues",
        "aggrMethods": "avg,min,max",
        "aggrPeriodDuration": "P1D",
        "limit": str(min(sensors, 1000)),
    }
    timings = []
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as http:
        for _ in range(repeat):
            started = time.perf_counter()
            response = await http.get("/ngsi-ld/v1/temporal/entities", params=params)
            response.raise_for_status()
            timings.append(time.perf_counter() - started)
    return {"value": round(min(timings), 3), "unit": "s", "detail": {"runs_s": timings}}


async def last_n(base_url: str, sensors: int, requests: int, seed: int) -> dict[str, Any]:
    """lastN=100 of one sensor's temperature, a random sensor per request, one at a time."""
    rng = random.Random(seed)
    seconds = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        for n in range(requests + 20):
            entity = sensor_id(rng.randrange(sensors))
            started = time.perf_counter()
            response = await http.get(
                f"/ngsi-ld/v1/temporal/entities/{entity}", params={"lastN": "100"}
            )
            response.raise_for_status()
            if n >= 20:  # warm-up
                seconds.append(time.perf_counter() - started)
            assert len(response.json()["temperature"]) == 100
    summary = latency_summary(seconds)
    return {"value": summary["p99_ms"], "unit": "ms", "detail": summary}


def run_queries(base_url: str, sensors: int, seed: int, quick: bool) -> list[tuple[str, Any]]:
    repeat = 1 if quick else 3
    return [
        ("temporal_lastn_100", asyncio.run(last_n(base_url, sensors, 50 if quick else 500, seed))),
        ("temporal_daily_avg_year", asyncio.run(daily_average(base_url, sensors, repeat))),
        ("temporal_hourly_avg_year", asyncio.run(hourly_average(base_url, sensors, repeat))),
    ]
