"""Mosquitto brokers of a test's own: found, configured, started, and waited for."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

DEPLOY_CONF = Path(__file__).parent.parent / "deploy" / "mosquitto" / "stadsnav.conf"


def binary(name: str = "mosquitto") -> str:
    """A Mosquitto program; under CI=true a missing one fails the test instead of skipping it."""
    # Debian installs the broker in sbin, which an ordinary user's PATH leaves out.
    found = shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"The {name} binary is required under CI")
        pytest.skip(f"{name} is not installed")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def deploy_conf(port: int) -> str:
    """The project's deploy configuration, listening on loopback at `port`."""
    return DEPLOY_CONF.read_text().replace("listener 1883", f"listener {port} 127.0.0.1")


def start(folder: Path, conf: Callable[[int], str]) -> tuple[int, subprocess.Popen[bytes]]:
    """Start Mosquitto with the configuration `conf` gives for a free port; return once it
    accepts connections (AssertionError with its own words if it exits instead)."""
    port = free_port()
    path = folder / "mosquitto.conf"
    path.write_text(conf(port))
    process = subprocess.Popen(
        [binary(), "-c", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 10
    while not reachable("127.0.0.1", port):
        if process.poll() is not None:
            assert process.stderr is not None
            raise AssertionError(process.stderr.read().decode())
        assert time.monotonic() < deadline, "mosquitto did not start"
        time.sleep(0.02)
    return port, process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(10)
