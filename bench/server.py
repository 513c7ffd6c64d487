"""The server under test as a subprocess, the throw-away databases, and CPU accounting.

The server runs in its own session (process group), so that stopping it also stops the uvicorn
worker processes of a `--workers N` run; it is always stopped, and the PostgreSQL database always
dropped, by the context managers here, even when a workload fails or the bench is interrupted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerFailed(RuntimeError):
    """The server did not start; the message ends with the last line of its log."""

    def __init__(self, message: str, log_tail: str) -> None:
        last = log_tail.strip().splitlines()[-1:] or ["(empty log)"]
        super().__init__(f"{message}: {last[0].strip()}")
        self.log_tail = log_tail


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """One `stadsnav serve` subprocess; use as a context manager."""

    database: str
    workers: int = 1
    log_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"server-{self.port}.log"

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, ready_timeout: float = 90.0) -> None:
        command = [
            sys.executable,
            "-m",
            "stadsnav",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database",
            self.database,
            "--workers",
            str(self.workers),
            *self.extra_args,
        ]
        env = dict(os.environ)
        # No access log line per request: the benchmark measures the broker, not the terminal.
        env["STADSNAV_LOG_LEVEL"] = "warning"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerFailed(
                    f"server exited with {self.process.returncode} before it was ready",
                    self.log_tail(),
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    if self.workers > 1:
                        self._wait_for_workers(deadline)
                    return
            time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise ServerFailed(f"server not ready after {ready_timeout} s", tail)

    def _wait_for_workers(self, deadline: float) -> None:
        """Every worker answers /health before the first measurement (each opens its pool)."""
        while time.monotonic() < deadline and len(self.pids()) < self.workers + 1:
            time.sleep(0.2)
        for _ in range(4 * self.workers):
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{self.base_url}/health", timeout=5)

    def stop(self) -> None:
        if self.process is None:
            return
        pgid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)
        # Whatever is left in the group (a stuck worker, or a leader that ignored SIGTERM).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def pids(self) -> list[int]:
        """The leader and its workers: every live process in the server's process group."""
        if self.process is None:
            return []
        return processes_in_group(self.process.pid)

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the workers of a multi-worker run, else the leader."""
        assert self.process is not None
        others = [pid for pid in self.pids() if pid != self.process.pid]
        if self.workers > 1:
            # uvicorn's supervisor also starts a multiprocessing resource tracker; the workers are
            # the processes that listen, which are the ones with the most CPU time after warm-up.
            return [pid for pid in others if "resource_tracker" not in _cmdline(pid)]
        return [self.process.pid]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces; fields after it are plain.
    return text[text.rindex(")") + 2 :].split()


def processes_in_group(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            # fields[0] is the state (field 3), fields[2] the process group (field 5).
            if fields is not None and fields[2] == str(pgid) and fields[0] != "Z":
                found.append(int(entry))
    return sorted(found)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (threads included)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLOCK_TICKS


def postgres_backend_pids(database: str) -> list[int]:
    """The PostgreSQL backends serving this database (`postgres: ... <dbname> ...`)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and f" {database} " in _cmdline(int(entry)):
            found.append(int(entry))
    return found


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, which is already counted in user
    return total - idle, total


@contextlib.contextmanager
def sqlite_database(keep: bool = False) -> Iterator[str]:
    if keep:
        yield f"sqlite:///{tempfile.mkdtemp(prefix='stadsnav-bench-')}/bench.db"
        return
    with tempfile.TemporaryDirectory(prefix="stadsnav-bench-") as directory:
        yield f"sqlite:///{directory}/bench.db"


@contextlib.contextmanager
def postgres_database(admin_url: str, keep: bool = False) -> Iterator[str]:
    """A database name of our own; the server creates it, and it is dropped afterwards
    (unless keep, for looking into it after the run)."""
    import psycopg

    name = f"stadsnav_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        taken = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if taken is not None:
            raise RuntimeError(f"database {name} already exists")
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def analyze(url: str) -> None:
    """Bring the planner statistics up to date, as autovacuum would soon after a bulk load."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("ANALYZE")
