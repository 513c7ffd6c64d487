"""Decentlab DL-MBX, ultrasonic distance / level sensor.

Follows TheThingsNetwork/lorawan-devices ``vendor/decentlab/dl-mbx-codec.yaml`` and
``dl-mbx.js`` (MIT): sensor 0 sends the distance in mm and the number of valid samples behind
it, sensor 1 the battery voltage.
"""

from __future__ import annotations

from collections.abc import Sequence

from stadsnav.ingest.decoders import decentlab
from stadsnav.ingest.decoders.base import Reading


def _distance(words: Sequence[int]) -> list[Reading]:
    return [
        Reading("distance", words[0] / 1000, "MTR"),
        Reading("numberOfValidSamples", words[1]),
    ]


_SENSORS = (decentlab.Sensor(2, _distance), decentlab.BATTERY)


def decode(fport: int, payload: bytes) -> list[Reading]:
    return decentlab.decode(fport, payload, _SENSORS)
