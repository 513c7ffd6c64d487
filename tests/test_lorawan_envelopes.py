"""LoRaWAN network-server events read into one uplink record (ingest/lorawan.py)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stadsnav.ingest.lorawan import (
    DeviceStatus,
    EnvelopeError,
    Topic,
    Uplink,
    parse_chirpstack,
    parse_chirpstack_status,
    parse_event,
    parse_topic,
    parse_tts,
)

SAMPLES = Path(__file__).parent / "data" / "lorawan"


def raw(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(raw(name))
    return loaded


def test_chirpstack_up_sample_reads_every_field() -> None:
    up = parse_chirpstack("up", raw("chirpstack-v4-up.json"))

    assert up == Uplink(
        network="chirpstack",
        dev_eui="0101010101010101",
        device_name="Test device",
        application_id="17c82e96-be03-4f38-aef3-f83d48582d97",
        # The sample has no fCnt: ChirpStack left the zero value out.
        f_cnt=0,
        f_port=1,
        payload=b"\xaa",
        received_at="2022-07-18T09:34:15.775023Z",
        rssi=-36.0,
        snr=10.5,
        gateway_count=1,
        frequency=867100000,
        dr=1,
        spreading_factor=11,
        location=None,
        decoded=None,
        device_profile="Test device-profile",
        brand_id=None,
        model_id=None,
        tags={"key": "value"},
        battery=None,
    )


def test_tts_uplink_sample_reads_every_field() -> None:
    up = parse_tts(raw("tts-v3-uplink.json"))

    assert up == Uplink(
        network="tts",
        dev_eui="0004a30b001c0530",
        device_name="dev1",
        application_id="app1",
        f_cnt=1,
        # The documentation's sample shows no f_port.
        f_port=None,
        payload=bytes([0x82, 0x41, 0xDE]),
        # The network server's reception, not the application server's later top-level time.
        received_at="2020-02-12T15:15:45.789585Z",
        rssi=-35.0,
        snr=5.0,
        gateway_count=1,
        frequency=868300000,
        dr=None,
        spreading_factor=7,
        location=(37.97155556731436, 23.72678801175413),
        decoded={"temperature": 1.0, "luminosity": 0.64},
        device_profile=None,
        brand_id="the-things-products",
        model_id="the-things-uno",
        tags={"key1": "value1", "key2": "value2"},
        battery=None,
    )


def test_a_body_reads_the_same_as_bytes_or_as_a_parsed_mapping() -> None:
    assert parse_chirpstack("up", sample("chirpstack-v4-up.json")) == parse_chirpstack(
        "up", raw("chirpstack-v4-up.json")
    )
    assert parse_tts(sample("tts-v3-uplink.json")) == parse_tts(raw("tts-v3-uplink.json"))


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ("join", "chirpstack-v4-join.json"),
        ("status", "chirpstack-v4-status.json"),
        ("ack", "chirpstack-v4-ack.json"),
        ("txack", "chirpstack-v4-txack.json"),
        ("log", "chirpstack-v4-log.json"),
        ("location", "chirpstack-v4-location.json"),
        ("integration", "chirpstack-v4-integration.json"),
    ],
)
def test_chirpstack_events_without_a_measurement_give_none(event: str, name: str) -> None:
    assert parse_chirpstack(event, raw(name)) is None


@pytest.mark.parametrize(
    "name",
    [
        "tts-v3-join-accept.json",
        "tts-v3-downlink-ack.json",
        "tts-v3-downlink-failed.json",
        "tts-v3-downlink-push.json",
    ],
)
def test_tts_messages_without_a_measurement_give_none(name: str) -> None:
    assert parse_tts(raw(name)) is None


def test_chirpstack_status_event_gives_battery_and_margin() -> None:
    status = parse_chirpstack_status(raw("chirpstack-v4-status.json"))

    assert status == DeviceStatus(
        dev_eui="0101010101010101",
        received_at="2022-07-18T09:35:06.927172Z",
        margin=10,
        battery=88.3,
        external_power=False,
    )


@pytest.mark.parametrize("flag", ["externalPowerSource", "batteryLevelUnavailable"])
def test_status_without_a_battery_reading_has_no_battery_level(flag: str) -> None:
    body = sample("chirpstack-v4-status.json") | {flag: True}

    assert parse_chirpstack_status(body).battery is None


def test_status_left_out_zero_values_read_as_zero() -> None:
    body = sample("chirpstack-v4-status.json")
    del body["margin"], body["batteryLevel"]

    status = parse_chirpstack_status(body)

    assert (status.margin, status.battery) == (0, 0.0)


def test_uplink_takes_the_best_rssi_and_snr_of_all_gateways() -> None:
    body = sample("chirpstack-v4-up.json")
    body["rxInfo"] = [
        {"gatewayId": "a", "rssi": -110, "snr": 7.5},
        {"gatewayId": "b", "rssi": -90, "snr": -3.0},
        {"gatewayId": "c", "snr": 12.0},
    ]

    up = parse_chirpstack("up", body)

    assert up is not None
    assert (up.rssi, up.snr, up.gateway_count) == (-90.0, 7.5, 3)


def test_gateway_that_shows_no_snr_measured_zero() -> None:
    body = sample("tts-v3-uplink.json")
    del body["uplink_message"]["rx_metadata"][0]["snr"]

    up = parse_tts(body)

    assert up is not None
    assert up.snr == 0.0


def test_tts_rssi_falls_back_to_channel_rssi() -> None:
    body = sample("tts-v3-uplink.json")
    del body["uplink_message"]["rx_metadata"][0]["rssi"]
    body["uplink_message"]["rx_metadata"][0]["channel_rssi"] = -101

    up = parse_tts(body)

    assert up is not None
    assert up.rssi == -101.0


def test_uplink_heard_by_no_gateway_has_no_signal_values() -> None:
    body = sample("chirpstack-v4-up.json")
    del body["rxInfo"]

    up = parse_chirpstack("up", body)

    assert up is not None
    assert (up.rssi, up.snr, up.gateway_count) == (None, None, 0)


def test_uplink_without_data_has_an_empty_payload_and_no_port() -> None:
    body = sample("chirpstack-v4-up.json")
    del body["fPort"]
    body["data"] = None

    up = parse_chirpstack("up", body)

    assert up is not None
    assert (up.payload, up.f_port) == (b"", None)


def test_tts_first_frame_after_join_has_frame_counter_zero() -> None:
    body = sample("tts-v3-uplink.json")
    del body["uplink_message"]["f_cnt"]

    up = parse_tts(body)

    assert up is not None
    assert up.f_cnt == 0


def test_tts_uses_the_top_level_time_when_the_network_server_time_is_missing() -> None:
    body = sample("tts-v3-uplink.json")
    del body["uplink_message"]["received_at"]

    up = parse_tts(body)

    assert up is not None
    assert up.received_at == "2020-02-12T15:15:46.014773Z"


def test_chirpstack_codec_output_becomes_decoded() -> None:
    body = sample("chirpstack-v4-up.json") | {"object": {"temperature": 21.5}}

    up = parse_chirpstack("up", body)

    assert up is not None
    assert up.decoded == {"temperature": 21.5}


def test_tts_battery_comes_from_the_last_device_status() -> None:
    body = sample("tts-v3-uplink.json")
    body["uplink_message"]["last_battery_percentage"] = {"f_cnt": 14, "value": 90.1}

    up = parse_tts(body)

    assert up is not None
    assert up.battery == 90.1


def test_tts_battery_left_out_as_zero_reads_as_flat() -> None:
    body = sample("tts-v3-uplink.json")
    body["uplink_message"]["last_battery_percentage"] = {"f_cnt": 14}

    up = parse_tts(body)

    assert up is not None
    assert up.battery == 0.0


def test_tts_location_prefers_the_registry_position() -> None:
    body = sample("tts-v3-uplink.json")
    registry = body["uplink_message"]["locations"]["user"]
    body["uplink_message"]["locations"] = {
        "frm-payload": {"latitude": 59.3, "longitude": 18.0},
        "user": registry,
    }

    up = parse_tts(body)

    assert up is not None
    assert up.location == (37.97155556731436, 23.72678801175413)


@pytest.mark.parametrize(
    "user",
    [{"latitude": 91.0, "longitude": 18.0}, {"latitude": 59.3}, {"longitude": 18.0}],
    ids=["out-of-range", "no-longitude", "no-latitude"],
)
def test_tts_unusable_position_is_skipped_not_fatal(user: dict[str, float]) -> None:
    body = sample("tts-v3-uplink.json")
    body["uplink_message"]["locations"] = {"user": user, "gps": {"latitude": 1, "longitude": 2}}

    up = parse_tts(body)

    assert up is not None
    assert up.location == (1.0, 2.0)


def test_tts_integers_given_as_protobuf_json_strings_are_read() -> None:
    body = sample("tts-v3-uplink.json")
    body["uplink_message"]["f_cnt"] = "7"

    up = parse_tts(body)

    assert up is not None
    assert (up.f_cnt, up.frequency) == (7, 868300000)


_DELETE = object()


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = changed
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("deviceInfo.devEui", _DELETE, "not a ChirpStack v4 uplink: missing deviceInfo.devEui"),
        ("deviceInfo.devEui", "01010101", "deviceInfo.devEui must be 16 hex digits"),
        ("deviceInfo.applicationId", _DELETE, "missing deviceInfo.applicationId"),
        ("deviceInfo", "Test device", "deviceInfo must be an object"),
        ("data", "qg=", "invalid base64 in data"),
        ("data", "q g==", "invalid base64 in data"),
        ("data", "qg\u00e9=", "invalid base64 in data"),
        ("data", 170, "data must be a base64 string"),
        ("fCnt", "one", "fCnt must be an integer from 0 to 4294967295"),
        ("fCnt", -1, "fCnt must be an integer"),
        ("fCnt", 1.5, "fCnt must be an integer"),
        ("fCnt", True, "fCnt must be an integer"),
        ("fPort", 256, "fPort must be an integer from 0 to 255"),
        ("time", _DELETE, "missing time"),
        ("time", "yesterday", "time must be an ISO 8601 date-time"),
        ("time", "0001-01-01T00:00:00+01:00", "time must be an ISO 8601 date-time"),
        ("rxInfo", {"gatewayId": "x"}, "rxInfo must be an array"),
        ("rxInfo", [-36], "rxInfo[0] must be an object"),
        ("rxInfo", [{"rssi": "-36"}], "rxInfo[0].rssi must be a number"),
        ("txInfo.modulation.lora.spreadingFactor", 13, "spreadingFactor must be an integer"),
        ("object", [1, 2], "object must be an object"),
        ("deviceInfo.tags", {"key": 1}, "deviceInfo.tags.key must be a string"),
    ],
)
def test_malformed_chirpstack_uplink_is_rejected_with_the_reason(
    path: str, value: Any, reason: str
) -> None:
    body = _set(sample("chirpstack-v4-up.json"), path, value)

    with pytest.raises(EnvelopeError, match=re.escape(reason)):
        parse_chirpstack("up", body)


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("end_device_ids.dev_eui", _DELETE, "missing end_device_ids.dev_eui"),
        (
            "end_device_ids.application_ids",
            _DELETE,
            "missing end_device_ids.application_ids.application_id",
        ),
        ("uplink_message.frm_payload", "gkHe!", "invalid base64 in uplink_message.frm_payload"),
        ("uplink_message.f_cnt", True, "uplink_message.f_cnt must be an integer"),
        ("uplink_message.f_port", "one", "uplink_message.f_port must be an integer"),
        ("uplink_message.decoded_payload", "1.0", "decoded_payload must be an object"),
        ("uplink_message.settings.frequency", "868.3", "settings.frequency must be an integer"),
        ("uplink_message.locations", [], "uplink_message.locations must be an object"),
        ("uplink_message.locations.user", 1, "uplink_message.locations.user must be an object"),
        ("uplink_message.locations.user.latitude", "37.9", "latitude must be a number"),
        ("uplink_message", "gkHe", "uplink_message must be an object"),
        (
            "uplink_message.last_battery_percentage",
            {"value": 150},
            "last_battery_percentage.value must be a number from 0 to 100",
        ),
    ],
)
def test_malformed_tts_uplink_is_rejected_with_the_reason(
    path: str, value: Any, reason: str
) -> None:
    body = _set(sample("tts-v3-uplink.json"), path, value)

    with pytest.raises(EnvelopeError, match=re.escape(reason)):
        parse_tts(body)


def test_tts_uplink_without_any_reception_time_is_rejected() -> None:
    body = sample("tts-v3-uplink.json")
    del body["received_at"], body["uplink_message"]["received_at"]

    with pytest.raises(EnvelopeError, match="missing received_at"):
        parse_tts(body)


def test_tts_message_of_no_known_type_is_rejected() -> None:
    body = sample("tts-v3-uplink.json")
    del body["uplink_message"]

    with pytest.raises(EnvelopeError, match="none of the keys uplink_message, "):
        parse_tts(body)


def test_downlink_command_read_as_an_uplink_is_rejected() -> None:
    with pytest.raises(EnvelopeError, match=r"missing deviceInfo\.devEui"):
        parse_chirpstack("up", raw("chirpstack-v4-command-down.json"))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the body is not JSON"),
        (b"{", "the body is not JSON"),
        (b"\xff\xfe", "the body is not JSON"),
        (b"[1, 2]", "the body is JSON but not an object"),
        (b'"up"', "the body is JSON but not an object"),
    ],
)
def test_body_that_is_not_a_json_object_is_rejected(body: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError, match=reason):
        parse_chirpstack("up", body)
    with pytest.raises(EnvelopeError, match=reason):
        parse_tts(body)
    with pytest.raises(EnvelopeError, match=reason):
        parse_chirpstack_status(body)


def test_unknown_chirpstack_event_is_rejected() -> None:
    with pytest.raises(EnvelopeError, match="unknown ChirpStack event 'uplink'"):
        parse_chirpstack("uplink", raw("chirpstack-v4-up.json"))


def test_parse_event_dispatches_on_the_network() -> None:
    assert parse_event("chirpstack", "up", raw("chirpstack-v4-up.json")) == parse_chirpstack(
        "up", raw("chirpstack-v4-up.json")
    )
    assert parse_event("chirpstack", "join", raw("chirpstack-v4-join.json")) is None
    assert parse_event("tts", None, raw("tts-v3-uplink.json")) == parse_tts(
        raw("tts-v3-uplink.json")
    )


def test_parse_event_needs_the_chirpstack_event_name() -> None:
    with pytest.raises(EnvelopeError, match=r"needs its name"):
        parse_event("chirpstack", None, raw("chirpstack-v4-up.json"))


def test_parse_event_rejects_an_unknown_network() -> None:
    with pytest.raises(EnvelopeError, match="unknown network server 'netmore'"):
        parse_event("netmore", "up", raw("chirpstack-v4-up.json"))


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        (
            "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up",
            Topic("chirpstack", "17c82e96-be03-4f38-aef3-f83d48582d97", "0101010101010101", "up"),
        ),
        (
            "application/a1/device/0004A30B001C0530/event/status",
            Topic("chirpstack", "a1", "0004a30b001c0530", "status"),
        ),
        ("v3/app1@tenant1/devices/dev1/up", Topic("tts", "app1", "dev1", "up")),
        ("v3/app1/devices/dev1/up", Topic("tts", "app1", "dev1", "up")),
        ("v3/app1@ttn/devices/dev1/down/ack", Topic("tts", "app1", "dev1", "down/ack")),
        (
            "v3/app1@tenant1/devices/dev1/location/solved",
            Topic("tts", "app1", "dev1", "location/solved"),
        ),
    ],
)
def test_topic_of_either_layout_is_split(topic: str, expected: Topic) -> None:
    assert parse_topic(topic) == expected


def test_topic_then_event_reads_the_uplink() -> None:
    network, _, _, event = parse_topic(
        "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up"
    )

    up = parse_event(network, event, raw("chirpstack-v4-up.json"))

    assert up is not None
    assert up.dev_eui == "0101010101010101"


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "application/a1/device/0101010101010101/command/down",
        "application/a1/device/not-an-eui/event/up",
        "application//device/0101010101010101/event/up",
        "application/a1/device/0101010101010101/event/",
        "application/a1/device/0101010101010101/event/up/extra",
        "v3/app1@tenant1/devices/dev1",
        "v3/app1@/devices/dev1/up",
        "v3/@tenant1/devices/dev1/up",
        "v3/app1/devices//up",
        "v3/app1/devices/dev1/down/",
        "v2/app1/devices/dev1/up",
        "gateway/0016c001f153a14c/event/up",
    ],
)
def test_topic_of_no_known_layout_is_rejected(topic: str) -> None:
    with pytest.raises(EnvelopeError):
        parse_topic(topic)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=12), json_values, max_size=6)


def _paths(node: Any, prefix: str = "") -> list[str]:
    """Every dotted path of a sample, for replacing one field at a time."""
    if not isinstance(node, dict):
        return []
    found: list[str] = []
    for key, value in node.items():
        found.append(prefix + key)
        found.extend(_paths(value, f"{prefix}{key}."))
    return found


_MEASUREMENT_SAMPLES = ["chirpstack-v4-up.json", "tts-v3-uplink.json", "chirpstack-v4-status.json"]


def _read_each_way(body: dict[str, Any] | bytes) -> None:
    """Every reader either returns or raises EnvelopeError with a reason: nothing else escapes."""
    reasons: list[str] = []
    for read in (lambda b: parse_chirpstack("up", b), parse_tts, parse_chirpstack_status):
        try:
            read(body)
        except EnvelopeError as exc:
            reasons.append(str(exc))
    assert all(reasons)


@settings(max_examples=300)
@given(json_objects)
def test_any_json_object_parses_or_raises_envelope_error(body: dict[str, Any]) -> None:
    _read_each_way(body)
    # The standard library writes integers of any size, as a sender might.
    _read_each_way(json.dumps(body).encode())


@settings(max_examples=300)
@given(st.data())
def test_a_sample_with_any_one_field_replaced_parses_or_raises_envelope_error(
    data: st.DataObject,
) -> None:
    body = sample(data.draw(st.sampled_from(_MEASUREMENT_SAMPLES)))
    path = data.draw(st.sampled_from(_paths(body)))

    _read_each_way(_set(body, path, data.draw(json_values)))


@given(st.binary(max_size=64))
def test_any_bytes_parse_or_raise_envelope_error(body: bytes) -> None:
    _read_each_way(body)


@given(st.text(max_size=80))
def test_any_topic_splits_into_non_empty_parts_or_raises_envelope_error(topic: str) -> None:
    try:
        split = parse_topic(topic)
    except EnvelopeError:
        return
    assert all(split)
