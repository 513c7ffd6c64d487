"""Axioma Qalcosonic W1, ultrasonic water meter.

Follows Axioma's W1 LoRa payload documents as decoded by TheThingsNetwork/lorawan-devices
``vendor/axioma/qalcosonic-w1-codec.yaml`` and ``qalcosonic-w1-codec.js`` (MIT; the 24-hour
frame and the status bits) and as recorded in the diwise/iot-agent tests
(``internal/pkg/application/decoders/qalcosonic/decoder.qalcosonic_test.go``, AGPL-3.0, facts
only; the enhanced frames and the alarm frame). Everything is little-endian, volumes in litres,
times in Unix seconds.

fPort 100, depending on how the meter is configured:
    51 bytes, 24-hour frame: frame version 1, time, status, volume at the daily log point,
        then 23 hourly deltas packed as 14-bit fields and a 6-bit history multiplier;
    enhanced frame: time, status, current volume, log time, volume at log time, 16-bit
        hourly deltas;
    enhanced frame with water temperature: as above with the temperature (0.01 °C) after the
        current volume.
fPort 103: alarm frame, time and alarm status.

The two enhanced frames have the same lengths; the frame is the one whose log time lies
before the frame's own time, by less than ``_MAX_LOG_AGE``. Hourly history has no place in a
reading (it would need its own times), so only the current volume is reported.
"""

from __future__ import annotations

from stadsnav.ingest.decoders.base import ByteReader, DecodeError, Reading, require_fport

_DATA, _ALARM = 100, 103
_DAILY_LENGTH = 51
_FRAME_VERSION = 1
_DELTAS = 23
_DELTA_BITS = 14
_DELTA_MASK = (1 << _DELTA_BITS) - 1
_MULTIPLIER_MASK = 0x3F
_ALARM_LENGTH = 5
# Time, status, current volume, [temperature], log time and log volume come before the deltas.
_ENHANCED_HEADER = 4 + 1 + 4 + 4 + 4
_TEMPERATURE_LENGTH = 2
_MAX_LOG_AGE = 2 * 24 * 3600


def decode(fport: int, payload: bytes) -> list[Reading]:
    require_fport(fport, {_DATA, _ALARM})
    if fport == _ALARM:
        return _alarm(payload)
    if len(payload) == _DAILY_LENGTH:
        return _daily(payload)
    return _enhanced(payload)


def _alarm(payload: bytes) -> list[Reading]:
    if len(payload) != _ALARM_LENGTH:
        raise DecodeError(f"payload is {len(payload)} bytes, expected {_ALARM_LENGTH}")
    # The alarm bits are not defined by the documents followed here, so the code is passed on.
    return [Reading("statusCode", payload[4])]


def _daily(payload: bytes) -> list[Reading]:
    reader = ByteReader(payload)
    version = reader.u8()
    if version != _FRAME_VERSION:
        raise DecodeError(f"frame version {version} unknown, expected {_FRAME_VERSION}")
    reader.take(4)  # frame time
    status = reader.u8()
    volume = reader.uint(4, "little")
    packed = reader.uint(reader.remaining, "little")
    multiplier = (packed >> (_DELTAS * _DELTA_BITS)) & _MULTIPLIER_MASK
    if multiplier:
        # The codec only warns that a multiplier needs "additional scaling"; guessing it would
        # publish a wrong meter reading.
        raise DecodeError(f"history multiplier {multiplier} not supported")
    deltas = sum((packed >> (i * _DELTA_BITS)) & _DELTA_MASK for i in range(_DELTAS))
    return [_volume(volume + deltas), *_status(status)]


def _enhanced(payload: bytes) -> list[Reading]:
    layouts = [
        temperature
        for temperature in (False, True)
        if _log_time_fits(payload, _TEMPERATURE_LENGTH if temperature else 0)
    ]
    if len(layouts) != 1:
        raise DecodeError(f"{len(payload)} bytes match no enhanced frame of the W1")
    reader = ByteReader(payload)
    reader.take(4)  # frame time
    status = reader.u8()
    readings = [_volume(reader.uint(4, "little")), *_status(status)]
    if layouts[0]:
        readings.append(Reading("temperature", reader.uint(2, "little") / 100, "CEL"))
    return readings


def _log_time_fits(payload: bytes, extra: int) -> bool:
    header = _ENHANCED_HEADER + extra
    if len(payload) < header or (len(payload) - header) % 2:
        return False
    frame_time = int.from_bytes(payload[0:4], "little")
    log_at = 9 + extra
    log_time = int.from_bytes(payload[log_at : log_at + 4], "little")
    return 0 <= frame_time - log_time <= _MAX_LOG_AGE


def _volume(litres: int) -> Reading:
    return Reading("waterConsumption", litres / 1000, "MTQ")


def _status(status: int) -> list[Reading]:
    # Bit meanings of the status byte, as the lorawan-devices codec reads them: the high bits
    # combine into one error code, so backflow (0x60) and burst (0xA0) hide leak and frost.
    backflow = status & 0x60 == 0x60
    burst = status & 0xA0 == 0xA0
    return [
        Reading("statusCode", status),
        Reading("lowBatteryAlarm", bool(status & 0x04)),
        Reading("permanentErrorAlarm", bool(status & 0x08)),
        Reading("temporaryErrorAlarm", bool(status & 0x10)),
        Reading("emptyPipeAlarm", status == 0x10),
        Reading("backflowAlarm", backflow),
        Reading("burstAlarm", burst),
        Reading("leakAlarm", bool(status & 0x20) and not backflow and not burst),
        Reading("lowTemperatureAlarm", bool(status & 0x80) and not burst),
    ]
