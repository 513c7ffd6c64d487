"""Payload encoders: the bytes a device of each model sends for given physical values.

Each encoder is the inverse of the model's decoder in ``stadsnav.ingest.decoders``: it takes
readings under the decoder's names and units (``{"distance": 1.234, "batteryLevel": 0.87}``)
and lays them out as the vendor's frame, so that decoding gives the same readings back,
rounded to what the frame can carry (millimetres, tenths of a degree, whole percent). Values
the frame cannot hold raise EncodeError rather than wrapping around.

Each model is encoded in the frame its devices send for periodic measurements:

- milesight-em310-udl, -em400-tld: the periodic report channels (the em400's threshold-alarm
  channels when an alarm reading is given);
- decentlab-dl-pm, -atm41, -mbx, -ntu: protocol 2 frames, with every sensor whose readings are
  all given;
- elsys-ers-co2: the generic Elsys types of its sensors;
- vega-vegapuls-air-41: measurement packet 8, the default;
- nas-ul20xx: the status (fPort 23, firmware 1.1.4 and later) and usage (fPort 26) frames, for
  the luminaire as a whole;
- axioma-qalcosonic-w1: the enhanced frame without water temperature. Its log point is the
  start of the current hour with no hourly history since, which the decoder does not read.

Not encoded: sensative-strips, elsys-elt-2-hp, niab-fls and unknown-airquality-pm-no2 (not in
the simulated fleet; the last has an NO2 word of unknown scale, so NO2 cannot be sent faithfully).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from stadsnav.ingest.decoders.base import ByteOrder, Value

Values = Mapping[str, Value]


class EncodeError(ValueError):
    """Values a model's frame cannot carry: missing, of the wrong kind, or out of range."""


class Frame(NamedTuple):
    fport: int
    payload: bytes


# values, the uplink's time (Unix seconds, for frames that carry the device's clock), and the
# device's serial number (for frames that carry one).
Encoder = Callable[[Values, int, int], Frame]


def encode(model: str, values: Values, *, at: int, serial: int = 0) -> Frame:
    """The fPort and payload a device of ``model`` sends for these readings."""
    encoder = MODELS.get(model)
    if encoder is None:
        raise EncodeError(f"no encoder for device model {model!r}")
    return encoder(values, at, serial)


# -- values ------------------------------------------------------------------------------------


def _number(values: Values, name: str) -> float:
    if name not in values:
        raise EncodeError(f"{name} missing")
    value = values[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EncodeError(f"{name} must be a finite number, got {value!r}")
    return value


def _raw(values: Values, name: str, scale: float, low: int, high: int, offset: int = 0) -> int:
    """The integer a frame carries for a reading: value × scale, rounded, plus offset."""
    raw = round(_number(values, name) * scale) + offset
    if not low <= raw <= high:
        raise EncodeError(f"{name} {values[name]!r} is outside what the frame can carry")
    return raw


def _flag(values: Values, name: str) -> bool:
    if name not in values:
        raise EncodeError(f"{name} missing")
    value = values[name]
    if not isinstance(value, bool):
        raise EncodeError(f"{name} must be true or false, got {value!r}")
    return value


def _only(values: Values, known: set[str] | frozenset[str]) -> None:
    unknown = set(values) - known
    if unknown:
        raise EncodeError(f"readings this frame does not carry: {', '.join(sorted(unknown))}")


U8, U16, U32 = 0xFF, 0xFFFF, 0xFFFFFFFF
S8, S16 = (-0x80, 0x7F), (-0x8000, 0x7FFF)


def _percent(values: Values, name: str) -> int:
    """A 0..1 ratio as the whole percent most devices send."""
    return _raw(values, name, 100, 0, 100)


# -- type/channel frames (Milesight, Elsys) ------------------------------------------------------


class _Field(NamedTuple):
    header: bytes  # Milesight channel id and type, or Elsys data type
    names: tuple[str, ...]
    pack: Callable[[Values], bytes]


def _fields(fields: Sequence[_Field], values: Values) -> bytes:
    """Each given reading in the first field that carries it; a field goes in once all its
    readings are given, so listing the alarm variants first makes them win."""
    payload = bytearray()
    used: set[str] = set()
    for field in fields:
        if all(name in values for name in field.names) and used.isdisjoint(field.names):
            payload += field.header + field.pack(values)
            used.update(field.names)
    _only(values, used)
    if not payload:
        raise EncodeError("no readings to send")
    return bytes(payload)


def _u(
    size: int, name: str, scale: float, order: ByteOrder = "little"
) -> Callable[[Values], bytes]:
    def pack(values: Values) -> bytes:
        return _raw(values, name, scale, 0, (1 << (8 * size)) - 1).to_bytes(size, order)

    return pack


def _s16(name: str, scale: float, order: ByteOrder) -> Callable[[Values], bytes]:
    def pack(values: Values) -> bytes:
        return _raw(values, name, scale, *S16).to_bytes(2, order, signed=True)

    return pack


def _milesight_position(values: Values) -> bytes:
    return bytes([_flag(values, "tilted")])


def _alarm(name: str, measure: Callable[[Values], bytes]) -> Callable[[Values], bytes]:
    return lambda values: measure(values) + bytes([_flag(values, name)])


_EM310_UDL = (
    _Field(
        b"\x01\x75", ("batteryLevel",), lambda values: bytes([_percent(values, "batteryLevel")])
    ),
    _Field(b"\x03\x82", ("distance",), _u(2, "distance", 1000)),
    _Field(b"\x04\x00", ("tilted",), _milesight_position),
)
_EM400_TEMPERATURE = _s16("temperature", 10, "little")
_EM400_DISTANCE = _u(2, "distance", 1000)
_EM400_TLD = (
    _EM310_UDL[0],
    _Field(
        b"\x83\x67",
        ("temperature", "temperatureAlarm"),
        _alarm("temperatureAlarm", _EM400_TEMPERATURE),
    ),
    _Field(b"\x03\x67", ("temperature",), _EM400_TEMPERATURE),
    _Field(b"\x84\x82", ("distance", "distanceAlarm"), _alarm("distanceAlarm", _EM400_DISTANCE)),
    _Field(b"\x04\x82", ("distance",), _EM400_DISTANCE),
    _Field(b"\x05\x00", ("tilted",), _milesight_position),
)
_MILESIGHT_FPORT = 85


def _milesight(fields: Sequence[_Field]) -> Encoder:
    return lambda values, at, serial: Frame(_MILESIGHT_FPORT, _fields(fields, values))


_ERS_CO2 = (
    _Field(b"\x01", ("temperature",), _s16("temperature", 10, "big")),
    _Field(b"\x02", ("relativeHumidity",), lambda v: bytes([_percent(v, "relativeHumidity")])),
    _Field(b"\x04", ("illuminance",), _u(2, "illuminance", 1, "big")),
    _Field(b"\x05", ("motionCount",), _u(1, "motionCount", 1, "big")),
    _Field(b"\x06", ("co2",), _u(2, "co2", 1, "big")),
    _Field(b"\x07", ("batteryVoltage",), _u(2, "batteryVoltage", 1000, "big")),
)
# Elsys sensors send on a configurable port; 5 is the factory setting.
_ELSYS_FPORT = 5


def _elsys(values: Values, at: int, serial: int) -> Frame:
    return Frame(_ELSYS_FPORT, _fields(_ERS_CO2, values))


# -- Decentlab ---------------------------------------------------------------------------------

_DECENTLAB_VERSION = 2
_DECENTLAB_OFFSET = 0x8000


class _Sensor(NamedTuple):
    """One flag bit of a Decentlab frame: its readings and the words that carry them."""

    names: tuple[str, ...]
    words: Callable[[Values], list[int]]


def _words(*specs: tuple[str, float, int]) -> Callable[[Values], list[int]]:
    """Words of value × scale + offset, one per (name, scale, offset)."""
    return lambda values: [_raw(values, n, s, 0, U16, o) for n, s, o in specs]


_BATTERY = _Sensor(("batteryVoltage",), _words(("batteryVoltage", 1000, 0)))


def _decentlab(sensors: Sequence[_Sensor]) -> Encoder:
    known = frozenset(name for sensor in sensors for name in sensor.names)

    def encode(values: Values, at: int, serial: int) -> Frame:
        _only(values, known)
        flags = 0
        words: list[int] = []
        for bit, sensor in enumerate(sensors):
            given = [name in values for name in sensor.names]
            if all(given):
                flags |= 1 << bit
                words += sensor.words(values)
            elif any(given):
                missing = [n for n, g in zip(sensor.names, given, strict=True) if not g]
                raise EncodeError(f"sensor {bit} needs {', '.join(missing)} too")
        if not flags:
            raise EncodeError("no readings to send")
        header = struct.pack(">BHH", _DECENTLAB_VERSION, serial & U16, flags)
        return Frame(1, header + struct.pack(f">{len(words)}H", *words))

    return encode


def _sht_climate(values: Values) -> list[int]:
    """Temperature and humidity as the Sensirion SHT sensor's raw words."""
    temperature = (_number(values, "temperature") + 46.85) * 65536 / 175.72
    humidity = (_number(values, "relativeHumidity") * 100 + 6) * 65536 / 125
    words = [round(temperature), round(humidity)]
    if not all(0 <= word <= U16 for word in words):
        raise EncodeError("temperature or relativeHumidity outside the SHT sensor's range")
    return words


_PM_MASS = ("pm1", "pm25", "pm4", "pm10")
_PM_NUMBER = tuple(f"{size}NumberConcentration" for size in ("pm05", "pm1", "pm25", "pm4", "pm10"))
_DL_PM = (
    _BATTERY,
    _Sensor(
        (*_PM_MASS, "typicalParticleSize", *_PM_NUMBER),
        _words(
            *((name, 10, 0) for name in _PM_MASS),
            ("typicalParticleSize", 1, 0),
            *((name, 10, 0) for name in _PM_NUMBER),
        ),
    ),
    _Sensor(("temperature", "relativeHumidity"), _sht_climate),
    # Pressure in units of 2 Pa: hPa × 50.
    _Sensor(("atmosphericPressure",), _words(("atmosphericPressure", 50, 0))),
)
# The ATMOS 41's words in order, each value × scale + 0x8000.
_WEATHER = (
    ("solarRadiation", 1),
    ("precipitation", 1000),
    ("lightningStrikeCount", 1),
    ("lightningAverageDistance", 1),
    ("windSpeed", 100),
    ("windDirection", 10),
    ("gustSpeed", 100),
    ("temperature", 10),
    ("vaporPressure", 10),
    ("atmosphericPressure", 10),
    ("relativeHumidity", 1000),
    ("internalTemperature", 10),
    ("xOrientationAngle", 10),
    ("yOrientationAngle", 10),
    ("compassHeading", 1),
    ("northWindSpeed", 100),
    ("eastWindSpeed", 100),
)
_DL_ATM41 = (
    _Sensor(
        tuple(name for name, _ in _WEATHER),
        _words(*((name, scale, _DECENTLAB_OFFSET) for name, scale in _WEATHER)),
    ),
    _BATTERY,
)
_DL_MBX = (
    _Sensor(
        ("distance", "numberOfValidSamples"),
        _words(("distance", 1000, 0), ("numberOfValidSamples", 1, 0)),
    ),
    _BATTERY,
)
_DL_NTU = (
    _Sensor(
        (
            "sensorStatus",
            "temperature",
            "turbidity",
            "turbidityFnu",
            "turbidityMassConcentration",
        ),
        _words(
            ("sensorStatus", 1, 0),
            ("temperature", 100, _DECENTLAB_OFFSET),
            ("turbidity", 10, 0),
            ("turbidityFnu", 10, 0),
            ("turbidityMassConcentration", 10, 0),
        ),
    ),
    _BATTERY,
)


# -- VEGA --------------------------------------------------------------------------------------

_VEGA_PACKET = 8
_VEGA_METRES, _VEGA_CELSIUS = 45, 32
_VEGA_NO_TEMPERATURE = -0x8000


def _vega(values: Values, at: int, serial: int) -> Frame:
    """Packet 8: distance (float32, metres), battery %, temperature (0.1 °C), inclination.

    Without a distance the packet carries NaN, the sensor's "no echo"; without a temperature
    the int16's "no value"."""
    _only(values, {"distance", "batteryLevel", "temperature"})
    distance = _number(values, "distance") if "distance" in values else math.nan
    try:
        distance_bytes = struct.pack(">f", distance)
    except OverflowError:
        raise EncodeError(f"distance {distance!r} is outside what the frame can carry") from None
    temperature = (
        _raw(values, "temperature", 10, S16[0] + 1, S16[1])
        if "temperature" in values
        else _VEGA_NO_TEMPERATURE
    )
    payload = (
        bytes([_VEGA_PACKET])
        + distance_bytes
        + bytes([_VEGA_METRES, _percent(values, "batteryLevel")])
        + struct.pack(">hBB", temperature, _VEGA_CELSIUS, 0)  # mounted level: no inclination
    )
    return Frame(1, payload)


# -- NAS ---------------------------------------------------------------------------------------

_NAS_STATUS, _NAS_USAGE = 23, 26
_NAS_STATUS_HEADER = 0x01
_NAS_RELAY_CLOSED = 0x80
_NAS_DALI_CONNECTION_ERROR, _NAS_METERING_COM_ERROR = 0x02, 0x20
_NAS_ALERTS = (
    ("voltageAlertIn24h", 0x10),
    ("lampErrorAlertIn24h", 0x20),
    ("powerAlertIn24h", 0x40),
    ("powerFactorAlertIn24h", 0x80),
)
_NAS_LIGHT_SENSOR = 0x02
_NAS_BROADCAST, _NAS_CONTROLLER = 0xFE, 0xFF
_NAS_NOT_AVAILABLE = 0xFF
# Values the decoder skips, taken from the data sheet's status example: the dimming reason
# byte, and the last downlink's RSSI (-50 dBm) and SNR (9 dB).
_NAS_REASON = 0x50
_NAS_DOWNLINK_QUALITY = b"\x32\x09"
_NAS_DALI_STATES = {"ok": 0x00, "brokenLantern": 0x01, "defectiveLamp": 0x02}
_NAS_LAMP_ON = 0x04
_NAS_STATUS_NAMES = frozenset(
    {
        "daliConnectionError",
        "meteringComError",
        "mcuTemperature",
        "illuminance",
        "illuminanceLevel",
        "status",
        "powerState",
        *(name for name, _ in _NAS_ALERTS),
    }
)
# Usage fields in bit order: name, bytes, scale (times are counted in seconds).
_NAS_METER = (
    ("activeEnergyImport", 4, 1),
    ("powerConsumption", 2, 1),
    ("loadSideEnergy", 4, 1),
    ("loadSidePower", 2, 1),
    ("powerFactor", 1, 100),
    ("voltage", 1, 1),
    ("driverOperatingTime", 4, 3600),
    ("lampOnTime", 4, 3600),
)


def _nas(values: Values, at: int, serial: int) -> Frame:
    """A status frame for status readings, a usage frame for meter readings."""
    if any(name in values for name, _, _ in _NAS_METER):
        return Frame(_NAS_USAGE, _nas_usage(values))
    return Frame(_NAS_STATUS, _nas_status(values, at))


def _nas_status(values: Values, at: int) -> bytes:
    _only(values, _NAS_STATUS_NAMES)
    bits = _NAS_RELAY_CLOSED
    if _flag(values, "daliConnectionError"):
        bits |= _NAS_DALI_CONNECTION_ERROR
    if _flag(values, "meteringComError"):
        bits |= _NAS_METERING_COM_ERROR
    alerts = sum(bit for name, bit in _NAS_ALERTS if _flag(values, name))
    temperature = _raw(values, "mcuTemperature", 1, *S8)
    sources = b""
    if "illuminance" in values:
        lux = _number(values, "illuminance")
        if lux <= 0:
            raise EncodeError(f"illuminance {lux!r} is outside what the frame can carry")
        # 4000 steps per decade from 1 mlx, in 15 bits.
        raw = round(4000 * math.log10(lux * 1000))
        if not 0 <= raw <= 0x7FFF:
            raise EncodeError(f"illuminance {lux!r} is outside what the frame can carry")
        sources = bytes([_NAS_LIGHT_SENSOR]) + raw.to_bytes(2, "little")
    frame = (
        struct.pack("<BIBB", _NAS_STATUS_HEADER, at & U32, bits, 0)
        + _NAS_DOWNLINK_QUALITY
        + struct.pack("<bBB", temperature, alerts, len(sources))
        + sources
    )
    return frame + _nas_driver(values)


def _nas_driver(values: Values) -> bytes:
    """The dimming source of the DALI broadcast address, or nothing when there is none."""
    level = (
        _percent(values, "illuminanceLevel") if "illuminanceLevel" in values else _NAS_NOT_AVAILABLE
    )
    if ("status" in values) != ("powerState" in values):
        raise EncodeError("status and powerState come from the same byte: give both or neither")
    dali = _NAS_NOT_AVAILABLE
    if "status" in values:
        state, power = values["status"], values["powerState"]
        if state not in _NAS_DALI_STATES or power not in ("on", "off"):
            raise EncodeError(f"status {state!r} or powerState {power!r} unknown")
        dali = _NAS_DALI_STATES[str(state)] | (_NAS_LAMP_ON if power == "on" else 0)
    if level == _NAS_NOT_AVAILABLE and dali == _NAS_NOT_AVAILABLE:
        return b""
    return bytes([_NAS_BROADCAST, _NAS_REASON, level, dali])


def _nas_usage(values: Values) -> bytes:
    _only(values, {name for name, _, _ in _NAS_METER})
    fields = 0
    data = b""
    for bit, (name, size, scale) in enumerate(_NAS_METER):
        if name in values:
            fields |= 1 << bit
            # 0xFF in a power factor byte means "not available", so it is not a value.
            high = U8 - 1 if name == "powerFactor" else (1 << (8 * size)) - 1
            data += _raw(values, name, scale, 0, high).to_bytes(size, "little")
    return bytes([0x00, _NAS_CONTROLLER, fields]) + data


# -- Axioma ------------------------------------------------------------------------------------

_AXIOMA_FPORT = 100


def _axioma(values: Values, at: int, serial: int) -> Frame:
    """The enhanced frame: time, status, volume (litres), log time, log volume, no deltas."""
    _only(values, {"waterConsumption", "statusCode"})
    litres = _raw(values, "waterConsumption", 1000, 0, U32)
    status = _raw(values, "statusCode", 1, 0, U8)
    log_time = at - at % 3600
    return Frame(_AXIOMA_FPORT, struct.pack("<IBIII", at, status, litres, log_time, litres))


MODELS: Mapping[str, Encoder] = MappingProxyType(
    {
        "axioma-qalcosonic-w1": _axioma,
        "decentlab-dl-atm41": _decentlab(_DL_ATM41),
        "decentlab-dl-mbx": _decentlab(_DL_MBX),
        "decentlab-dl-ntu": _decentlab(_DL_NTU),
        "decentlab-dl-pm": _decentlab(_DL_PM),
        "elsys-ers-co2": _elsys,
        "milesight-em310-udl": _milesight(_EM310_UDL),
        "milesight-em400-tld": _milesight(_EM400_TLD),
        "nas-ul20xx": _nas,
        "vega-vegapuls-air-41": _vega,
    }
)
