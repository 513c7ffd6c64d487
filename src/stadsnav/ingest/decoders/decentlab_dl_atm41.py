"""Decentlab DL-ATM41, all-in-one weather station (METER ATMOS 41).

Follows TheThingsNetwork/lorawan-devices ``vendor/decentlab/dl-atm41-codec.yaml`` and
``dl-atm41.js`` (MIT): sensor 0 sends 17 words, each offset by 0x8000 and scaled as listed
below, sensor 1 the battery voltage. Pressures arrive in kPa and leave in hPa.
"""

from __future__ import annotations

from collections.abc import Sequence

from stadsnav.ingest.decoders import decentlab
from stadsnav.ingest.decoders.base import Reading

# Word order of sensor 0: reading name, divisor of the offset word, unit.
_WEATHER: tuple[tuple[str, int, str | None], ...] = (
    ("solarRadiation", 1, "D54"),
    ("precipitation", 1000, "MMT"),
    ("lightningStrikeCount", 1, None),
    ("lightningAverageDistance", 1, "KMT"),
    ("windSpeed", 100, "MTS"),
    ("windDirection", 10, "DD"),
    # The maximum over the measurement interval, which FIWARE's WeatherObserved calls a gust.
    ("gustSpeed", 100, "MTS"),
    ("temperature", 10, "CEL"),
    ("vaporPressure", 10, "A97"),
    ("atmosphericPressure", 10, "A97"),
    ("relativeHumidity", 1000, "P1"),
    ("internalTemperature", 10, "CEL"),
    ("xOrientationAngle", 10, "DD"),
    ("yOrientationAngle", 10, "DD"),
    ("compassHeading", 1, "DD"),
    ("northWindSpeed", 100, "MTS"),
    ("eastWindSpeed", 100, "MTS"),
)


def _weather(words: Sequence[int]) -> list[Reading]:
    return [
        Reading(name, _scaled(word - decentlab.OFFSET, divisor), unit)
        for (name, divisor, unit), word in zip(_WEATHER, words, strict=True)
    ]


def _scaled(value: int, divisor: int) -> float | int:
    # Counts and whole degrees stay integers; everything else has a fixed number of decimals.
    return value if divisor == 1 else value / divisor


_SENSORS = (decentlab.Sensor(len(_WEATHER), _weather), decentlab.BATTERY)


def decode(fport: int, payload: bytes) -> list[Reading]:
    return decentlab.decode(fport, payload, _SENSORS)
