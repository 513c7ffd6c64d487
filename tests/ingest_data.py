"""Network-server events for ingestion tests, built from the documented samples in tests/data."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
BIN_SENSOR = "milesight-em310-udl"
# Documented EM310-UDL frame: battery 92 %, distance 2116 mm, tilted.
BIN_FRAME = bytes.fromhex("01755C03824408040001")
BIN_DEPTH = 2.5


def _sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / "lorawan" / name).read_text())
    return loaded


def chirpstack_up(
    dev_eui: str,
    f_cnt: int,
    payload: bytes = BIN_FRAME,
    *,
    f_port: int = 85,
    time: str = "2026-11-23T08:00:00+00:00",
) -> dict[str, Any]:
    event = copy.deepcopy(_sample("chirpstack-v4-up.json"))
    event["deviceInfo"]["devEui"] = dev_eui
    event["fCnt"] = f_cnt
    event["fPort"] = f_port
    event["data"] = base64.b64encode(payload).decode()
    event["time"] = time
    return event


def tts_up(
    dev_eui: str,
    f_cnt: int,
    payload: bytes = BIN_FRAME,
    *,
    f_port: int = 85,
    time: str = "2026-11-23T08:00:00Z",
) -> dict[str, Any]:
    message = copy.deepcopy(_sample("tts-v3-uplink.json"))
    message["end_device_ids"]["dev_eui"] = dev_eui.upper()
    message["uplink_message"]["f_cnt"] = f_cnt
    message["uplink_message"]["f_port"] = f_port
    message["uplink_message"]["frm_payload"] = base64.b64encode(payload).decode()
    message["uplink_message"]["received_at"] = time
    message["received_at"] = time
    return message


def bin_sensor(dev_eui: str, container: str, **extra: Any) -> dict[str, Any]:
    return {
        "devEUI": dev_eui,
        "model": BIN_SENSOR,
        "owner": "Trafikkontoret",
        "state": "active",
        "target": {"id": container, "type": "WasteContainer"},
        "settings": {"binDepth": BIN_DEPTH},
        "location": [18.0686, 59.3293],
        **extra,
    }
