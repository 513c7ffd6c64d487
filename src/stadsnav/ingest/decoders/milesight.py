"""The Milesight uplink frame: a run of channels, each ``id, type, data``, data little-endian.

Follows the channel tables of the Milesight EM-series payload definitions (Milesight-IoT
SensorDecoders READMEs, as used by TheThingsNetwork/lorawan-devices ``vendor/milesight-iot``).
The ``0xFF`` channels carry device information after a join or restart; they hold no
measurement, so they are read past.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from stadsnav.ingest.decoders.base import ByteReader, DecodeError, Reading

# A model's channel: (id, type) -> data length and the readings that data gives.
Channel = tuple[int, Callable[[ByteReader], list[Reading]]]

# (0xFF, type) -> data length: protocol, hardware, firmware, TSL versions, power-on event,
# serial number, LoRaWAN class and reset event.
_DEVICE_INFO = {0x01: 1, 0x09: 2, 0x0A: 2, 0xFF: 2, 0x0B: 1, 0x16: 8, 0x0F: 1, 0xFE: 1}


def decode_channels(payload: bytes, channels: Mapping[tuple[int, int], Channel]) -> list[Reading]:
    reader = ByteReader(payload)
    readings: list[Reading] = []
    while reader.remaining:
        channel_id, channel_type = reader.u8(), reader.u8()
        channel = channels.get((channel_id, channel_type))
        if channel is not None:
            length, read = channel
            readings += read(ByteReader(reader.take(length)))
        elif channel_id == 0xFF and channel_type in _DEVICE_INFO:
            reader.take(_DEVICE_INFO[channel_type])
        else:
            raise DecodeError(f"channel 0x{channel_id:02x} type 0x{channel_type:02x} unknown")
    return readings


def tilted(data: ByteReader) -> list[Reading]:
    """The position byte: 0 normal, 1 tilted (the sensor no longer looks straight down)."""
    position = data.u8()
    if position > 1:
        raise DecodeError(f"position value {position} unknown")
    return [Reading("tilted", position == 1)]


def alarm(name: str, data: ByteReader) -> Reading:
    """Alarm channels end with 1 for a threshold alarm, 0 for its release."""
    state = data.u8()
    if state > 1:
        raise DecodeError(f"{name} value {state} unknown")
    return Reading(name, state == 1)
