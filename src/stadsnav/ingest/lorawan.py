"""LoRaWAN network-server events read into one uplink record, whichever server sent them.

ChirpStack v4 sends the Protobuf JSON mapping of its `integration.proto` (camelCase keys);
The Things Stack v3 sends its `ApplicationUp` JSON (snake_case keys). Both leave out fields
whose value is the zero value ("", 0, false, null), so an absent frame counter means 0 and is
not an error. Every function here is pure: bytes or a parsed mapping in, a record out.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeAlias

import orjson

from stadsnav.ngsild.errors import BadRequestData
from stadsnav.ngsild.names import normalize_datetime

Network = Literal["chirpstack", "tts"]
# Where an uplink came from: a network server, or a device sending its own JSON (ingest/plain.py).
Source = Literal["chirpstack", "tts", "json"]
Body: TypeAlias = bytes | Mapping[str, Any]

_UINT32 = 2**32 - 1
_UINT64 = 2**64 - 1
_EUI = re.compile(r"[0-9A-Fa-f]{16}")
# uint64 has at most 20 digits; longer strings would also hit int()'s conversion limit.
_DIGITS = re.compile(r"[0-9]{1,20}")

# ChirpStack names the event in the topic or the `event` query parameter, never in the body.
_CHIRPSTACK_UPLINK = "up"
_CHIRPSTACK_OTHER = frozenset({"join", "status", "ack", "txack", "log", "location", "integration"})
# An ApplicationUp names its type by the one of these keys it carries. `uplink_normalized`
# repeats an `uplink_message` that was already delivered. `downlinks` is no ApplicationUp but
# the body of a queue push or replace that another client published on the same topic tree.
_TTS_UPLINK = "uplink_message"
_TTS_OTHER = (
    "uplink_normalized",
    "join_accept",
    "downlink_ack",
    "downlink_nack",
    "downlink_sent",
    "downlink_failed",
    "downlink_queued",
    "downlink_queue_invalidated",
    "location_solved",
    "service_data",
    "downlinks",
)


class EnvelopeError(ValueError):
    """A network-server message that cannot be read; the text says which field and why."""


@dataclass(frozen=True, slots=True)
class Uplink:
    """One data frame from one device, as the network server delivered it.

    `dev_eui` and `f_cnt` identify a frame for deduplication; `device_profile`, `brand_id`,
    `model_id` and `tags` are the hints for choosing a payload decoder. `rssi` and `snr` are
    the best values any receiving gateway reported (they may come from different gateways).
    `location` is (latitude, longitude). `decoded` is the network server's own codec output,
    when one is configured there. `battery` is a percentage.
    """

    network: Source
    dev_eui: str
    device_name: str | None
    application_id: str
    f_cnt: int
    f_port: int | None
    payload: bytes
    received_at: str
    rssi: float | None
    snr: float | None
    gateway_count: int
    frequency: int | None
    dr: int | None
    spreading_factor: int | None
    location: tuple[float, float] | None
    decoded: Mapping[str, Any] | None
    device_profile: str | None
    brand_id: str | None
    model_id: str | None
    tags: Mapping[str, str]
    battery: float | None


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A ChirpStack `status` event: the device's answer to the DevStatusReq MAC command.

    `battery` is a percentage, None when the device runs on external power or cannot measure
    it; `margin` is the demodulation SNR margin in dB of the request that asked.
    """

    dev_eui: str
    received_at: str
    margin: int
    battery: float | None
    external_power: bool


class Topic(NamedTuple):
    network: Network
    application_id: str
    device_key: str
    event: str


def parse_topic(topic: str) -> Topic:
    """Split an MQTT topic of either network server's default layout.

    ChirpStack: `application/{application_id}/device/{dev_eui}/event/{event}`; the device key
    is the DevEUI. The Things Stack: `v3/{application_id}[@{tenant_id}]/devices/{device_id}/
    {event}` where the event may have two levels (`down/ack`); the device key is the device
    ID, and the tenant is dropped because message bodies name the application without it.
    """
    parts = topic.split("/")
    if (
        len(parts) == 6
        and (parts[0], parts[2], parts[4]) == ("application", "device", "event")
        and parts[1]
        and parts[5]
    ):
        return Topic("chirpstack", parts[1], _eui(parts[3], "the topic's DevEUI"), parts[5])
    if len(parts) >= 5 and (parts[0], parts[2]) == ("v3", "devices"):
        application, at, tenant = parts[1].partition("@")
        if application and (tenant or not at) and parts[3] and all(parts[4:]):
            return Topic("tts", application, parts[3], "/".join(parts[4:]))
    raise EnvelopeError(
        f"not a ChirpStack or The Things Stack event topic: {topic!r:.200}; expected "
        "application/{application_id}/device/{dev_eui}/event/{event} or "
        "v3/{application_id}[@{tenant_id}]/devices/{device_id}/{event}"
    )


def parse_event(network: str, event: str | None, body: Body) -> Uplink | None:
    """Read a message of the named network server; None when it carries no measurement.

    `event` is the topic's event or ChirpStack's `?event=` query parameter. The Things Stack
    names the message type in the body, so its webhooks can pass None.
    """
    if network == "chirpstack":
        if event is None:
            raise EnvelopeError(
                "a ChirpStack event needs its name, from the topic or the ?event= parameter"
            )
        return parse_chirpstack(event, body)
    if network == "tts":
        return parse_tts(body)
    raise EnvelopeError(f"unknown network server {network!r:.50}; expected chirpstack or tts")


def parse_chirpstack(event: str, body: Body) -> Uplink | None:
    """Read a ChirpStack v4 integration event; None for the events that carry no measurement."""
    if event in _CHIRPSTACK_OTHER:
        return None
    if event != _CHIRPSTACK_UPLINK:
        raise EnvelopeError(f"unknown ChirpStack event {event!r:.50}")
    up = _Fields(_load(body, "ChirpStack v4 uplink"), "ChirpStack v4 uplink")
    gateways = up.objects("rxInfo")
    rssi, snr = _best_signal(gateways, ("rssi",))
    return Uplink(
        network="chirpstack",
        dev_eui=up.eui("deviceInfo.devEui"),
        device_name=up.text("deviceInfo.deviceName"),
        application_id=up.required_text("deviceInfo.applicationId"),
        f_cnt=up.integer_or_zero("fCnt", 0, _UINT32),
        f_port=up.integer("fPort", 0, 255),
        payload=up.base64("data"),
        received_at=up.required_datetime("time"),
        rssi=rssi,
        snr=snr,
        gateway_count=len(gateways),
        frequency=up.integer("txInfo.frequency", 0, _UINT64),
        dr=up.integer_or_zero("dr", 0, 15),
        spreading_factor=up.integer("txInfo.modulation.lora.spreadingFactor", 5, 12),
        # ChirpStack reports a device's position in separate `location` events only.
        location=None,
        decoded=up.object("object"),
        device_profile=up.text("deviceInfo.deviceProfileName"),
        brand_id=None,
        model_id=None,
        tags=up.string_map("deviceInfo.tags"),
        # Battery levels arrive in `status` events: see parse_chirpstack_status.
        battery=None,
    )


def parse_chirpstack_status(body: Body) -> DeviceStatus:
    """Read a ChirpStack v4 `status` event."""
    status = _Fields(_load(body, "ChirpStack v4 status event"), "ChirpStack v4 status event")
    external_power = status.flag("externalPowerSource")
    level = status.number("batteryLevel", 0.0, 100.0)
    unknown = external_power or status.flag("batteryLevelUnavailable")
    return DeviceStatus(
        dev_eui=status.eui("deviceInfo.devEui"),
        received_at=status.required_datetime("time"),
        margin=status.integer_or_zero("margin", -32, 31),
        # An absent level is 0 %: ChirpStack leaves zero values out.
        battery=None if unknown else (level or 0.0),
        external_power=external_power,
    )


def parse_tts(body: Body) -> Uplink | None:
    """Read a The Things Stack v3 application message; None for the types with no measurement."""
    message = _Fields(_load(body, "The Things Stack v3 message"), "The Things Stack v3 uplink")
    if message.raw(_TTS_UPLINK) is None:
        if any(message.raw(key) is not None for key in _TTS_OTHER):
            return None
        raise EnvelopeError(
            "not a The Things Stack v3 message: it has none of the keys "
            + ", ".join((_TTS_UPLINK, *_TTS_OTHER))
        )
    up = message.sub(_TTS_UPLINK)
    gateways = up.objects("rx_metadata")
    # The network server's reception time is nearest to the measurement; the top-level time is
    # when the application server passed the message on.
    received_at = up.datetime("received_at") or message.required_datetime("received_at")
    rssi, snr = _best_signal(gateways, ("rssi", "channel_rssi"))
    return Uplink(
        network="tts",
        dev_eui=message.eui("end_device_ids.dev_eui"),
        device_name=message.text("end_device_ids.device_id"),
        application_id=message.required_text("end_device_ids.application_ids.application_id"),
        f_cnt=up.integer_or_zero("f_cnt", 0, _UINT32),
        f_port=up.integer("f_port", 0, 255),
        payload=up.base64("frm_payload"),
        received_at=received_at,
        rssi=rssi,
        snr=snr,
        gateway_count=len(gateways),
        frequency=up.integer("settings.frequency", 0, _UINT64),
        # The Things Stack gives the data rate as modulation parameters, not as an index.
        dr=None,
        spreading_factor=up.integer("settings.data_rate.lora.spreading_factor", 5, 12),
        location=_tts_location(up),
        decoded=up.object("decoded_payload"),
        device_profile=None,
        brand_id=up.text("version_ids.brand_id"),
        model_id=up.text("version_ids.model_id"),
        tags=up.string_map("attributes"),
        battery=_tts_battery(up),
    )


def _load(body: Body, what: str) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"not a {what}: the body is not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise EnvelopeError(f"not a {what}: the body is JSON but not an object")
    return message


def _eui(value: str, name: str) -> str:
    if not _EUI.fullmatch(value):
        raise EnvelopeError(f"{name} must be 16 hex digits, got {value!r:.50}")
    return value.lower()


def _best_signal(
    gateways: list[_Fields], rssi_keys: tuple[str, ...]
) -> tuple[float | None, float | None]:
    rssi: float | None = None
    snr: float | None = None
    for gateway in gateways:
        levels = [gateway.number(key) for key in rssi_keys]
        level = next((value for value in levels if value is not None), None)
        if level is None:
            continue
        # A gateway that measured the signal but shows no SNR measured 0 dB: both servers leave
        # zero values out.
        ratio = gateway.number("snr") or 0.0
        rssi = level if rssi is None else max(rssi, level)
        snr = ratio if snr is None else max(snr, ratio)
    return rssi, snr


def _tts_battery(up: _Fields) -> float | None:
    if up.object("last_battery_percentage") is None:
        return None
    # A flat battery reads 0 %, which The Things Stack leaves out like every zero value.
    return up.number("last_battery_percentage.value", 0.0, 100.0) or 0.0


def _tts_location(up: _Fields) -> tuple[float, float] | None:
    places = up.members("locations")
    # The registry position ("user") is where a fixed city sensor was installed; positions
    # solved from radio or payload vary from frame to frame.
    for source in sorted(places, key=lambda name: name != "user"):
        place = places[source]
        latitude = place.number("latitude")
        longitude = place.number("longitude")
        # A wrong registry entry must not cost the measurement, so an unusable position is
        # skipped rather than rejected; both coordinates are needed because a left-out
        # zero would put the device at 0° N 0° E.
        if (
            latitude is not None
            and longitude is not None
            and -90 <= latitude <= 90
            and -180 <= longitude <= 180
        ):
            return latitude, longitude
    return None


class _Fields:
    """Typed reads from one JSON object; every error names the field's full path."""

    __slots__ = ("_message", "_prefix", "_what")

    def __init__(self, message: Mapping[str, Any], what: str, prefix: str = "") -> None:
        self._message = message
        self._what = what
        self._prefix = prefix

    def _error(self, problem: str) -> EnvelopeError:
        return EnvelopeError(f"not a {self._what}: {problem}")

    def _wrong(self, path: str, expected: str, value: object) -> EnvelopeError:
        return self._error(f"{self._prefix}{path} must be {expected}, got {value!r:.60}")

    def raw(self, path: str) -> Any:
        """The value at a dotted path; None when it or a parent is absent or null."""
        node: Any = self._message
        walked = ""
        for key in path.split("."):
            if node is None:
                return None
            if not isinstance(node, Mapping):
                raise self._wrong(walked, "an object", node)
            node = node.get(key)
            walked = f"{walked}.{key}" if walked else key
        return node

    def sub(self, path: str) -> _Fields:
        return _Fields(self.object(path) or {}, self._what, f"{self._prefix}{path}.")

    def object(self, path: str) -> Mapping[str, Any] | None:
        value = self.raw(path)
        if value is not None and not isinstance(value, Mapping):
            raise self._wrong(path, "an object", value)
        return value

    def members(self, path: str) -> dict[str, _Fields]:
        found = self.object(path) or {}
        members: dict[str, _Fields] = {}
        for key, value in found.items():
            if not isinstance(value, Mapping):
                raise self._wrong(f"{path}.{key}", "an object", value)
            members[key] = _Fields(value, self._what, f"{self._prefix}{path}.{key}.")
        return members

    def objects(self, path: str) -> list[_Fields]:
        value = self.raw(path)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong(path, "an array", value)
        items: list[_Fields] = []
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise self._wrong(f"{path}[{index}]", "an object", item)
            items.append(_Fields(item, self._what, f"{self._prefix}{path}[{index}]."))
        return items

    def text(self, path: str) -> str | None:
        value = self.raw(path)
        if value is not None and not isinstance(value, str):
            raise self._wrong(path, "a string", value)
        return value or None

    def required_text(self, path: str) -> str:
        value = self.text(path)
        if value is None:
            raise self._error(f"missing {self._prefix}{path}")
        return value

    def eui(self, path: str) -> str:
        value = self.required_text(path)
        if not _EUI.fullmatch(value):
            raise self._wrong(path, "16 hex digits", value)
        return value.lower()

    def string_map(self, path: str) -> Mapping[str, str]:
        found = self.object(path) or {}
        for key, value in found.items():
            if not isinstance(value, str):
                raise self._wrong(f"{path}.{key}", "a string", value)
        return found

    def flag(self, path: str) -> bool:
        value = self.raw(path)
        if value is not None and not isinstance(value, bool):
            raise self._wrong(path, "true or false", value)
        return bool(value)

    def integer(self, path: str, low: int, high: int) -> int | None:
        value = self.raw(path)
        if value is None:
            return None
        # The Protobuf JSON mapping writes 64-bit integers as strings and accepts both forms.
        if isinstance(value, str) and _DIGITS.fullmatch(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._wrong(path, f"an integer from {low} to {high}", value)
        return value

    def integer_or_zero(self, path: str, low: int, high: int) -> int:
        """For the fields that are never unknown, only left out when they are 0."""
        value = self.integer(path, low, high)
        return 0 if value is None else value

    def number(self, path: str, low: float = -math.inf, high: float = math.inf) -> float | None:
        value = self.raw(path)
        if value is None:
            return None
        expected = "a number" if math.isinf(low) else f"a number from {low:g} to {high:g}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._wrong(path, expected, value)
        try:
            number = float(value)
        except OverflowError:
            raise self._wrong(path, expected, value) from None
        if not (math.isfinite(number) and low <= number <= high):
            raise self._wrong(path, expected, value)
        return number

    def base64(self, path: str) -> bytes:
        value = self.raw(path)
        if value is None:
            return b""
        if not isinstance(value, str):
            raise self._wrong(path, "a base64 string", value)
        try:
            return base64.b64decode(value, validate=True)
        # binascii.Error for bad padding or characters; plain ValueError for non-ASCII text.
        except ValueError:
            raise self._error(f"invalid base64 in {self._prefix}{path}") from None

    def datetime(self, path: str) -> str | None:
        value = self.raw(path)
        if value is None:
            return None
        try:
            return normalize_datetime(value, path)
        # normalize_datetime lets OverflowError through for instants that fall outside years
        # 1 to 9999 once moved to UTC.
        except (BadRequestData, OverflowError):
            raise self._wrong(path, "an ISO 8601 date-time", value) from None

    def required_datetime(self, path: str) -> str:
        value = self.datetime(path)
        if value is None:
            raise self._error(f"missing {self._prefix}{path}")
        return value
