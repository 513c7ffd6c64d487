"""NAS (Nordic Automation Systems) UL20xx luminaire controller, firmware 1.1.x (DALI, 0-10 V).

Follows the NAS LCU payload description for firmware 1.1.x (docs.nasys.no/en/lcu/payloads),
with the byte layout as implemented in nasys/nas-codecs ``src/ul20xx_decoder.js`` (MIT); the
examples are that repository's test vectors, most of them from the vendor data sheet.
Multi-byte values are little-endian.

    fPort 23  status: time, status bits, downlink quality, MCU temperature, 24-hour alerts,
              sensor sources, then one dimming source (address, reason, level, DALI status)
              per driver
    fPort 26  usage: per address, a bit set of meter fields that follow
    fPort 60  command responses (manual dimming gives the level set; the others echo
              configuration and carry no measurement)
    fPort 61  event notifications: digital input, LDR, DALI driver alerts, metering alerts
    fPort 99  boot (firmware version, serial number) and rejected downlinks

A controller drives several DALI drivers, each reporting its own values. Readings about one
driver carry its DALI address in the name (``illuminanceLevelDali9``, ``statusDaliGroup2``);
readings about the whole luminaire (DALI broadcast, the 0-10 V output, the controller's own
meter) carry the plain FIWARE name (``illuminanceLevel``, ``powerConsumption``).
"""

from __future__ import annotations

from collections.abc import Callable

from stadsnav.ingest.decoders.base import ByteReader, DecodeError, Reading, require_fport

_STATUS, _USAGE, _RESPONSE, _EVENT, _SYSTEM = 23, 26, 60, 61, 99
# Analog 0-10 V output, DALI broadcast, and "the controller itself / all devices".
_WHOLE_LUMINAIRE = frozenset({0x01, 0xFE, 0xFF})
_NOT_AVAILABLE = 0xFF
_SECONDS_PER_HOUR = 3600


def decode(fport: int, payload: bytes) -> list[Reading]:
    require_fport(fport, _PORTS)
    reader = ByteReader(payload)
    readings = _PORTS[fport](reader)
    reader.end()
    return readings


def _suffix(address: int) -> str:
    if address in _WHOLE_LUMINAIRE:
        return ""
    if address & 0x01:
        raise DecodeError(f"address 0x{address:02x} invalid")
    if address & 0x80:
        return f"DaliGroup{(address >> 1) & 0x0F}"
    return f"Dali{(address >> 1) & 0x3F}"


def _dimming(suffix: str, level: int) -> list[Reading]:
    if level == _NOT_AVAILABLE:  # relay off, or "resume" in a command
        return []
    if level > 100:
        raise DecodeError(f"dimming level {level} out of range")
    return [Reading(f"illuminanceLevel{suffix}", level / 100, "P1")]


def _dali_status(suffix: str, bits: int) -> list[Reading]:
    if bits == _NOT_AVAILABLE:  # the driver did not answer
        return []
    if bits & 0x02:
        status = "defectiveLamp"
    elif bits & 0x01:
        status = "brokenLantern"  # driver (control gear) failure
    else:
        status = "ok"
    return [
        Reading(f"status{suffix}", status),
        Reading(f"powerState{suffix}", "on" if bits & 0x04 else "off"),
    ]


def _power_factor(suffix: str, raw: int) -> list[Reading]:
    if raw == _NOT_AVAILABLE:
        return []
    return [Reading(f"powerFactor{suffix}", raw / 100, "C62")]


def _status(reader: ByteReader) -> list[Reading]:
    header = reader.u8()
    if header not in (0x00, 0x01):  # 0x00 before firmware 1.1.4
        raise DecodeError(f"status header 0x{header:02x} unknown")
    reader.take(4)  # device time
    bits = reader.u8()
    readings = [
        Reading("daliConnectionError", bool(bits & 0x02)),
        Reading("meteringComError", bool(bits & 0x20)),
    ]
    if header == 0x00:
        readings.append(Reading("digitalInput", bool(bits & 0x10)))
    else:
        reader.u8()  # open-drain output and Lumalink state
    reader.take(2)  # downlink RSSI and SNR
    readings.append(Reading("mcuTemperature", reader.sint(1, "little"), "CEL"))
    alerts_sent = True
    if header == 0x00:
        fields = reader.u8()
        alerts_sent = bool(fields & 0x10)
        if fields & 0x02:
            reader.u8()  # raw LDR input
    if alerts_sent:
        alerts = reader.u8()
        readings += [
            Reading("voltageAlertIn24h", bool(alerts & 0x10)),
            Reading("lampErrorAlertIn24h", bool(alerts & 0x20)),
            Reading("powerAlertIn24h", bool(alerts & 0x40)),
            Reading("powerFactorAlertIn24h", bool(alerts & 0x80)),
        ]
    if header == 0x01:
        readings += _sensor_sources(ByteReader(reader.take(reader.u8())))
    while reader.remaining:
        address, _reason, level, status = reader.take(4)
        suffix = _suffix(address)
        readings += _dimming(suffix, level) + _dali_status(suffix, status)
    return readings


def _sensor_sources(block: ByteReader) -> list[Reading]:
    readings: list[Reading] = []
    while block.remaining:
        kind = block.u8()
        if kind == 0x01:
            block.u8()  # raw LDR input, no unit
        elif kind == 0x02:
            readings += _illuminance(block.uint(2, "little"))
        elif kind == 0x03:
            # The luminaire's own (D4i) light sensor; illuminance comes from the controller's.
            block.take(2)
        elif kind == 0x04:
            readings.append(Reading("digitalInput", bool(block.u8() & 0x01)))
        elif kind == 0x08:
            degrees = block.u8()
            if degrees != _NOT_AVAILABLE:
                readings.append(Reading("tiltAngle", degrees, "DD"))
        else:
            # A source newer than this decoder: the block is length-prefixed precisely so that
            # older readers can skip the rest of it.
            break
    return readings


def _illuminance(raw: int) -> list[Reading]:
    if raw == 0xFFFF:
        return []
    # Logarithmic scale: 4000 steps per decade, from 1 mlx.
    return [Reading("illuminance", 10 ** ((raw & 0x7FFF) / 4000) / 1000, "LUX")]


def _usage(reader: ByteReader) -> list[Reading]:
    header = reader.u8()
    if header != 0x00:
        raise DecodeError(f"usage header 0x{header:02x} unknown")
    readings: list[Reading] = []
    while reader.remaining:
        suffix = _suffix(reader.u8())
        fields = reader.u8()
        for bit, read in enumerate(_METER_FIELDS):
            if fields & (1 << bit):
                readings += read(suffix, reader)
    return readings


_Field = Callable[[str, ByteReader], list[Reading]]


def _meter(name: str, size: int, unit: str, divisor: int = 1) -> _Field:
    def read(suffix: str, reader: ByteReader) -> list[Reading]:
        value = reader.uint(size, "little")
        return [Reading(f"{name}{suffix}", value / divisor if divisor > 1 else value, unit)]

    return read


# Usage fields in bit order; the two times are counted in seconds.
_METER_FIELDS: tuple[_Field, ...] = (
    _meter("activeEnergyImport", 4, "WHR"),
    _meter("powerConsumption", 2, "WTT"),
    _meter("loadSideEnergy", 4, "WHR"),
    _meter("loadSidePower", 2, "WTT"),
    lambda suffix, reader: _power_factor(suffix, reader.u8()),
    _meter("voltage", 1, "VLT"),
    _meter("driverOperatingTime", 4, "HUR", _SECONDS_PER_HOUR),
    _meter("lampOnTime", 4, "HUR", _SECONDS_PER_HOUR),
)

# Responses that echo configuration or raw DALI traffic.
_RESPONSES_WITHOUT_MEASUREMENT = frozenset({0x03, 0x04, 0x05, 0x07, 0x08, 0x0A, 0x0B, 0x0C})
_MANUAL_DIMMING, _TIMED_DIMMING = 0x01, 0x09


def _response(reader: ByteReader) -> list[Reading]:
    header = reader.u8()
    if header in _RESPONSES_WITHOUT_MEASUREMENT:
        reader.take(reader.remaining)
        return []
    if header not in (_MANUAL_DIMMING, _TIMED_DIMMING):
        raise DecodeError(f"response header 0x{header:02x} unknown")
    readings: list[Reading] = []
    while reader.remaining:
        suffix = _suffix(reader.u8())
        readings += _dimming(suffix, reader.u8())
        if header == _TIMED_DIMMING:
            reader.u8()  # duration in minutes
    return readings


def _event(reader: ByteReader) -> list[Reading]:
    header = reader.u8()
    detail = reader.u8()
    length = detail >> 4
    if header == 0x80:  # digital input
        if length == 2:
            reader.take(2)  # event counter
            return []
        if length == 4:
            reader.take(4)  # event counter
            return [Reading("digitalInput", bool(detail & 0x01))]
        raise DecodeError(f"digital input notification of length {length} unknown")
    if header == 0x81:  # LDR input: a raw, unitless light level
        if length != 2:
            raise DecodeError(f"LDR notification of length {length} unknown")
        reader.take(2)
        return []
    if header == 0x83:  # DALI driver alert
        readings: list[Reading] = []
        while reader.remaining:
            address, status = reader.take(2)
            readings += _dali_status(_suffix(address), status)
        return readings
    if header == 0x84:  # metering alert
        return _metering_alert(detail, reader)
    if header == 0x85:  # deprecated light sensor notification: the active dim step only
        return []
    if header == 0x86:  # location: a fix (status 0) carries latitude, longitude and its time
        if detail == 0x00:
            reader.take(12)
        return []
    raise DecodeError(f"event header 0x{header:02x} unknown")


def _metering_alert(conditions: int, reader: ByteReader) -> list[Reading]:
    readings = [
        Reading("lampErrorAlert", bool(conditions & 0x01)),
        Reading("overCurrentAlert", bool(conditions & 0x02)),
        Reading("underVoltageAlert", bool(conditions & 0x04)),
        Reading("overVoltageAlert", bool(conditions & 0x08)),
        Reading("lowPowerFactorAlert", bool(conditions & 0x10)),
        Reading("powerConsumption", reader.uint(2, "little"), "WTT"),
        Reading("voltage", reader.uint(2, "little"), "VLT"),
    ]
    return readings + _power_factor("", reader.u8())


def _system(reader: ByteReader) -> list[Reading]:
    header = reader.u8()
    if header == 0x00:  # boot
        serial = reader.uint(4, "little")
        major, minor, patch = reader.take(3)
        # Device time, configuration, optional features, DALI supply and driver count.
        reader.take(4 + 1 + 1 + 1 + 1)
        if reader.remaining:
            reader.u8()  # reset reason, not sent by every firmware
        return [
            Reading("firmwareVersion", f"{major}.{minor}.{patch}"),
            Reading("serialNumber", f"{serial:08X}"),
        ]
    if header == 0x13:  # a downlink the controller rejected: its fPort and the error code
        reader.take(2)
        return []
    raise DecodeError(f"system header 0x{header:02x} unknown")


_PORTS: dict[int, Callable[[ByteReader], list[Reading]]] = {
    _STATUS: _status,
    _USAGE: _usage,
    _RESPONSE: _response,
    _EVENT: _event,
    _SYSTEM: _system,
}
