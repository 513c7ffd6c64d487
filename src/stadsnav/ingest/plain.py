"""Devices that send their own JSON, with no network server in between.

A device publishes on `stadsnav/devices/{key}/up` (MQTT, authenticated by the broker with the
device's own secret and allowed only that topic, see devices/credentials.py) or POSTs to
`/ingest/devices/{key}` (HTTP, the secret as a bearer token). The body is one JSON object: the
measurements its model's declarative decoder knows (ingest/decoders/json_environment.py), plus
two optional members the transport reads here: `seq`, a counter that tells a resent message
from a new one, and `time`, when the device measured (else when stadsnav received it).
"""

from __future__ import annotations

import re
from types import MappingProxyType

import orjson

from stadsnav.ingest.lorawan import EnvelopeError, Uplink
from stadsnav.ngsild.errors import BadRequestData
from stadsnav.ngsild.names import normalize_datetime

TOPIC_PREFIX = "stadsnav/devices/"
_KEY = re.compile(r"^[0-9a-fA-F]{16}$")
_SOURCE = re.compile(r"^(?:stadsnav/devices/([^/]+)/up|/ingest/devices/([^/]+))$")


def device_key(source: str) -> str:
    """The device key from an MQTT topic or HTTP path of a plain device."""
    found = _SOURCE.match(source)
    key = None if found is None else (found.group(1) or found.group(2))
    if key is None or not _KEY.match(key):
        raise EnvelopeError(f"not a plain device's topic or path: {source!r:.100}")
    return key.lower()


def parse_plain(source: str, body: bytes, received_at: str) -> Uplink:
    key = device_key(source)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise EnvelopeError(f"a plain device sends JSON: {error}") from None
    if not isinstance(document, dict):
        raise EnvelopeError("a plain device sends one JSON object per message")
    seq = document.get("seq", 0)
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**63:
        raise EnvelopeError(f"seq must be a counter (a whole number from 0), got {seq!r:.40}")
    at = received_at
    if "time" in document:
        try:
            at = normalize_datetime(document["time"], "time")
        except BadRequestData as error:
            raise EnvelopeError(error.detail) from None
    return Uplink(
        network="json",
        dev_eui=key,
        device_name=None,
        application_id="",
        f_cnt=seq,
        f_port=0,
        payload=body,
        received_at=at,
        rssi=None,
        snr=None,
        gateway_count=0,
        frequency=None,
        dr=None,
        spreading_factor=None,
        location=None,
        decoded=None,
        device_profile=None,
        brand_id=None,
        model_id=None,
        tags=MappingProxyType({}),
        battery=None,
    )
