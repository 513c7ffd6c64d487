"""Options and the run: every backend, every workload, one JSON line per figure on stdout.

    python -m bench [--backend sqlite|postgres|all] [--quick] [--profile DIR] [--seed N]

Per backend: a fresh database (a SQLite file in a temporary directory, or a PostgreSQL database
stadsnav_bench_<random> that is dropped afterwards), one `stadsnav serve` subprocess with one
worker, then for PostgreSQL a second server with --workers 2 on the same database. Workloads run
in this order so that the queries see exactly the loaded entities: batch upsert of new ids (which
is also the load for the rest), batch upsert over existing ids, retrieve by id, the two queries,
and last single creates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import data, ingestion, notifications, temporal, workloads
from bench.profiling import py_spy
from bench.server import Server, ServerFailed, analyze, postgres_database, sqlite_database

DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

# figure -> (comparison, target); the latency targets apply to p99.
TARGETS: dict[str, tuple[str, float]] = {
    "batch_upsert_new": (">=", 10_000),
    "batch_upsert_existing": (">=", 10_000),
    "retrieve_by_id": ("<=", 10),
    "query_type_q_geo": ("<=", 50),
    "ingest_throughput": (">=", 5_000),
    "ingest_latency": ("<=", 1_000),
    "notify_latency": ("<=", 200),
    "temporal_hourly_avg_year": ("<=", 1.0),
    "temporal_lastn_100": ("<=", 20),
}


@dataclass(frozen=True)
class Sizes:
    batch_size: int
    load_requests: int  # requests of batch_size new entities: the load for everything after
    update_requests: int
    multiworker_new_requests: int
    retrieve_rate: float
    retrieve_seconds: float
    retrieve_warm_up_seconds: float
    geo_queries: int
    type_q_queries: int
    query_warm_up: int
    query_budget_seconds: float
    create_seconds: float
    create_processes: int
    create_connections: int  # per process
    ingest_devices: int
    ingest_uplinks: int  # for the ceiling and the throughput figure
    ingest_paced_uplinks: int  # for the latency figure
    ingest_rate: float  # uplinks/s the latency figure is measured at
    ingest_sample_every: int


FULL = Sizes(
    1000, 100, 20, 20, 200, 10, 1, 100, 50, 5, 30, 10, 2, 2, 3000, 60_000, 30_000, 5000, 100
)
QUICK = Sizes(1000, 5, 5, 3, 200, 3, 0.5, 20, 10, 2, 20, 2, 2, 2, 200, 3000, 3000, 1000, 50)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Run:
    """Collects and prints the figures of one `python -m bench` invocation."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = QUICK if args.quick else FULL
        self.date = datetime.now(UTC).strftime("%Y-%m-%d")
        self.records: list[dict[str, Any]] = []

    def emit(self, figure: str, backend: str, workers: int, result: dict[str, Any]) -> None:
        record: dict[str, Any] = {
            "figure": figure,
            "backend": backend,
            "workers": workers,
            "value": result["value"],
            "unit": result["unit"],
        }
        if figure in TARGETS:
            op, target = TARGETS[figure]
            record["target"] = f"{op} {target:g}"
            ok = result["value"] >= target if op == ">=" else result["value"] <= target
            record["meets_target"] = ok
        record["date"] = self.date
        record["quick"] = self.args.quick
        record["detail"] = result["detail"]
        self.records.append(record)
        print(json.dumps(record), flush=True)

    def emit_error(self, figure: str, backend: str, workers: int, error: BaseException) -> None:
        record = {
            "figure": figure,
            "backend": backend,
            "workers": workers,
            "error": f"{type(error).__name__}: {error}"[:2000],
            "date": self.date,
        }
        self.records.append(record)
        print(json.dumps(record), flush=True)

    def profile_path(self, backend: str, workers: int, figure: str) -> Path | None:
        if self.args.profile is None:
            return None
        directory = Path(self.args.profile)
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{backend}-{workers}w-{figure}.txt"

    def measure(
        self,
        figure: str,
        backend: str,
        server: Server,
        make: Callable[[workloads.Target], Coroutine[Any, Any, dict[str, Any]]],
    ) -> dict[str, Any] | None:
        log(f"{backend} ({server.workers} worker(s)): {figure}")
        database = server.database.rsplit("/", 1)[1] if backend == "postgres" else None
        target = workloads.Target(server.base_url, server.pids(), database)
        try:
            with py_spy(server.worker_pids(), self.profile_path(backend, server.workers, figure)):
                result = asyncio.run(make(target))
        except (workloads.WorkloadError, httpx.HTTPError, OSError) as error:
            log(f"{figure} failed: {error}")
            if server.process is not None and server.process.poll() is not None:
                log("the server has exited; its log ends with:\n" + server.log_tail())
            self.emit_error(figure, backend, server.workers, error)
            return None
        self.emit(figure, backend, server.workers, result)
        return result

    # -- the workloads, in order ------------------------------------------------------------

    def workloads(self, backend: str, server: Server, first_id: int, new_requests: int) -> int:
        """Run every workload against a started server; returns the next unused entity number.

        self.loaded holds the ranges of entity numbers that exist in the store, so that the
        retrieve workload asks only for existing ids (a second server run adds a range).
        """
        s, seed = self.sizes, self.args.seed
        self.measure(
            "batch_upsert_new",
            backend,
            server,
            lambda t: workloads.batch_upsert(
                t, start=first_id, requests=new_requests, size=s.batch_size, generation=0, seed=seed
            ),
        )
        self.loaded.append(range(first_id, first_id + new_requests * s.batch_size))
        loaded = sum(len(r) for r in self.loaded)
        self.measure(
            "batch_upsert_existing",
            backend,
            server,
            lambda t: workloads.batch_upsert(
                t,
                start=first_id,
                requests=min(s.update_requests, new_requests),
                size=s.batch_size,
                generation=1,
                seed=seed,
            ),
        )
        if backend == "postgres":
            # Measure reads in the steady state: with statistics of the loaded table, not of the
            # empty one (autovacuum would analyze within a minute; the plans can differ a lot).
            analyze(server.database)
        ids = [data.entity_id(n) for r in self.loaded for n in r]
        self.measure(
            "retrieve_by_id",
            backend,
            server,
            lambda t: workloads.retrieve_open_loop(
                t,
                ids=ids,
                rate=s.retrieve_rate,
                seconds=s.retrieve_seconds,
                warm_up_seconds=s.retrieve_warm_up_seconds,
                seed=seed,
            ),
        )
        queries = [("query_type_q_geo", workloads.geo_query_params, s.geo_queries)]
        if server.workers == 1:  # a latency figure: one more worker does not change it
            queries.append(("query_type_q", workloads.type_q_params, s.type_q_queries))
        for figure, params, count in queries:
            self.measure(
                figure,
                backend,
                server,
                lambda t, params=params, count=count: workloads.query_latency(  # type: ignore[misc]
                    t,
                    queries=count,
                    warm_up=s.query_warm_up,
                    seed=seed,
                    make_params=params,
                    entities_in_store=loaded + self.created,
                    budget_seconds=s.query_budget_seconds,
                ),
            )
        created = self.measure(
            "single_create",
            backend,
            server,
            lambda t: workloads.single_create(
                t,
                start=self.loaded[-1].stop,
                seconds=s.create_seconds,
                processes=s.create_processes,
                connections=s.create_connections,
                seed=seed,
            ),
        )
        if created is not None:
            self.created += created["detail"]["entities"]
        return self.loaded[-1].stop + s.create_processes * workloads.IDS_PER_CREATE_PROCESS

    def ingest(self, backend: str) -> None:
        """Device data through Mosquitto (bench/ingestion.py), on a database of its own."""
        s = self.sizes
        log(f"{backend}: ingestion, generating {s.ingest_uplinks + s.ingest_paced_uplinks} uplinks")
        fleet, uplinks = ingestion.fleet_and_uplinks(
            s.ingest_devices, s.ingest_uplinks + s.ingest_paced_uplinks, self.args.seed
        )
        burst, paced = uplinks[: s.ingest_uplinks], uplinks[s.ingest_uplinks :]
        with ingestion.mosquitto() as broker:
            log(f"{backend}: mqtt_ceiling (bare subscriber)")
            ceiling = asyncio.run(ingestion.ceiling(broker, burst))
            self.emit("mqtt_ceiling", backend, 1, ceiling)
            with self.database(backend) as url:
                args = ("--mqtt", broker)
                with Server(url, 1, log_dir=self.log_dir, extra_args=args) as server:
                    asyncio.run(ingestion.register(server.base_url, fleet))
                    database = url.rsplit("/", 1)[1] if backend == "postgres" else None
                    log(f"{backend}: ingest_throughput")
                    profile = self.profile_path(backend, 1, "ingest_throughput")
                    with py_spy(server.worker_pids(), profile):
                        result = asyncio.run(
                            ingestion.throughput(
                                server.base_url, broker, burst, server.pids(), database
                            )
                        )
                    result["detail"]["ceiling"] = ceiling["value"]
                    result["detail"]["share_of_ceiling"] = round(
                        result["value"] / ceiling["value"], 3
                    )
                    self.emit("ingest_throughput", backend, 1, result)
                    # Latency means something only at a rate stadsnav keeps up with: the target
                    # rate if it can, else four fifths of what it just managed (its own figure,
                    # without the target, so that one is never claimed at a lower rate).
                    rate = min(s.ingest_rate, round(0.8 * result["value"]))
                    figure = "ingest_latency" if rate == s.ingest_rate else "ingest_latency_below"
                    log(f"{backend}: {figure} at {rate:g} uplinks/s")
                    profile = self.profile_path(backend, 1, figure)
                    with py_spy(server.worker_pids(), profile):
                        latency = asyncio.run(
                            ingestion.latency(
                                server.base_url,
                                broker,
                                paced,
                                rate=rate,
                                sample_every=s.ingest_sample_every,
                                meter_pids=server.pids(),
                                database=database,
                            )
                        )
                    self.emit(figure, backend, 1, latency)

    def notify(self, backend: str) -> None:
        """Change-to-notification latency with many subscriptions (bench/notifications.py)."""
        subscriptions, rate, seconds = (
            (100, 200.0, 5.0) if self.args.quick else (1000, 1000.0, 30.0)
        )
        with self.database(backend) as url, Server(url, 1, log_dir=self.log_dir) as server:
            self.measure(
                "notify_latency",
                backend,
                server,
                lambda t: notifications.subscriptions_latency(
                    t.base_url,
                    subscriptions=subscriptions,
                    rate=rate,
                    seconds=seconds,
                    batch=50,
                    meter_pids=t.server_pids,
                    database=t.database,
                ),
            )

    def temporal(self, backend: str) -> None:
        """A year of 1 000 sensors' history loaded through the store, then temporal queries
        over HTTP (bench/temporal.py); --quick loads 20 sensors."""
        sensors = 20 if self.args.quick else 1000
        with self.database(backend) as url:
            log(f"{backend}: loading {sensors} sensors x 8760 hourly readings")
            loaded = asyncio.run(temporal.load(url, sensors, self.args.seed))
            log(f"{backend}: loaded {loaded}")
            with Server(url, 1, log_dir=self.log_dir) as server:
                try:
                    database = url.rsplit("/", 1)[1] if backend == "postgres" else None
                    figures = temporal.run_queries(
                        server.base_url,
                        sensors,
                        self.args.seed,
                        self.args.quick,
                        server.pids(),
                        database,
                    )
                except (httpx.HTTPError, OSError) as error:
                    self.emit_error("temporal", backend, 1, error)
                    return
                for figure, result in figures:
                    result["detail"]["load"] = loaded
                    self.emit(figure, backend, 1, result)

    def backend(self, backend: str) -> None:
        if "temporal" in self.args.workloads:
            self.temporal(backend)
        if "notify" in self.args.workloads:
            self.notify(backend)
        if "ingest" in self.args.workloads:
            try:
                self.ingest(backend)
            except (ingestion.IngestError, httpx.HTTPError, OSError) as error:
                log(f"{backend}: ingestion failed: {error}")
                self.emit_error("ingest", backend, 1, error)
        if "api" not in self.args.workloads:
            return
        s = self.sizes
        self.loaded: list[range] = []
        self.created = 0  # by single_create, in ids outside self.loaded
        with self.database(backend) as url:
            log(f"{backend}: database {url}")
            with Server(url, 1, log_dir=self.log_dir) as server:
                next_id = self.workloads(backend, server, 0, s.load_requests)
            if backend == "postgres" and not self.args.single_worker:
                with Server(url, 2, log_dir=self.log_dir) as server:
                    self.workloads(backend, server, next_id, s.multiworker_new_requests)

    @contextlib.contextmanager
    def database(self, backend: str) -> Iterator[str]:
        if backend == "sqlite":
            with sqlite_database(self.args.keep) as url:
                yield url
        else:
            with postgres_database(self.args.pg_admin_url, self.args.keep) as url:
                yield url
        if self.args.keep:
            log(f"{backend}: kept the database {url} (--keep): drop it yourself")

    def main(self) -> int:
        backends = ["sqlite", "postgres"] if self.args.backend == "all" else [self.args.backend]
        with tempfile.TemporaryDirectory(prefix="stadsnav-bench-logs-") as logs:
            self.log_dir = Path(logs)
            for backend in backends:
                try:
                    self.backend(backend)
                except ServerFailed as error:
                    log(f"{backend}: {error}; the server log ends with:\n{error.log_tail}")
                    self.emit_error("setup", backend, 0, error)
                except Exception as error:
                    log(f"{backend}: {type(error).__name__}: {error}")
                    traceback.print_exc(file=sys.stderr)
                    self.emit_error("setup", backend, 0, error)
        self.summary()
        return 1 if any("error" in r for r in self.records) else 0

    def summary(self) -> None:
        log("summary" + (" (quick run: sizes too small to judge)" if self.args.quick else ""))
        for r in self.records:
            where = f"{r['backend']}/{r['workers']}w"
            if "error" in r:
                print(f"  {r['figure']:24} {where:12} ERROR {r['error'][:100]}", file=sys.stderr)
                continue
            extra = ""
            if r["unit"].startswith("ms"):
                extra = f"(p50 {r['detail']['p50_ms']} ms)"
            verdict = ""
            if "meets_target" in r:
                verdict = f"target {r['target']}: {'met' if r['meets_target'] else 'MISSED'}"
            figure = f"  {r['figure']:24} {where:12} {r['value']:>10} {r['unit']:12}"
            print(f"{figure} {extra:18} {verdict}", file=sys.stderr)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record the server with py-spy into DIR, one collapsed-stack file per workload",
    )
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("STADSNAV_BENCH_PG", DEFAULT_PG_ADMIN),
        help="PostgreSQL database to connect to for CREATE/DROP DATABASE [env STADSNAV_BENCH_PG]",
    )
    parser.add_argument(
        "--single-worker", action="store_true", help="skip the --workers 2 PostgreSQL run"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases afterwards, to look into them"
    )
    parser.add_argument(
        "--workloads",
        default="api,ingest,notify",
        help="comma-separated: api (the NGSI-LD figures), ingest (device data through MQTT), "
        "notify (change-to-notification latency with many subscriptions), temporal (a year "
        "of 1 000 sensors' history; not in the default, it loads 8.8 million rows)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through the cleanups (server, database)

    signal.signal(signal.SIGTERM, terminate)
    return Run(args).main()
