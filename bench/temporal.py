"""The temporal workload: a year of hourly-ish readings of 1 000 sensors (about 8.8 million
history rows) loaded through the store layer (COPY on PostgreSQL), then through HTTP: the
hourly average of one attribute over the year for every sensor (the whole answer, in every page a
client has to ask for, and the first page alone), the daily one, and lastN=100 of one sensor.

The load bypasses HTTP (it would take hours at API speed and measures nothing temporal); the
queries go through a real `stadsnav serve`, like every other figure.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import psycopg

from bench.stats import CpuMeter, latency_summary
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
    loaded = {
        "rows": count,
        "seconds": round(seconds, 1),
        "rows_per_second": round(count / seconds),
    }
    if database.startswith("postgres"):
        # The steady state autovacuum reaches on its own a while after a bulk load: statistics,
        # and the visibility map that lets aggregation read the index alone.
        started = time.perf_counter()
        async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
            await conn.execute("VACUUM ANALYZE history")
        loaded["vacuum_analyze_s"] = round(time.perf_counter() - started, 1)
    return loaded


def _next_time(response: httpx.Response) -> str | None:
    """Where the next time page starts: the end of a 206's Content-Range (clause 6.3.10)."""
    if response.status_code != 206:
        return None
    _, _, rest = response.headers["Content-Range"].partition(" ")
    return rest.rsplit("/", 1)[0].split("Z-", 1)[1]


async def hourly_average(
    base_url: str, sensors: int, repeat: int, meter: Callable[[], CpuMeter]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """GET the hourly average of the year for every sensor, as a client gets all of it: pages
    of 1 000 entities (limit), each in time pages of at most temporal_max_instances periods
    (206 + Content-Range: ask again from where it ends). Two figures: the whole answer (every
    page, every value parsed) and the first page alone."""
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
    whole: list[float] = []
    first: list[float] = []
    values = requests = first_values = 0
    cpu: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as http:
        for _ in range(repeat):
            with meter() as cpu_meter:
                started = time.perf_counter()
                offset, values, requests = 0, 0, 0
                while offset < sensors:
                    at: str | None = params["timeAt"]
                    page: list[Any] = []
                    while at is not None:
                        asked = {**params, "offset": str(offset), "timeAt": at}
                        response = await http.get("/ngsi-ld/v1/temporal/entities", params=asked)
                        response.raise_for_status()
                        page = orjson.loads(response.content)
                        count = sum(
                            len(e["temperature"]["avg"]) for e in page if "temperature" in e
                        )
                        values += count
                        if requests == 0:
                            first.append(time.perf_counter() - started)
                            first_values = count
                        requests += 1
                        at = _next_time(response)
                    offset += len(page)
                    if not page:
                        break
                whole.append(time.perf_counter() - started)
            cpu = cpu_meter.result
    detail = {"sensors": sensors, "requests": requests, "runs_s": [round(t, 3) for t in whole]}
    return (
        {
            "value": round(min(whole), 3),
            "unit": "s",
            "detail": {**detail, "hourly_values": values, "cpu": cpu},
        },
        {
            "value": round(min(first), 3),
            "unit": "s",
            "detail": {
                "sensors": min(sensors, 1000),
                "hourly_values": first_values,
                "runs_s": [round(t, 3) for t in first],
                "cpu_of_whole_answer": cpu,
            },
        },
    )


async def daily_average(
    base_url: str, sensors: int, repeat: int, meter: Callable[[], CpuMeter]
) -> dict[str, Any]:
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
        with meter() as cpu:
            for _ in range(repeat):
                started = time.perf_counter()
                response = await http.get("/ngsi-ld/v1/temporal/entities", params=params)
                response.raise_for_status()
                assert response.status_code == 200  # 365 periods: one page
                page = orjson.loads(response.content)
                timings.append(time.perf_counter() - started)
    values = sum(len(e["temperature"]["avg"]) for e in page)
    detail = {"runs_s": timings, "daily_values": values, "cpu": cpu.result}
    return {"value": round(min(timings), 3), "unit": "s", "detail": detail}


async def last_n(
    base_url: str, sensors: int, requests: int, seed: int, meter: Callable[[], CpuMeter]
) -> dict[str, Any]:
    """lastN=100 of one sensor's temperature, a random sensor per request, one at a time."""
    rng = random.Random(seed)
    seconds = []
    cpu = meter()
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        for n in range(requests + 20):
            if n == 20:  # after the warm-up
                cpu.__enter__()
            entity = sensor_id(rng.randrange(sensors))
            started = time.perf_counter()
            response = await http.get(
                f"/ngsi-ld/v1/temporal/entities/{entity}", params={"lastN": "100"}
            )
            response.raise_for_status()
            if n >= 20:
                seconds.append(time.perf_counter() - started)
            assert len(response.json()["temperature"]) == 100
    cpu.__exit__(None, None, None)
    summary: dict[str, Any] = dict(latency_summary(seconds))
    summary["cpu"] = cpu.result
    return {"value": summary["p99_ms"], "unit": "ms", "detail": summary}


def run_queries(
    base_url: str,
    sensors: int,
    seed: int,
    quick: bool,
    server_pids: list[int] | None = None,
    database: str | None = None,
) -> list[tuple[str, Any]]:
    """Every temporal figure, each with the CPU of the client, server, database and the rest of
    the machine (other_cores) while it ran."""
    repeat = 1 if quick else 3

    def meter() -> CpuMeter:
        return CpuMeter(server_pids or [], database)

    requests = 50 if quick else 500
    figures = [
        ("temporal_lastn_100", asyncio.run(last_n(base_url, sensors, requests, seed, meter))),
        ("temporal_daily_avg_year", asyncio.run(daily_average(base_url, sensors, repeat, meter))),
    ]
    whole, first = asyncio.run(hourly_average(base_url, sensors, repeat, meter))
    figures += [("temporal_hourly_avg_year", whole), ("temporal_hourly_avg_first_page", first)]
    return figures
