"""Elsys ELT-2 HP, outdoor sensor: temperature, humidity, pressure, digital inputs.

Follows the Elsys generic payload format (see ``elsys``); examples from the diwise/iot-agent
tests (``internal/pkg/application/decoders/elsys/decoders.elsys_test.go``, AGPL-3.0, facts
only), where it watches pump wells. Elsys sensors send data on a configurable port (5 in the
examples), so any port is accepted.
"""

from __future__ import annotations

from stadsnav.ingest.decoders import elsys
from stadsnav.ingest.decoders.base import Reading


def decode(fport: int, payload: bytes) -> list[Reading]:
    return elsys.decode(payload)
