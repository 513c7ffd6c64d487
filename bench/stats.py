"""Percentiles and the CPU meter that tells whether the client, the server or the machine is
the limit during a workload."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from bench.server import cpu_seconds, machine_busy_ticks, postgres_backend_pids


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else math.nan,
        "mean_ms": round(sum(ms) / len(ms), 2) if ms else math.nan,
    }


@dataclass
class CpuMeter:
    """CPU used during a block, in cores (1.0 = one core busy all the time).

    client: this bench process; server: the server's process group; database: the PostgreSQL
    backends of the bench database (0 for SQLite, which runs inside the server); other: every
    other process on the machine (a test suite running alongside, PostgreSQL's own background
    writers); machine_busy: share of all cores busy.
    """

    server_pids: list[int]
    database: str | None
    _start: dict[str, float] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)

    def __enter__(self) -> CpuMeter:
        busy, total = machine_busy_ticks()
        self._start = {
            "wall": time.perf_counter(),
            "client": time.process_time(),
            "server": cpu_seconds(self.server_pids),
            "database": self._database_cpu(),
            "busy": busy,
            "total": total,
        }
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._start["wall"]
        busy, total = machine_busy_ticks()
        database = self._database_cpu()
        client = (time.process_time() - self._start["client"]) / wall
        server = (cpu_seconds(self.server_pids) - self._start["server"]) / wall
        db = (database - self._start["database"]) / wall
        busy_share = (busy - self._start["busy"]) / max(1, total - self._start["total"])
        busy_cores = busy_share * (os.cpu_count() or 1)
        self.result = {
            "wall_s": round(wall, 2),
            "client_cores": round(client, 2),
            "server_cores": round(server, 2),
            "database_cores": round(db, 2),
            "other_cores": round(max(0.0, busy_cores - client - server - db), 2),
            "machine_busy": round(busy_share, 2),
        }

    def _database_cpu(self) -> float:
        if self.database is None:
            return 0.0
        return cpu_seconds(postgres_backend_pids(self.database))
