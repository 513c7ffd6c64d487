"""Milesight EM400-TLD, time-of-flight laser distance sensor (waste bins in Sundsvall).

Follows the EM400-TLD payload definition of Milesight (Milesight-IoT/SensorDecoders
``EM_Series/EM400_Series/EM400-TLD/README.md``): 01/75 battery %, 03/67 temperature 0.1 °C,
04/82 distance mm, 05/00 position, 83/67 and 84/82 the same values with a threshold-alarm byte.
Examples from TheThingsNetwork/lorawan-devices ``vendor/milesight-iot/em400-tld-codec.yaml``
(MIT) and the diwise/iot-agent tests (facts only). Uplinks come on fPort 85.
"""

from __future__ import annotations

from stadsnav.ingest.decoders import milesight
from stadsnav.ingest.decoders.base import ByteReader, Reading, battery_percent, require_fport


def _temperature(data: ByteReader) -> Reading:
    return Reading("temperature", data.sint(2, "little") / 10, "CEL")


def _distance(data: ByteReader) -> Reading:
    return Reading("distance", data.uint(2, "little") / 1000, "MTR")


_CHANNELS: dict[tuple[int, int], milesight.Channel] = {
    (0x01, 0x75): (1, lambda data: [battery_percent(data.u8())]),
    (0x03, 0x67): (2, lambda data: [_temperature(data)]),
    (0x04, 0x82): (2, lambda data: [_distance(data)]),
    (0x05, 0x00): (1, milesight.tilted),
    (0x83, 0x67): (3, lambda data: [_temperature(data), milesight.alarm("temperatureAlarm", data)]),
    (0x84, 0x82): (3, lambda data: [_distance(data), milesight.alarm("distanceAlarm", data)]),
}


def decode(fport: int, payload: bytes) -> list[Reading]:
    require_fport(fport, {85})
    return milesight.decode_channels(payload, _CHANNELS)
