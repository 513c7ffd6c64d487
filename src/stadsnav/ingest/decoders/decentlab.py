"""The Decentlab uplink frame, protocol version 2, shared by every Decentlab sensor.

Layout (big-endian): version (1 byte, 2), device id (2 bytes), flags (2 bytes), then for each
flag bit set, from bit 0 up, that sensor's fixed number of 16-bit words. Each model's document
(the ``dl-*-codec.yaml`` and ``dl-*.js`` files of TheThingsNetwork/lorawan-devices
``vendor/decentlab``, MIT) lists its sensors and the formula that turns words into values.
Uplinks come on fPort 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stadsnav.ingest.decoders.base import ByteReader, DecodeError, Reading, require_fport

_PROTOCOL_VERSION = 2
# Signed quantities are sent with this offset so that every word is unsigned.
OFFSET = 0x8000


@dataclass(frozen=True, slots=True)
class Sensor:
    """One flag bit: how many words it sends and the readings they give."""

    words: int
    readings: Callable[[Sequence[int]], list[Reading]]


def battery(words: Sequence[int]) -> list[Reading]:
    """Every model's last sensor: the battery voltage in millivolts."""
    return [Reading("batteryVoltage", words[0] / 1000, "VLT")]


BATTERY = Sensor(1, battery)


def decode(fport: int, payload: bytes, sensors: Sequence[Sensor]) -> list[Reading]:
    require_fport(fport, {1})
    reader = ByteReader(payload)
    version = reader.u8()
    if version != _PROTOCOL_VERSION:
        raise DecodeError(f"protocol version {version} unknown, expected {_PROTOCOL_VERSION}")
    reader.take(2)  # device id: the network server already identifies the device
    flags = reader.uint(2, "big")
    if flags >> len(sensors):
        raise DecodeError(f"flags 0x{flags:04x} name sensors this model does not have")
    readings: list[Reading] = []
    for bit, sensor in enumerate(sensors):
        if flags & (1 << bit):
            words = [reader.uint(2, "big") for _ in range(sensor.words)]
            readings += sensor.readings(words)
    reader.end()
    return readings
