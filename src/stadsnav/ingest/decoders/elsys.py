"""The Elsys uplink frame: a run of ``type, data`` pairs, data big-endian.

Follows the Elsys generic payload format ("ELSYS simple payload decoder", ``vendor/elsys/
elsys.js`` in TheThingsNetwork/lorawan-devices, MIT), which every Elsys sensor uses; a model
sends the types its sensors have. Types that carry no value the platform uses (accelerometer,
GPS, Grid-EYE frames, sound, IR temperature, ...) are read past by their fixed length.
"""

from __future__ import annotations

from collections.abc import Callable

from stadsnav.ingest.decoders.base import ByteReader, DecodeError, Reading

_Read = Callable[[ByteReader], list[Reading]]


def _celsius(name: str) -> _Read:
    return lambda data: [Reading(name, data.sint(2, "big") / 10, "CEL")]


def _digital(name: str) -> _Read:
    return lambda data: [Reading(name, data.u8() != 0)]


def _count(name: str, size: int) -> _Read:
    return lambda data: [Reading(name, data.uint(size, "big"))]


def _volts(name: str) -> _Read:
    return lambda data: [Reading(name, data.uint(2, "big") / 1000, "VLT")]


def _skip(size: int) -> _Read:
    def read(data: ByteReader) -> list[Reading]:
        data.take(size)
        return []

    return read


_TYPES: dict[int, _Read] = {
    0x01: _celsius("temperature"),
    0x02: lambda data: [Reading("relativeHumidity", data.u8() / 100, "P1")],
    0x03: _skip(3),  # acceleration x, y, z
    0x04: lambda data: [Reading("illuminance", data.uint(2, "big"), "LUX")],
    0x05: _count("motionCount", 1),  # PIR detections since the last uplink
    0x06: lambda data: [Reading("co2", data.uint(2, "big"), "59")],
    0x07: _volts("batteryVoltage"),  # VDD, the supply (battery) voltage
    0x08: _volts("analogInput1"),
    0x09: _skip(6),  # GPS
    0x0A: _count("pulseCount1", 2),
    0x0B: _count("pulseCountAbsolute1", 4),
    0x0C: _celsius("externalTemperature1"),
    0x0D: _digital("digitalInput1"),
    0x0E: lambda data: [Reading("distance", data.uint(2, "big") / 1000, "MTR")],
    0x0F: _skip(1),  # accelerometer motion count
    0x10: _skip(4),  # IR internal and external temperature
    0x11: _skip(1),  # occupancy
    0x12: _skip(1),  # water leak
    0x13: _skip(65),  # Grid-EYE
    0x14: lambda data: [Reading("atmosphericPressure", data.uint(4, "big") / 1000, "A97")],
    0x15: _skip(2),  # sound peak and average
    0x16: _count("pulseCount2", 2),
    0x17: _count("pulseCountAbsolute2", 4),
    0x18: _volts("analogInput2"),
    0x19: _celsius("externalTemperature2"),
    0x1A: _digital("digitalInput2"),
    0x1B: _skip(4),  # load cell analog input, µV
    0x1C: _skip(2),  # TVOC
    0x3D: _skip(4),  # debug
}
# Sent once after start: the sensor's settings, length-prefixed.
_SETTINGS = 0x3E


def decode(payload: bytes) -> list[Reading]:
    reader = ByteReader(payload)
    readings: list[Reading] = []
    while reader.remaining:
        kind = reader.u8()
        if kind == _SETTINGS:
            reader.take(reader.u8())
        elif kind in _TYPES:
            readings += _TYPES[kind](reader)
        else:
            raise DecodeError(f"type 0x{kind:02x} unknown")
    return readings
