"""The command line operators script against."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from stadsnav.cli import app, build_settings

runner = CliRunner()


@pytest.mark.parametrize("command", [[], ["serve"], ["get"], ["migrate"], ["simulate"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_flags_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STADSNAV_PORT", "9001")
    monkeypatch.setenv("STADSNAV_HOST", "0.0.0.0")
    settings = build_settings(port=9002, host=None)
    assert settings.port == 9002
    assert settings.host == "0.0.0.0"


def test_get_answers_in_process_and_migrate_creates_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    migrated = runner.invoke(app, ["migrate", "--database", url])
    assert migrated.exit_code == 0, migrated.output
    assert (tmp_path / "cli.db").exists()
    result = runner.invoke(app, ["get", "/ngsi-ld/v1/types", "--database", url])
    assert result.exit_code == 0, result.output
    assert '"typeList":[]' in result.output
    missing = runner.invoke(app, ["get", "/ngsi-ld/v1/entities/urn:x:1", "--database", url])
    assert missing.exit_code == 1
    assert "ResourceNotFound" in missing.output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_starts_the_platform_and_creates_the_database(tmp_path: Path, workers: int) -> None:
    port = _free_port()
    database = tmp_path / "var" / "served.db"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stadsnav",
            "serve",
            "--port",
            str(port),
            "--database",
            f"sqlite:///{database}",
            "--workers",
            str(workers),
        ],
        env={**os.environ, "STADSNAV_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        assert response.json()["status"] == "ok"
        created = httpx.post(
            f"http://127.0.0.1:{port}/ngsi-ld/v1/entities",
            json={"id": "urn:x:1", "type": "T", "p": 1},
        )
        assert created.status_code == 201
        assert database.exists()
    finally:
        process.terminate()
        process.wait(10)


def test_simulate_exports_a_fleet_the_registry_can_import(tmp_path: Path) -> None:
    out = tmp_path / "fleet.csv"
    result = runner.invoke(app, ["simulate", "--devices", "40", "--export-fleet", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("dev_eui,name,model,lon,lat,district,target_id,target_type")
    assert len(lines) == 41


def test_simulate_refuses_contradictory_targets() -> None:
    result = runner.invoke(
        app, ["simulate", "--url", "http://127.0.0.1:1", "--mqtt", "mqtt://127.0.0.1:1"]
    )
    assert result.exit_code != 0
    assert "not both" in result.output
