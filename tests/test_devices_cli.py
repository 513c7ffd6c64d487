"""`stadsnav devices …` against a SQLite file: the same registry as the API, in process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stadsnav.cli import app

runner = CliRunner()
AIR = [
    "--model",
    "decentlab-dl-pm",
    "--owner",
    "miljoforvaltningen",
    "--target-id",
    "urn:ngsi-ld:AirQualityObserved:slussen",
    "--target-type",
    "AirQualityObserved",
]


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/devices.db"


def devices(database: str, *args: str) -> Any:
    return runner.invoke(app, ["devices", *args, "--database", database])


def as_json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "command",
    [[], ["register"], ["list"], ["show"], ["transition"], ["history"], ["check"], ["import"]],
)
def test_every_devices_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, ["devices", *command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_register_show_transition_and_history(database: str) -> None:
    registered = as_json(
        devices(
            database,
            "register",
            "--dev-eui",
            "70B3D57BA0000001",
            *AIR,
            "--lon",
            "18.0717",
            "--lat",
            "59.3195",
            "--state",
            "installed",
            "--co-user",
            "trafikkontoret",
        )
    )
    assert registered["devEUI"] == "70b3d57ba0000001"
    assert registered["controlledProperty"] == ["airPollution"]
    assert registered["coUsers"] == ["trafikkontoret"]

    moved = as_json(
        devices(database, "transition", "70b3d57ba0000001", "active", "--reason", "commissioned")
    )
    assert moved["state"] == "active"
    refused = devices(database, "transition", "70b3d57ba0000001", "planned")
    assert refused.exit_code == 1
    assert "cannot become planned" in refused.output

    shown = as_json(devices(database, "show", "70b3d57ba0000001"))
    assert shown["state"] == "active"
    trail = as_json(devices(database, "history", "70b3d57ba0000001"))
    assert [(e["kind"], e["to"]) for e in trail] == [
        ("registered", "installed"),
        ("transition", "active"),
    ]
    assert trail[1]["reason"] == "commissioned"

    listed = devices(database, "list", "--state", "active")
    assert listed.exit_code == 0, listed.output
    assert "70b3d57ba0000001" in listed.output
    assert as_json(devices(database, "list", "--owner", "trafikkontoret", "--json")) == []


def test_a_refused_registration_says_why_and_exits_with_1(database: str) -> None:
    result = devices(
        database,
        "register",
        "--dev-eui",
        "a84041000181c4d1",
        "--model",
        "milesight-em310-udl",
        "--owner",
        "trafikkontoret",
        "--lon",
        "18.07",
        "--lat",
        "59.33",
        "--target-id",
        "urn:ngsi-ld:WasteContainer:1",
        "--target-type",
        "WasteContainer",
    )
    assert result.exit_code == 1
    assert "needs the setting binDepth" in result.output


def test_check_finds_the_device_already_measuring_there(database: str) -> None:
    as_json(
        devices(
            database,
            "register",
            "--dev-eui",
            "70b3d57ba0000001",
            *AIR,
            "--lon",
            "18.0717",
            "--lat",
            "59.3195",
            "--state",
            "active",
        )
    )
    near = ["--lon", "18.0717", "--lat", "59.3198"]  # about 33 m north
    found = as_json(devices(database, "check", "--property", "airPollution", *near, "--json"))
    assert [d["devEUI"] for d in found] == ["70b3d57ba0000001"]
    assert found[0]["distance"] == pytest.approx(33.4, abs=1)
    table = devices(database, "check", "--model", "decentlab-dl-pm", *near)
    assert "70b3d57ba0000001" in table.output
    far = devices(database, "check", "--property", "airPollution", "--lon", "18.1", "--lat", "59.3")
    assert "No device on site measures airPollution" in far.output


def test_import_registers_a_file_and_reports_the_rejected_rows(
    database: str, tmp_path: Path
) -> None:
    path = tmp_path / "fleet.csv"
    path.write_text(
        "dev_eui,model,lon,lat,target_id,target_type,bin_depth\n"
        "24e1240000000001,milesight-em310-udl,18.07,59.33,urn:ngsi-ld:WasteContainer:1,"
        "WasteContainer,1.2\n"
        "24e1240000000002,milesight-em310-udl,18.07,59.33,urn:ngsi-ld:WasteContainer:2,"
        "WasteContainer,\n"
    )
    first = devices(database, "import", str(path), "--owner", "trafikkontoret")
    assert first.exit_code == 1  # a row was rejected
    assert "2 rows: 1 registered, 0 already registered, 1 rejected" in first.output
    assert "needs the setting" in first.output
    again = devices(database, "import", str(path), "--owner", "trafikkontoret", "--json")
    assert again.exit_code == 1
    report = json.loads(again.stdout)
    assert [r["outcome"] for r in report["results"]] == ["already-registered", "rejected"]
    missing = devices(database, "import", str(tmp_path / "nowhere.csv"))
    assert missing.exit_code == 1


def test_profiles_are_shown() -> None:
    table = runner.invoke(app, ["devices", "profiles"])
    assert table.exit_code == 0
    assert "milesight-em310-udl" in table.output
    one = json.loads(runner.invoke(app, ["devices", "profiles", "vega-vegapuls-air-41"]).stdout)
    assert one["requiredSettings"]["WaterObserved"] == {
        "sensorHeight": "metres from a level sensor down to the water level's zero"
    }
    assert runner.invoke(app, ["devices", "profiles", "toaster-9000"]).exit_code == 1


def test_rotate_secret_prints_a_secret_only_its_stored_hash_verifies(database: str) -> None:
    from stadsnav.devices.credentials import verify_secret
    from stadsnav.settings import Settings
    from stadsnav.store.opening import open_store

    unknown = devices(database, "rotate-secret", "70b3d57ba0000009")
    assert unknown.exit_code == 1
    registered = devices(
        database,
        "register",
        "--dev-eui",
        "70B3D57BA0000009",
        *AIR,
        "--lon",
        "18.07",
        "--lat",
        "59.31",
    )
    assert registered.exit_code == 0, registered.output
    rotated = devices(database, "rotate-secret", "70b3d57ba0000009")
    assert rotated.exit_code == 0, rotated.output
    secret = rotated.stdout.strip()

    async def stored_hash() -> str | None:
        store = open_store(Settings(database=database))
        await store.open()
        try:
            (record,) = await store.devices("", ["70b3d57ba0000009"])
            return record.secret_hash
        finally:
            await store.close()

    hashed = asyncio.run(stored_hash())
    assert hashed is not None
    assert secret not in hashed
    assert verify_secret(secret, hashed)
    assert not verify_secret(secret + "x", hashed)
