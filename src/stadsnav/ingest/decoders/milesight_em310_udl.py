"""Milesight EM310-UDL, ultrasonic distance sensor for waste bins, with tilt detection.

Follows the EM310-UDL payload definition of Milesight (channels 01/75 battery %, 03/82 distance
mm, 04/00 position), as published in TheThingsNetwork/lorawan-devices
``vendor/milesight-iot/em310-udl-codec.yaml`` (MIT). Uplinks come on fPort 85.
"""

from __future__ import annotations

from stadsnav.ingest.decoders import milesight
from stadsnav.ingest.decoders.base import ByteReader, Reading, battery_percent, require_fport


def _distance(data: ByteReader) -> Reading:
    return Reading("distance", data.uint(2, "little") / 1000, "MTR")


_CHANNELS: dict[tuple[int, int], milesight.Channel] = {
    (0x01, 0x75): (1, lambda data: [battery_percent(data.u8())]),
    (0x03, 0x82): (2, lambda data: [_distance(data)]),
    (0x04, 0x00): (1, milesight.tilted),
}


def decode(fport: int, payload: bytes) -> list[Reading]:
    require_fport(fport, {85})
    return milesight.decode_channels(payload, _CHANNELS)
