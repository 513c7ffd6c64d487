"""A plain-JSON environment sensor: a device (or gateway script) that publishes its own JSON.

Follows stadsnav's declarative JSON device format (docs/ingestion.md, "Plain JSON devices"):
one JSON object per message, each known member one measurement, in the unit the table below
names; `seq` (a counter, for duplicate detection) and `time` (ISO 8601) are read by the
transport, not here. Other members are ignored, so a device may send more than it is known for;
a message with no known measurement at all is refused.

    {"temperature": 21.5, "humidity": 40, "co2": 650, "pm25": 8.1, "pm10": 12.4,
     "battery": 87, "seq": 17, "time": "2026-11-23T08:00:00Z"}
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import orjson

from stadsnav.ingest.decoders.base import DecodeError, Reading


@dataclass(frozen=True, slots=True)
class Member:
    reading: str
    unit: str
    scale: float = 1.0  # member value x scale = reading value


MEMBERS: dict[str, Member] = {
    "temperature": Member("temperature", "CEL"),
    "humidity": Member("relativeHumidity", "P1", 0.01),  # percent
    "co2": Member("co2", "59"),  # ppm
    "pm25": Member("pm25", "GQ"),  # µg/m³
    "pm10": Member("pm10", "GQ"),
    "battery": Member("batteryLevel", "P1", 0.01),  # percent
}


def decode(fport: int, payload: bytes) -> list[Reading]:
    del fport  # a JSON device has no LoRaWAN port
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise DecodeError(f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise DecodeError("a JSON device sends one object per message")
    readings: list[Reading] = []
    for name, member in MEMBERS.items():
        if name not in document:
            continue
        value = document[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise DecodeError(f"{name} must be a number, got {value!r:.40}")
        readings.append(Reading(member.reading, round(value * member.scale, 6), member.unit))
    if not readings:
        raise DecodeError(f"no known measurement; expected some of {', '.join(MEMBERS)}")
    return readings
