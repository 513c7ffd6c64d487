"""The four workloads. Each returns the figure and its details; none prints.

All load comes from one asyncio event loop in this process using httpx with a connection pool.
Request bodies are generated and serialised before the clock starts, so that the client spends
its time sending, not building JSON. The CPU meter in every result (client_cores) shows whether
the client got anywhere near one full core, the point where it would become the bottleneck.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import random
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from bench import data
from bench.stats import CpuMeter, latency_summary

API = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}


@dataclass
class Target:
    """Where and how to measure: the server's URL and the processes to meter."""

    base_url: str
    server_pids: list[int]
    database: str | None  # the PostgreSQL database name, None for SQLite

    def client(self, connections: int) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=120.0)

    def meter(self) -> CpuMeter:
        return CpuMeter(self.server_pids, self.database)


class WorkloadError(RuntimeError):
    pass


def _check(statuses: Counter[int], expected: set[int], samples: list[str], what: str) -> None:
    bad = {code: n for code, n in statuses.items() if code not in expected}
    if bad:
        raise WorkloadError(f"{what}: unexpected answers {bad}; first: {samples[:1]}")


async def _warm_up(client: httpx.AsyncClient, connections: int) -> None:
    """Open the pool's connections before the clock starts."""
    await asyncio.gather(*(client.get("/health") for _ in range(connections)))


async def batch_upsert(
    target: Target,
    *,
    start: int,
    requests: int,
    size: int,
    generation: int,
    seed: int,
    concurrency: int = 2,
) -> dict[str, Any]:
    """POST /entityOperations/upsert with `size` entities per request, `requests` times.

    Ids start..start+requests*size; generation 0 creates them, a later generation replaces the
    same ids with new readings. `concurrency` requests are in flight so that the server never
    waits for the client between two batches.
    """
    rng = random.Random(f"{seed}-upsert-{start}-{generation}")
    bodies = [
        orjson.dumps(data.batch(start + i * size, size, rng, generation=generation))
        for i in range(requests)
    ]
    expected = {201, 204} if generation == 0 else {204}
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    latencies: list[float] = []
    queue = iter(bodies)

    async def worker(client: httpx.AsyncClient) -> None:
        for body in queue:
            began = time.perf_counter()
            response = await client.post(
                f"{API}/entityOperations/upsert", content=body, headers=JSON
            )
            latencies.append(time.perf_counter() - began)
            statuses[response.status_code] += 1
            if response.status_code not in expected:
                errors.append(response.text[:500])

    async with target.client(concurrency) as client:
        await _warm_up(client, concurrency)
        with target.meter() as meter:
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    _check(statuses, expected, errors, "batch upsert")
    entities = requests * size
    return {
        "value": round(entities / meter.result["wall_s"], 1),
        "unit": "entities/s",
        "detail": {
            "pass": "new ids" if generation == 0 else "existing ids",
            "entities": entities,
            "requests": requests,
            "entities_per_request": size,
            "concurrency": concurrency,
            "request_latency": latency_summary(latencies),
            "statuses": dict(statuses),
            "body_bytes": sum(len(b) for b in bodies) // len(bodies),
            "cpu": meter.result,
        },
    }


IDS_PER_CREATE_PROCESS = 200_000


def _create_in_process(
    base_url: str, start: int, begin_at: float, seconds: float, connections: int, seed: int
) -> dict[str, Any]:
    """One client process of single_create: closed-loop POST /entities until the time is up."""
    rng = random.Random(f"{seed}-create-{start}")
    # More than one process can send in the time, made before the clock starts.
    bodies = [
        orjson.dumps(data.waste_container(start + i, rng)) for i in range(int(seconds * 2500))
    ]
    numbers = itertools.count()
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    latencies: list[float] = []

    async def worker(client: httpx.AsyncClient, stop_at: float) -> None:
        while time.time() < stop_at:
            number = next(numbers)
            if number >= len(bodies):
                break
            began = time.perf_counter()
            response = await client.post(f"{API}/entities", content=bodies[number], headers=JSON)
            latencies.append(time.perf_counter() - began)
            statuses[response.status_code] += 1
            if response.status_code != 201:
                errors.append(response.text[:500])

    async def run() -> float:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120.0) as client:
            await _warm_up(client, connections)
            await asyncio.sleep(max(0.0, begin_at - time.time()))
            cpu = time.process_time()
            await asyncio.gather(*(worker(client, begin_at + seconds) for _ in range(connections)))
            return time.process_time() - cpu

    cpu = asyncio.run(run())
    return {"statuses": statuses, "errors": errors, "latencies": latencies, "cpu": cpu}


async def single_create(
    target: Target, *, start: int, seconds: float, processes: int, connections: int, seed: int
) -> dict[str, Any]:
    """POST /entities, one entity per request, from closed-loop clients in several processes.

    httpx costs the client around a millisecond of CPU per request, so one client process
    could become the limit here; `processes` client processes with `connections` concurrent
    requests each share the load. Process k creates ids from start + k * IDS_PER_CREATE_PROCESS.
    """
    loop = asyncio.get_running_loop()
    begin_at = time.time() + 4.0  # spawn, import and generate the bodies before this
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures = [
            loop.run_in_executor(
                pool,
                _create_in_process,
                target.base_url,
                start + k * IDS_PER_CREATE_PROCESS,
                begin_at,
                seconds,
                connections,
                seed,
            )
            for k in range(processes)
        ]
        await asyncio.sleep(max(0.0, begin_at - time.time()))
        with target.meter() as meter:
            parts = await asyncio.gather(*futures)
    statuses: Counter[int] = sum((part["statuses"] for part in parts), Counter())
    errors = [e for part in parts for e in part["errors"]]
    latencies = [x for part in parts for x in part["latencies"]]
    _check(statuses, {201}, errors, "single create")
    created = statuses[201]
    cpu = dict(meter.result)
    # The meter saw this (idle) process; the clients are the child processes.
    clients = sum(part["cpu"] for part in parts) / seconds
    cpu["other_cores"] = round(max(0.0, cpu["other_cores"] - clients + cpu["client_cores"]), 2)
    cpu["client_cores"] = round(clients, 2)
    return {
        "value": round(created / seconds, 1),
        "unit": "entities/s",
        "detail": {
            "entities": created,
            "seconds": seconds,
            "client_processes": processes,
            "connections_per_process": connections,
            "request_latency": latency_summary(latencies),
            "cpu": cpu,
        },
        "next_id": start + processes * IDS_PER_CREATE_PROCESS,
    }


async def _open_loop(
    client: httpx.AsyncClient, paths: list[str], rate: float, warm: int, meter: CpuMeter | None
) -> dict[str, Any]:
    """GET each path at its due time t0 + i/rate, whatever the answers so far."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    send_lags: list[float] = []
    service: list[float] = []
    statuses: Counter[int] = Counter()
    errors: list[str] = []

    async def one(index: int, due: float) -> None:
        sent = loop.time()
        response = await client.get(paths[index])
        done = loop.time()
        if index < warm:
            return
        latencies.append(done - due)
        send_lags.append(sent - due)
        service.append(done - sent)
        statuses[response.status_code] += 1
        if response.status_code != 200:
            errors.append(response.text[:500])

    tasks = []
    t0 = loop.time() + 0.05
    for index in range(len(paths)):
        due = t0 + index / rate
        if index == warm and meter is not None:
            meter.__enter__()
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    if meter is not None:
        meter.__exit__(None, None, None)
    _check(statuses, {200}, errors, "open-loop GET")
    return {
        "latencies": latencies,
        "send_lag_p99_ms": latency_summary(send_lags)["p99_ms"],
        "service_time_p99_ms": latency_summary(service)["p99_ms"],
    }


async def retrieve_open_loop(
    target: Target,
    *,
    ids: list[str],
    rate: float,
    seconds: float,
    warm_up_seconds: float,
    seed: int,
    connections: int = 64,
) -> dict[str, Any]:
    """GET /entities/{id} at a fixed schedule of `rate` requests/s, whatever the answers.

    Request i is due at t0 + i/rate and its latency is measured from that due time, not from
    when it was actually sent, so a stalled server shows up as latency instead of as fewer
    requests (no coordinated omission). The first warm_up_seconds are not counted. Before it,
    the same open loop against GET /health for a third of the time gives the floor: what the
    client, the network stack, uvicorn and Starlette cost without the broker.
    """
    rng = random.Random(f"{seed}-retrieve")
    warm = int(rate * warm_up_seconds)
    paths = [f"{API}/entities/{rng.choice(ids)}" for _ in range(warm + int(rate * seconds))]
    floor_paths = ["/health"] * (warm + int(rate * seconds / 3))
    async with target.client(connections) as client:
        await _warm_up(client, 8)
        floor = await _open_loop(client, floor_paths, rate, warm, None)
        meter = target.meter()
        measured = await _open_loop(client, paths, rate, warm, meter)
    summary = latency_summary(measured["latencies"])
    floor_summary = latency_summary(floor["latencies"])
    return {
        "value": summary["p99_ms"],
        "unit": "ms (p99)",
        "detail": {
            **summary,
            "requests": len(measured["latencies"]),
            "rate_per_s": rate,
            "achieved_rate_per_s": round(len(measured["latencies"]) / meter.result["wall_s"], 1),
            "measured_from": "scheduled send time (open loop)",
            "client_send_lag_p99_ms": measured["send_lag_p99_ms"],
            "service_time_p99_ms": measured["service_time_p99_ms"],
            "floor_health_p50_ms": floor_summary["p50_ms"],
            "floor_health_p99_ms": floor_summary["p99_ms"],
            "entities_in_store": len(ids),
            "cpu": meter.result,
        },
    }


def geo_query_params(rng: random.Random) -> dict[str, str]:
    lon, lat = data.random_point(rng)
    return {
        "type": "WasteContainer",
        "q": "fillingLevel>0.8",
        "georel": "near;maxDistance==500",
        "geometry": "Point",
        "coordinates": f"[{lon},{lat}]",
    }


def type_q_params(rng: random.Random) -> dict[str, str]:
    level = rng.choice([0.5, 0.8, 0.9, 0.95])
    kind = rng.choice(data.WASTE_KINDS)
    return {"type": "WasteContainer", "q": f'fillingLevel>{level};storedWasteKind=="{kind}"'}


async def query_latency(
    target: Target,
    *,
    queries: int,
    warm_up: int,
    seed: int,
    make_params: Any,
    entities_in_store: int,
    budget_seconds: float = 90.0,
) -> dict[str, Any]:
    """GET /entities with filters, one query at a time (latency, not throughput).

    Stops early after budget_seconds (with at least 20 queries) so a slow server cannot stretch
    the run; detail.queries says how many were measured.
    """
    rng = random.Random(f"{seed}-query-{make_params.__name__}")
    params = [make_params(rng) for _ in range(warm_up + queries)]
    latencies: list[float] = []
    counts: list[int] = []
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    async with target.client(1) as client:
        for p in params[:warm_up]:
            await client.get(f"{API}/entities", params=p)
        with target.meter() as meter:
            give_up_at = time.perf_counter() + budget_seconds
            for p in params[warm_up:]:
                if time.perf_counter() > give_up_at and len(latencies) >= 20:
                    break
                began = time.perf_counter()
                response = await client.get(f"{API}/entities", params=p)
                latencies.append(time.perf_counter() - began)
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    counts.append(len(response.json()))
                else:
                    errors.append(response.text[:500])
    _check(statuses, {200}, errors, "query")
    summary = latency_summary(latencies)
    return {
        "value": summary["p99_ms"],
        "unit": "ms (p99)",
        "detail": {
            **summary,
            "queries": len(latencies),
            "example": params[warm_up],
            "results_per_query_mean": round(sum(counts) / len(counts), 1),
            "results_per_query_max": max(counts),
            "entities_in_store": entities_in_store,
            "cpu": meter.result,
        },
    }
