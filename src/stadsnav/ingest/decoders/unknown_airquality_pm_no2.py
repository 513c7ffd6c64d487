"""Outdoor air-quality node of unknown make (PM10, PM2.5, NO2, temperature, humidity).

No vendor document exists in the sources: the only one is a single frame in the diwise/
iot-agent tests (``internal/pkg/application/decoders/airquality/decoders.airquality_test.go``,
AGPL-3.0, facts only) with the values the network server's codec produced. The layout below is
inferred from that frame, so treat it as provisional: twelve bytes on fPort 2, six 16-bit
little-endian words:

    0 PM10 raw (0.1), 1 PM2.5 raw (0.1), 2 temperature (0.1 K, 273.2 K = 0 °C),
    3 relative humidity (0.1 %), 4 sensor error code, 5 NO2 (scale unknown).

The source's ``pm10``/``pm25`` are calibrated from the raw values by a formula it does not
give, and it gives no scale for NO2; so the raw PM values are reported under their own names
and without unit (the source states none), and NO2 is not reported.
"""

from __future__ import annotations

from stadsnav.ingest.decoders.base import ByteReader, DecodeError, Reading, require_fport

_LENGTH = 12
_ZERO_CELSIUS_DECIKELVIN = 2732


def decode(fport: int, payload: bytes) -> list[Reading]:
    require_fport(fport, {2})
    if len(payload) != _LENGTH:
        raise DecodeError(f"payload is {len(payload)} bytes, expected {_LENGTH}")
    reader = ByteReader(payload)
    pm10, pm25, temperature, humidity, error = (reader.uint(2, "little") for _ in range(5))
    return [
        Reading("pm10Raw", pm10 / 10),
        Reading("pm25Raw", pm25 / 10),
        Reading("temperature", (temperature - _ZERO_CELSIUS_DECIKELVIN) / 10, "CEL"),
        Reading("relativeHumidity", humidity / 1000, "P1"),
        Reading("sensorError", error),
    ]
