"""NIAB FLS, ultrasonic fill-level sensor for waste containers.

No vendor document is public; the layout is the one the diwise/iot-agent tests assert
(``internal/pkg/application/decoders/niab/decoders.niab_test.go``, AGPL-3.0, facts only):
four bytes, battery (0..255 for 0..100 %), temperature (°C, one signed byte), distance (mm,
unsigned 16-bit big-endian, 0xFFFF when the sensor could not measure). The source gives no
fPort, so every port is accepted.
"""

from __future__ import annotations

from stadsnav.ingest.decoders.base import ByteReader, DecodeError, Reading

_LENGTH = 4
_READ_ERROR = 0xFFFF


def decode(fport: int, payload: bytes) -> list[Reading]:
    if len(payload) != _LENGTH:
        raise DecodeError(f"payload is {len(payload)} bytes, expected {_LENGTH}")
    reader = ByteReader(payload)
    battery = reader.u8()
    temperature = reader.u8()
    distance = reader.uint(2, "big")
    if distance == _READ_ERROR:
        raise DecodeError("distance 0xffff: the sensor reported a read error")
    # The documented example reads 0xF0 as -15 °C, i.e. negative values are one's complement
    # (byte - 255), not two's complement (which would give -16).
    if temperature > 0x7F:
        temperature -= 0xFF
    return [
        Reading("batteryLevel", battery / 0xFF, "P1"),
        Reading("temperature", temperature, "CEL"),
        Reading("distance", distance / 1000, "MTR"),
    ]
