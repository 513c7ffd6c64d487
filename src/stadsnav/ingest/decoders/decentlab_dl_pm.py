"""Decentlab DL-PM, particulate matter, temperature, humidity and barometric pressure sensor.

Follows TheThingsNetwork/lorawan-devices ``vendor/decentlab/dl-pm-codec.yaml`` and ``dl-pm.js``
(MIT): sensor 0 battery, sensor 1 the particulate matter words (mass concentrations in
0.1 µg/m³, typical particle size in nm, number concentrations in 0.1 per cm³), sensor 2
temperature and humidity (Sensirion SHT formulas), sensor 3 pressure in units of 2 Pa.
"""

from __future__ import annotations

from collections.abc import Sequence

from stadsnav.ingest.decoders import decentlab
from stadsnav.ingest.decoders.base import Reading

_MASS = ("pm1", "pm25", "pm4", "pm10")
_NUMBER = (
    "pm05NumberConcentration",
    "pm1NumberConcentration",
    "pm25NumberConcentration",
    "pm4NumberConcentration",
    "pm10NumberConcentration",
)


def _particulates(words: Sequence[int]) -> list[Reading]:
    mass = [Reading(name, word / 10, "GQ") for name, word in zip(_MASS, words[:4], strict=True)]
    size = Reading("typicalParticleSize", words[4], "C45")
    number = [
        Reading(name, word / 10, "H50") for name, word in zip(_NUMBER, words[5:], strict=True)
    ]
    return [*mass, size, *number]


def _climate(words: Sequence[int]) -> list[Reading]:
    return [
        Reading("temperature", 175.72 * words[0] / 65536 - 46.85, "CEL"),
        Reading("relativeHumidity", (125 * words[1] / 65536 - 6) / 100, "P1"),
    ]


def _pressure(words: Sequence[int]) -> list[Reading]:
    return [Reading("atmosphericPressure", words[0] * 2 / 100, "A97")]


_SENSORS = (
    decentlab.BATTERY,
    decentlab.Sensor(10, _particulates),
    decentlab.Sensor(2, _climate),
    decentlab.Sensor(1, _pressure),
)


def decode(fport: int, payload: bytes) -> list[Reading]:
    return decentlab.decode(fport, payload, _SENSORS)
