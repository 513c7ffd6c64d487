"""Elsys ERS CO2, indoor sensor: temperature, humidity, light, motion (PIR), CO2.

Follows the Elsys generic payload format (see ``elsys``), as documented for this model in
TheThingsNetwork/lorawan-devices ``vendor/elsys/ers-co2-codec.yaml`` (MIT); a second example
from the diwise/iot-agent tests (facts only). The documents use fPort 1 (TTN) and 5
(Sundsvall's network); Elsys sensors send data on a configurable port, so any port is accepted.
"""

from __future__ import annotations

from stadsnav.ingest.decoders import elsys
from stadsnav.ingest.decoders.base import Reading


def decode(fport: int, payload: bytes) -> list[Reading]:
    return elsys.decode(payload)
