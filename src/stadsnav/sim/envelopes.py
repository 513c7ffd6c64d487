"""Network-server envelopes: a device's payload as ChirpStack v4 or The Things Stack v3 delivers
it to an application, with the MQTT topic and HTTP path it arrives on.

The radio side is simulated too, so that signal fields look like a real city network's: one
gateway per district (``fleet.gateways``), each device heard by up to three of them with a
log-distance path loss plus the loss of where it is mounted (inside a metal container, in a
basement), shadowing that varies per uplink, a spreading factor that adaptive data rate would
have settled on, and the frame's true time on air.
"""

from __future__ import annotations

import base64
import functools
import math
import random
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from stadsnav.ingest.lorawan import Network
from stadsnav.sim.fleet import Device, Gateway, gateways, slug

TENANT = "stockholm"
TENANT_NAME = "Stockholms stad"
NET_ID = "000013"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "sim.stadsnav")

# EU868: the three default channels and the five a network commonly adds, in Hz.
_CHANNELS = (868100000, 868300000, 868500000, 867100000, 867300000, 867500000, 867700000, 867900000)
_BANDWIDTH = 125000
# Receiver sensitivity per spreading factor at 125 kHz (Semtech SX1276 data sheet), dBm.
_SENSITIVITY = {7: -123.0, 8: -126.0, 9: -129.0, 10: -132.0, 11: -134.5, 12: -137.0}
# Adaptive data rate keeps this margin over the sensitivity on the best gateway.
_ADR_MARGIN = 10.0
# Thermal noise over 125 kHz plus a gateway's noise figure; LoRa's SNR reading saturates
# near +10 dB.
_NOISE_FLOOR = -117.0
_SNR_CEILING = 10.0
_SHADOWING_DB = 4.0
_MAX_GATEWAYS = 3
# Where a device is mounted costs signal: the lid of a metal container, a meter in a basement.
_MOUNTING_LOSS = {
    "WasteContainer": (8.0, 18.0),
    "WaterConsumptionObserved": (15.0, 25.0),
    "IndoorEnvironmentObserved": (5.0, 12.0),
}
_OUTDOOR_LOSS = (0.0, 5.0)
# LoRaWAN framing around the application payload: MHDR, FHDR without options, FPort, MIC.
_LORAWAN_OVERHEAD = 1 + 7 + 1 + 4
# From the end of the frame on air to the network server's and the application's clocks.
_BACKHAUL = 0.02
_APPLICATION_DELAY = 0.03


class Message(NamedTuple):
    """One delivery: where it goes over MQTT and over HTTP, and the JSON body."""

    topic: str
    http_path: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Reception:
    gateway: Gateway
    rssi: int
    snr: float


def airtime(spreading_factor: int, payload_size: int) -> float:
    """Seconds a LoRa frame with this application payload is on air (Semtech AN1200.13, 125 kHz,
    coding rate 4/5, explicit header, CRC on, 8 preamble symbols)."""
    symbol = (1 << spreading_factor) / _BANDWIDTH
    low_rate = 1 if spreading_factor >= 11 else 0
    bits = 8 * (payload_size + _LORAWAN_OVERHEAD) - 4 * spreading_factor + 28 + 16
    payload_symbols = 8 + max(math.ceil(bits / (4 * (spreading_factor - 2 * low_rate))) * 5, 0)
    return (8 + 4.25 + payload_symbols) * symbol


def _distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    # Equirectangular: exact enough within a city.
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    y = math.radians(lat2 - lat1)
    return 6371000 * math.hypot(x, y)


@functools.lru_cache(maxsize=65536)
def _links(device: Device) -> tuple[tuple[Gateway, float], ...]:
    """The gateways that hear the device, strongest first, with their mean RSSI."""
    low, high = _MOUNTING_LOSS.get(device.target_type or "", _OUTDOOR_LOSS)
    mounting = random.Random(f"mounting:{device.dev_eui}").uniform(low, high)
    links = []
    for gateway in gateways():
        metres = max(20.0, _distance_m(device.lon, device.lat, gateway.lon, gateway.lat))
        # Urban log-distance path loss: -60 dBm at 100 m, 35 dB per decade.
        links.append((gateway, -60.0 - 35.0 * math.log10(metres / 100) - mounting))
    links.sort(key=lambda link: -link[1])
    return tuple(links[:_MAX_GATEWAYS])


def spreading_factor(device: Device) -> int:
    best = _links(device)[0][1]
    for factor, sensitivity in _SENSITIVITY.items():
        if best - sensitivity >= _ADR_MARGIN:
            return factor
    return 12


def receive(device: Device, rng: random.Random) -> list[Reception]:
    """The gateways that hear this uplink. The strongest always does: a frame nobody heard
    would never reach the platform, and losses belong to the configured faults."""
    sensitivity = _SENSITIVITY[spreading_factor(device)]
    heard = []
    for index, (gateway, mean) in enumerate(_links(device)):
        rssi = mean + rng.gauss(0, _SHADOWING_DB)
        if index and rssi < sensitivity:
            continue
        snr = min(rssi - _NOISE_FLOOR, _SNR_CEILING) + rng.gauss(0, 1.0)
        heard.append(Reception(gateway, round(rssi), round(snr, 1)))
    return heard


def _kebab(type_name: str) -> str:
    return slug(re.sub(r"(?<!^)(?=[A-Z])", " ", type_name))


def application(device: Device) -> str:
    """The network-server application a device belongs to: one per kind of entity measured,
    as a city sets them up per service (waste, lighting, water); meters have their own."""
    return _kebab(device.target_type) if device.target_type else "water-meters"


def _uuid(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}"))


def _chirpstack_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="microseconds")


def _tts_time(timestamp: float) -> str:
    return _chirpstack_time(timestamp).replace("+00:00", "Z")


def _dev_addr(device: Device) -> str:
    # A device address of NetID type 0 with network id 0: seven zero bits, then 25 bits.
    return f"{int(device.dev_eui, 16) % (1 << 25):08x}"


def envelope(
    network: Network,
    device: Device,
    *,
    f_cnt: int,
    fport: int,
    payload: bytes,
    sent_at: float,
    rng: random.Random,
) -> Message:
    """The message the network server delivers for a frame the device started sending at
    ``sent_at`` (Unix seconds)."""
    factor = spreading_factor(device)
    heard = receive(device, rng)
    received_at = sent_at + airtime(factor, len(payload))
    channel = rng.randrange(len(_CHANNELS))
    if network == "chirpstack":
        body = _chirpstack(device, f_cnt, fport, payload, received_at, factor, channel, heard, rng)
        topic = (
            f"application/{body['deviceInfo']['applicationId']}/device/{device.dev_eui}/event/up"
        )
        return Message(topic, "/ingest/chirpstack?event=up", orjson.dumps(body))
    body = _tts(device, f_cnt, fport, payload, received_at, factor, channel, heard, rng)
    topic = f"v3/{application(device)}@{TENANT}/devices/{device.name}/up"
    return Message(topic, "/ingest/tts", orjson.dumps(body))


def _chirpstack(
    device: Device,
    f_cnt: int,
    fport: int,
    payload: bytes,
    received_at: float,
    factor: int,
    channel: int,
    heard: Sequence[Reception],
    rng: random.Random,
) -> dict[str, Any]:
    """A ChirpStack v4 ``up`` event in its Protobuf JSON form, which leaves out zero values."""
    ns_time = _chirpstack_time(received_at + _BACKHAUL)
    body: dict[str, Any] = {
        "deduplicationId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "time": _chirpstack_time(received_at),
        "deviceInfo": {
            "tenantId": _uuid("tenant", TENANT),
            "tenantName": TENANT_NAME,
            "applicationId": _uuid("application", application(device)),
            "applicationName": application(device),
            "deviceProfileId": _uuid("profile", device.model),
            "deviceProfileName": device.model,
            "deviceName": device.name,
            "devEui": device.dev_eui,
            "deviceClassEnabled": "CLASS_A",
            "tags": {"district": device.district},
        },
        "devAddr": _dev_addr(device),
        "adr": True,
        "dr": 12 - factor,
        "fCnt": f_cnt,
        "fPort": fport,
        "data": base64.b64encode(payload).decode(),
        "rxInfo": [
            {
                "gatewayId": reception.gateway.eui,
                "uplinkId": rng.getrandbits(32),
                "nsTime": ns_time,
                "rssi": reception.rssi,
                "snr": reception.snr,
                "channel": channel,
                "location": {
                    "latitude": reception.gateway.lat,
                    "longitude": reception.gateway.lon,
                },
                "context": base64.b64encode(rng.randbytes(4)).decode(),
                "metadata": {"region_config_id": "eu868", "region_common_name": "EU868"},
                "crcStatus": "CRC_OK",
            }
            for reception in heard
        ],
        "txInfo": {
            "frequency": _CHANNELS[channel],
            "modulation": {
                "lora": {
                    "bandwidth": _BANDWIDTH,
                    "spreadingFactor": factor,
                    "codeRate": "CR_4_5",
                }
            },
        },
    }
    pruned: dict[str, Any] = _without_zeros(body)
    return pruned


def _tts(
    device: Device,
    f_cnt: int,
    fport: int,
    payload: bytes,
    received_at: float,
    factor: int,
    channel: int,
    heard: Sequence[Reception],
    rng: random.Random,
) -> dict[str, Any]:
    """A The Things Stack v3 ``ApplicationUp`` with an uplink message; zero values left out."""
    gateway_time = _tts_time(received_at)
    server_time = _tts_time(received_at + _BACKHAUL)
    timestamp = rng.getrandbits(32)
    body: dict[str, Any] = {
        "end_device_ids": {
            "device_id": device.name,
            "application_ids": {"application_id": application(device)},
            "dev_eui": device.dev_eui.upper(),
            "dev_addr": _dev_addr(device).upper(),
        },
        "correlation_ids": [
            f"as:up:{_ulid(received_at, rng)}",
            f"gs:uplink:{_ulid(received_at, rng)}",
        ],
        "received_at": _tts_time(received_at + _BACKHAUL + _APPLICATION_DELAY),
        "uplink_message": {
            "session_key_id": base64.b64encode(
                random.Random(f"session:{device.dev_eui}").randbytes(16)
            ).decode(),
            "f_port": fport,
            "f_cnt": f_cnt,
            "frm_payload": base64.b64encode(payload).decode(),
            "rx_metadata": [
                {
                    "gateway_ids": {
                        "gateway_id": reception.gateway.name,
                        "eui": reception.gateway.eui.upper(),
                    },
                    "time": gateway_time,
                    "timestamp": timestamp,
                    "rssi": reception.rssi,
                    "channel_rssi": reception.rssi,
                    "snr": reception.snr,
                    "location": {
                        "latitude": reception.gateway.lat,
                        "longitude": reception.gateway.lon,
                        "source": "SOURCE_REGISTRY",
                    },
                    "uplink_token": base64.b64encode(rng.randbytes(24)).decode(),
                    "channel_index": channel,
                    "received_at": server_time,
                }
                for reception in heard
            ],
            "settings": {
                "data_rate": {
                    "lora": {
                        "bandwidth": _BANDWIDTH,
                        "spreading_factor": factor,
                        "coding_rate": "4/5",
                    }
                },
                # The Things Stack writes 64-bit integers as strings.
                "frequency": str(_CHANNELS[channel]),
                "timestamp": timestamp,
                "time": gateway_time,
            },
            "received_at": server_time,
            "consumed_airtime": f"{airtime(factor, len(payload)):.6f}s",
            "locations": {
                "user": {
                    "latitude": device.lat,
                    "longitude": device.lon,
                    "source": "SOURCE_REGISTRY",
                }
            },
            "network_ids": {"net_id": NET_ID, "tenant_id": TENANT, "cluster_id": "eu1"},
            "attributes": {"district": device.district},
        },
    }
    pruned: dict[str, Any] = _without_zeros(body)
    return pruned


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _ulid(timestamp: float, rng: random.Random) -> str:
    """A ULID, as The Things Stack's correlation ids carry: 48 bits of milliseconds, 80 random
    bits, in Crockford's base 32."""
    value = (round(timestamp * 1000) << 80) | rng.getrandbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _without_zeros(node: Any) -> Any:
    """Both servers leave out fields holding their type's zero value: 0, "", false, empty."""
    if isinstance(node, dict):
        kept = {key: _without_zeros(value) for key, value in node.items()}
        return {key: value for key, value in kept.items() if value not in (0, "", False, {}, [])}
    if isinstance(node, list):
        return [_without_zeros(item) for item in node]
    return node
