"""Sensative Strips (Comfort, Guard, Drip, Presence): temperature, door, flood, presence.

Follows Sensative's own translator (Sensative/strips-lora-translator-open-source
``raw-translate.js`` and ``strips-translate.js``, MIT), also published as
TheThingsNetwork/lorawan-devices ``vendor/sensative/strips.js``: a 2-byte history sequence
number, then reports, each a type byte (bit 7 is the sensor's history flag, which does not
change the data) and big-endian data.

fPort 1 carries reports. On fPort 2 Sensative documents history records, which the platform
does not request; the only fPort 2 frame in the sources is the periodic check-in of the
lifebuoy presence sensors in Sundsvall (diwise/iot-agent tests, facts only): the sequence
number and one build-id report. That frame is decoded; anything else on fPort 2 is rejected.
"""

from __future__ import annotations

from collections.abc import Callable

from stadsnav.ingest.decoders.base import (
    ByteReader,
    DecodeError,
    Reading,
    battery_percent,
    require_fport,
)

_Read = Callable[[ByteReader], list[Reading]]
_HISTORY_FLAG = 0x80
_BUILD_ID = 110
_DISINFECT_STATES = ("dirty", "occupied", "cleaning", "clean")


def _temperature(name: str) -> _Read:
    return lambda data: [Reading(name, data.sint(2, "big") / 10, "CEL")]


def _flag(name: str) -> _Read:
    return lambda data: [Reading(name, data.u8() != 0)]


def _count(name: str) -> _Read:
    return lambda data: [Reading(name, data.uint(2, "big"))]


def _high_low_alarm(name: str) -> _Read:
    def read(data: ByteReader) -> list[Reading]:
        bits = data.u8()
        return [
            Reading(f"{name}HighAlarm", bool(bits & 1)),
            Reading(f"{name}LowAlarm", bool(bits & 2)),
        ]

    return read


def _humidity(data: ByteReader) -> Reading:
    return Reading("relativeHumidity", data.u8() / 200, "P1")  # half percent steps


def _illuminance(data: ByteReader) -> list[Reading]:
    # Reports 7 and 8 are the same light sensor, sent when its first or second pair of
    # thresholds is crossed.
    return [Reading("illuminance", data.uint(2, "big"), "LUX")]


def _disinfect(data: ByteReader) -> list[Reading]:
    state = data.u8()
    if state >= len(_DISINFECT_STATES):
        raise DecodeError(f"disinfect state {state} unknown")
    return [Reading("disinfectState", _DISINFECT_STATES[state])]


def _build(data: ByteReader) -> list[Reading]:
    # Firmware build word, then four debug counters (start-ups, watchdog and transmit-failure
    # reboots, bad conditions) that are for Sensative's support, not for the platform.
    build = data.uint(4, "big")
    data.take(4)
    return [Reading("firmwareVersion", f"{build:08x}")]


def _raw_capacitance(data: ByteReader) -> list[Reading]:
    # Uncalibrated capacitance behind the flood reports; the percentage is what to use.
    data.take(2)
    return []


_REPORTS: dict[int, _Read] = {
    0: lambda data: [],  # empty frame
    1: lambda data: [battery_percent(data.u8())],
    2: _temperature("temperature"),
    3: _high_low_alarm("temperature"),
    4: _temperature("averageTemperature"),
    5: _high_low_alarm("averageTemperature"),
    6: lambda data: [_humidity(data)],
    7: _illuminance,
    8: _illuminance,
    9: _flag("doorOpen"),  # Sensative's translator: true when the door is open
    10: _flag("doorAlarm"),
    11: _flag("tamper"),
    12: _flag("tamperAlarm"),
    13: lambda data: [Reading("flood", data.u8() / 100, "P1")],  # relative wetness
    14: _flag("floodAlarm"),
    15: _flag("foilAlarm"),
    16: _flag("userSwitchAlarm"),
    17: _count("doorCount"),
    18: _flag("presence"),
    19: _count("irProximity"),
    20: _count("irCloseProximity"),
    21: _flag("closeProximityAlarm"),
    22: _disinfect,
    80: lambda data: [_humidity(data), *_temperature("temperature")(data)],
    81: lambda data: [_humidity(data), *_temperature("averageTemperature")(data)],
    82: lambda data: [*_flag("doorOpen")(data), *_temperature("temperature")(data)],
    _BUILD_ID: _build,
    112: _raw_capacitance,
    113: _raw_capacitance,
    114: _raw_capacitance,
}


def decode(fport: int, payload: bytes) -> list[Reading]:
    require_fport(fport, {1, 2})
    reader = ByteReader(payload)
    reader.take(2)  # history sequence number
    if fport == 2:
        return _check_in(reader)
    readings: list[Reading] = []
    while reader.remaining:
        kind = reader.u8() & ~_HISTORY_FLAG
        if kind not in _REPORTS:
            raise DecodeError(f"report type {kind} unknown")
        readings += _REPORTS[kind](reader)
    return readings


def _check_in(reader: ByteReader) -> list[Reading]:
    if reader.remaining == 0 or reader.u8() & ~_HISTORY_FLAG != _BUILD_ID:
        raise DecodeError("fPort 2 history records are not supported, only the check-in")
    readings = _build(reader)
    reader.end()
    return readings
