"""Simulated envelopes read back, with the platform's own parser, as the frame that was sent."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from stadsnav.ingest import lorawan
from stadsnav.ingest.lorawan import Network
from stadsnav.sim import envelopes
from stadsnav.sim.envelopes import airtime, envelope
from stadsnav.sim.fleet import Device, build_fleet

SENT_AT = datetime(2026, 11, 23, 7, 45, 12, tzinfo=UTC).timestamp() + 0.25


@pytest.fixture(scope="module")
def fleet() -> list[Device]:
    return build_fleet(200, seed=5)


@pytest.mark.parametrize("network", ["chirpstack", "tts"])
@pytest.mark.parametrize("f_cnt", [0, 1, 4711, 2**32 - 1])
def test_an_envelope_parses_back_to_the_same_frame(
    fleet: list[Device], network: Network, f_cnt: int
) -> None:
    for device in fleet[::7]:
        payload = random.Random(f_cnt).randbytes(11)
        message = envelope(
            network,
            device,
            f_cnt=f_cnt,
            fport=85,
            payload=payload,
            sent_at=SENT_AT,
            rng=random.Random(1),
        )
        topic = lorawan.parse_topic(message.topic)
        assert topic.network == network
        assert topic.event == "up"
        path, _, query = message.http_path.partition("?")
        assert path == f"/ingest/{network}"
        event = query.removeprefix("event=") if query else None
        uplink = lorawan.parse_event(network, event, message.body)
        assert uplink is not None
        assert uplink.dev_eui == device.dev_eui
        assert uplink.f_cnt == f_cnt
        assert uplink.f_port == 85
        assert uplink.payload == payload
        assert uplink.device_name == device.name
        assert uplink.application_id == topic.application_id
        assert topic.device_key == (device.dev_eui if network == "chirpstack" else device.name)
        assert 1 <= uplink.gateway_count <= 3
        assert uplink.rssi is not None
        assert -140 < uplink.rssi < -30
        assert uplink.snr is not None
        assert -25 < uplink.snr < 15
        assert uplink.spreading_factor in range(7, 13)
        assert uplink.received_at.startswith("2026-11-23T07:45:12.")
        if network == "tts":
            assert uplink.location == (device.lat, device.lon)


def test_chirpstack_leaves_zero_values_out_as_protobuf_json_does(fleet: list[Device]) -> None:
    message = envelope(
        "chirpstack",
        fleet[0],
        f_cnt=0,
        fport=1,
        payload=b"\x01",
        sent_at=SENT_AT,
        rng=random.Random(0),
    )
    body = json.loads(message.body)
    assert "fCnt" not in body
    assert body["fPort"] == 1
    assert body["deviceInfo"]["deviceProfileName"] == fleet[0].model
    assert body["txInfo"]["modulation"]["lora"]["bandwidth"] == 125000


def test_the_envelope_is_a_function_of_its_inputs(fleet: list[Device]) -> None:
    def make() -> envelopes.Message:
        return envelope(
            "tts",
            fleet[3],
            f_cnt=9,
            fport=2,
            payload=b"\x00\x01",
            sent_at=SENT_AT,
            rng=random.Random(42),
        )

    assert make() == make()


def test_time_on_air_matches_the_lora_calculators() -> None:
    # 10 bytes of payload make a 23-byte PHY payload: 61.7 ms at SF7, 1482.8 ms at SF12.
    assert airtime(7, 10) == pytest.approx(0.061696)
    assert airtime(12, 10) == pytest.approx(1.482752)
    assert airtime(7, 10) < airtime(7, 40) < airtime(9, 40)


def test_adaptive_data_rate_gives_far_devices_slower_rates(fleet: list[Device]) -> None:
    factors = {envelopes.spreading_factor(device) for device in fleet}
    assert 7 in factors
    assert factors <= set(range(7, 13))
