"""What every decoder shares: the reading it returns, the error it raises, a cursor over bytes.

A reading is named after the FIWARE Smart Data Models attribute where one exists
(``temperature``, ``relativeHumidity``, ``distance``, ``batteryLevel``, ``waterConsumption``,
``illuminanceLevel``, ...) and carries one UN/CEFACT Recommendation 20 common code. Each name
always has the same unit, whichever device reported it, so the mapping step never converts:

- ratios are numbers from 0 to 1 with ``P1``, as the platform writes ``fillingLevel``
  (relativeHumidity, batteryLevel, illuminanceLevel, flood);
- distances are in metres, pressures in hectopascals, volumes in cubic metres;
- a battery that reports volts gives ``batteryVoltage`` instead of ``batteryLevel``.

Alarms are booleans, states are strings, and a value whose unit the source does not give has
``unit=None``.
"""

from __future__ import annotations

import struct
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

# The Recommendation 20 common codes the decoders use (Annex II/III names).
UNITS: dict[str, str] = {
    "59": "part per million",
    "A97": "hectopascal",
    "C45": "nanometre",
    "C62": "one",
    "CEL": "degree Celsius",
    "D54": "watt per square metre",
    "DD": "degree [unit of angle]",
    "GQ": "microgram per cubic metre",
    "H50": "reciprocal cubic centimetre",
    "HUR": "hour",
    "KMT": "kilometre",
    "LUX": "lux",
    "M1": "milligram per litre",
    "MMT": "millimetre",
    "MTQ": "cubic metre",
    "MTR": "metre",
    "MTS": "metre per second",
    "P1": "percent",  # on the 0..1 ratios, as the platform writes fillingLevel
    "VLT": "volt",
    "WHR": "watt hour",
    "WTT": "watt",
}

Value = float | int | str | bool
ByteOrder = Literal["big", "little"]


@dataclass(frozen=True, slots=True)
class Reading:
    """One measured or reported value of a device, ready to become an NGSI-LD Property."""

    name: str
    value: Value
    unit: str | None = None


class DecodeError(ValueError):
    """A payload that does not decode; the message says why, for the device's error log."""


def require_fport(fport: int, allowed: Collection[int]) -> None:
    """Reject frames on a port the vendor document does not define for uplink data."""
    if fport not in allowed:
        raise DecodeError(f"unknown fPort {fport}")


def battery_percent(value: float) -> Reading:
    """A battery percentage as the platform's 0..1 ``batteryLevel``."""
    return Reading("batteryLevel", value / 100, "P1")


class ByteReader:
    """Reads a payload front to back; running past its end raises DecodeError."""

    def __init__(self, payload: bytes) -> None:
        self._payload = payload
        self._position = 0

    @property
    def remaining(self) -> int:
        return len(self._payload) - self._position

    def take(self, count: int) -> bytes:
        end = self._position + count
        if end > len(self._payload):
            raise DecodeError(
                f"payload too short: {len(self._payload)} bytes, expected at least {end}"
            )
        chunk = self._payload[self._position : end]
        self._position = end
        return chunk

    def uint(self, size: int, order: ByteOrder) -> int:
        return int.from_bytes(self.take(size), order)

    def sint(self, size: int, order: ByteOrder) -> int:
        return int.from_bytes(self.take(size), order, signed=True)

    def u8(self) -> int:
        return self.take(1)[0]

    def float32(self, order: ByteOrder) -> float:
        value: float = struct.unpack(">f" if order == "big" else "<f", self.take(4))[0]
        return value

    def end(self) -> None:
        """Trailing bytes mean the layout was misread, so they are an error, not ignored."""
        if self.remaining:
            length = len(self._payload)
            raise DecodeError(
                f"payload too long: {length} bytes, expected {length - self.remaining}"
            )
