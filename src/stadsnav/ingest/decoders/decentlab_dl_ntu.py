"""Decentlab DL-NTU, optical turbidity and temperature sensor.

Follows TheThingsNetwork/lorawan-devices ``vendor/decentlab/dl-ntu-codec.yaml`` and
``dl-ntu.js`` (MIT): sensor 0 sends status, temperature (0.01 °C, offset 0x8000) and turbidity
in NTU, FNU and mg/L (each in tenths), sensor 1 the battery voltage.

NTU and FNU have no Recommendation 20 code, so those readings carry no unit; their names say
which scale they are on (FIWARE's ``turbidity`` is in NTU).
"""

from __future__ import annotations

from collections.abc import Sequence

from stadsnav.ingest.decoders import decentlab
from stadsnav.ingest.decoders.base import Reading


def _turbidity(words: Sequence[int]) -> list[Reading]:
    return [
        Reading("sensorStatus", words[0]),
        Reading("temperature", (words[1] - decentlab.OFFSET) / 100, "CEL"),
        Reading("turbidity", words[2] / 10),
        Reading("turbidityFnu", words[3] / 10),
        Reading("turbidityMassConcentration", words[4] / 10, "M1"),
    ]


_SENSORS = (decentlab.Sensor(5, _turbidity), decentlab.BATTERY)


def decode(fport: int, payload: bytes) -> list[Reading]:
    return decentlab.decode(fport, payload, _SENSORS)
