"""VEGA VEGAPULS Air 41, autonomous radar level sensor (water level, tanks, bins).

Follows the LoRaWAN packet descriptions of the VEGAPULS Air 41 operating instructions, as
recorded in the diwise/iot-agent tests (``internal/pkg/application/decoders/vegapuls/
decoders.vegapuls_test.go``, AGPL-3.0, facts only; the packet 8 example is the one from the
VEGA document). Every packet starts with its identifier; values are big-endian.

Measurement packets 2-5 (fixed layout, temperature always in °C):
    NAMUR state, distance (float32) + unit, remaining battery %, temperature (int16, 0.1),
    then GNSS position (3, 5), detail state (4, 5) and inclination.
Measurement packets 8-15 (identifier - 8 is a bit set: 1 GNSS, 2 NAMUR and detail state,
4 percentage and scaled values):
    [NAMUR state], distance + unit, [percent, linearised percent (int16, 0.01), scaled value
    (float32) + unit], remaining battery %, [GNSS position], [detail state], temperature
    (int16, 0.1) + unit, inclination.
Information packets (device, schedule, names) carry no measurement and are not decoded.
"""

from __future__ import annotations

import math

from stadsnav.ingest.decoders.base import (
    ByteReader,
    DecodeError,
    Reading,
    battery_percent,
    require_fport,
)

# Distance unit codes (HART unit codes) and their factor to metres.
_METRES_PER_UNIT = {44: 0.3048, 45: 1.0, 47: 0.0254, 49: 0.001}
_CELSIUS, _FAHRENHEIT = 32, 33
# An int16 of 0x8000 in a temperature field means "no value".
_NO_TEMPERATURE = -0x8000

_GNSS = 1
_STATE = 2
_PERCENT = 4


def decode(fport: int, payload: bytes) -> list[Reading]:
    require_fport(fport, {1})
    reader = ByteReader(payload)
    packet = reader.u8()
    if 2 <= packet <= 5:
        readings = _fixed_packet(reader, gnss=packet in (3, 5), detail=packet in (4, 5))
    elif 8 <= packet <= 15:
        readings = _variable_packet(reader, packet - 8)
    else:
        raise DecodeError(f"unknown packet identifier {packet}")
    reader.end()
    return readings


def _fixed_packet(reader: ByteReader, *, gnss: bool, detail: bool) -> list[Reading]:
    reader.u8()  # NAMUR state
    readings = _distance(reader)
    readings.append(battery_percent(reader.u8()))
    temperature = reader.sint(2, "big")
    if gnss:
        reader.take(8)
    if detail:
        reader.take(4)
    reader.u8()  # inclination
    if temperature != _NO_TEMPERATURE:
        readings.append(Reading("temperature", temperature / 10, "CEL"))
    return readings


def _variable_packet(reader: ByteReader, fields: int) -> list[Reading]:
    if fields & _STATE:
        reader.u8()  # NAMUR state
    readings = _distance(reader)
    if fields & _PERCENT:
        # The percentages and the scaled value depend on the sensor's configured range, which
        # only the device's owner knows; the mapping step derives levels from the distance.
        reader.take(2 + 2 + 4 + 1)
    readings.append(battery_percent(reader.u8()))
    if fields & _GNSS:
        reader.take(8)
    if fields & _STATE:
        reader.take(4)  # detail state
    readings += _temperature(reader)
    reader.u8()  # inclination
    return readings


def _distance(reader: ByteReader) -> list[Reading]:
    value = reader.float32("big")
    unit = reader.u8()
    if unit not in _METRES_PER_UNIT:
        raise DecodeError(f"distance unit code {unit} unknown")
    if not math.isfinite(value):
        return []  # NaN: no echo this time
    return [Reading("distance", value * _METRES_PER_UNIT[unit], "MTR")]


def _temperature(reader: ByteReader) -> list[Reading]:
    raw = reader.sint(2, "big")
    unit = reader.u8()
    if unit not in (_CELSIUS, _FAHRENHEIT):
        raise DecodeError(f"temperature unit code {unit} unknown")
    if raw == _NO_TEMPERATURE:
        return []
    value = raw / 10
    if unit == _FAHRENHEIT:
        value = (value - 32) * 5 / 9
    return [Reading("temperature", value, "CEL")]
