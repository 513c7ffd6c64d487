"""Sending one notification over its endpoint's binding: HTTP(S) (clause 7.2) or MQTT
(clause 7.x, the MQTT binding: a message {"metadata": ..., "body": ...} on the URI's topic)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
import orjson

from stadsnav.ngsild.subscription import Endpoint
from stadsnav.notify.http import HttpClient, HttpFailed

CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"


class DeliveryFailed(Exception):
    """The receiver did not take the notification (the reason is kept as lastErrorReason)."""


@dataclass(frozen=True)
class Outgoing:
    """A rendered notification and what goes with it on the wire."""

    body: dict[str, Any]
    media: str  # application/json, application/ld+json or application/geo+json
    context_url: str  # the Link header's @context (not sent with application/ld+json)
    tenant: str

    def headers(self, endpoint: Endpoint) -> dict[str, str]:
        headers = {"Content-Type": self.media}
        if self.media != "application/ld+json":
            headers["Link"] = (
                f'<{self.context_url}>; rel="{CONTEXT_REL}"; type="application/ld+json"'
            )
        if self.tenant:
            headers["NGSILD-Tenant"] = self.tenant
        for key, value in endpoint.receiver_info:
            headers[key] = value
        return headers


async def send(http: HttpClient, endpoint: Endpoint, outgoing: Outgoing, limit: float) -> None:
    if endpoint.timeout_ms is not None:
        limit = min(limit, endpoint.timeout_ms / 1000)
    if endpoint.scheme in ("http", "https"):
        await _post(http, endpoint, outgoing, limit)
    else:
        await _publish(endpoint, outgoing, limit)


async def _post(http: HttpClient, endpoint: Endpoint, outgoing: Outgoing, limit: float) -> None:
    try:
        status = await http.post(
            endpoint.uri, orjson.dumps(outgoing.body), outgoing.headers(endpoint), limit
        )
    except TimeoutError:
        raise DeliveryFailed(f"No answer within {limit:g} s") from None
    except HttpFailed as error:
        raise DeliveryFailed(f"{error}"[:300]) from None
    if not 200 <= status < 300:
        raise DeliveryFailed(f"HTTP {status} from the receiver")


async def _publish(endpoint: Endpoint, outgoing: Outgoing, limit: float) -> None:
    parts = urlsplit(endpoint.uri)
    topic = unquote(parts.path.lstrip("/"))
    version = endpoint.notifier("MQTT-Version") or "mqtt5.0"
    qos = int(endpoint.notifier("MQTT-QoS") or "0")
    payload = {"metadata": outgoing.headers(endpoint), "body": outgoing.body}
    try:
        async with aiomqtt.Client(
            parts.hostname or "",
            parts.port or (8883 if parts.scheme == "mqtts" else 1883),
            username=None if parts.username is None else unquote(parts.username),
            password=None if parts.password is None else unquote(parts.password),
            protocol=aiomqtt.ProtocolVersion.V5
            if version == "mqtt5.0"
            else aiomqtt.ProtocolVersion.V311,
            tls_context=ssl.create_default_context() if parts.scheme == "mqtts" else None,
            timeout=limit,
        ) as client:
            await client.publish(topic, orjson.dumps(payload), qos=qos, timeout=limit)
    except (aiomqtt.MqttError, OSError, ValueError) as error:
        raise DeliveryFailed(f"MQTT: {error}"[:300]) from None
