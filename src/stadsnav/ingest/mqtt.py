"""Device data over MQTT: network-server uplinks taken from an MQTT v5 broker.

Topics (the network servers' own layouts, see docs/ingestion.md):

    application/{application_id}/device/{dev_eui}/event/{event}   ChirpStack v4
    v3/{application_id}@{tenant}/devices/{device_id}/{event}      The Things Stack v3
    stadsnav/devices/{key}/up                                     a device's own JSON

Nothing acknowledged is lost and nothing is acknowledged before it is stored:
- the subscriptions are QoS 1 and every message is acknowledged (PUBACK) only once the pipeline
  has made its outcome durable, so a crash before that makes the broker deliver it again;
- the session is persistent (clean start off, a long session expiry), so the broker queues what
  arrives while stadsnav is down and delivers it on reconnect;
- the subscriptions are MQTT v5 shared subscriptions ($share/{group}/...), so several workers
  split the traffic instead of each storing all of it.
The broker's own limits decide how much it queues for an absent session and how many messages
it has in flight: Mosquitto's defaults (1000 queued, 20 in flight) drop queued messages beyond
the first thousand and cap throughput; deploy/mosquitto/stadsnav.conf sets them for this use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from stadsnav.broker import now
from stadsnav.ingest import lorawan, plain
from stadsnav.ingest.pipeline import Message, Pipeline

log = logging.getLogger("stadsnav.ingest.mqtt")

TOPICS = ("application/+/device/+/event/+", "v3/+/devices/+/#", "stadsnav/devices/+/up")
# A week: a stadsnav outage shorter than this loses nothing the broker could queue.
SESSION_EXPIRY_SECONDS = 7 * 24 * 3600
# Unacknowledged messages the broker may send ahead: what one stored batch can hold.
RECEIVE_MAXIMUM = 1000


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError(f"MQTT URL must be mqtt://[user:password@]host[:port], got {url!r}")
        return cls(
            host=parts.hostname,
            port=parts.port or 1883,
            username=None if parts.username is None else unquote(parts.username),
            password=None if parts.password is None else unquote(parts.password),
        )


class MqttIngest:
    def __init__(
        self,
        pipeline: Pipeline,
        url: str,
        *,
        client_id: str,
        share_group: str | None,
        tenant: str = "",
        max_in_flight: int = 10_000,
    ) -> None:
        self.pipeline = pipeline
        self.address = BrokerAddress.parse(url)
        self.client_id = client_id
        self.share_group = share_group
        self.tenant = tenant
        self.connected = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._task: asyncio.Task[None] | None = None
        # Set when a message could not be stored: the broker only redelivers unacknowledged
        # messages on a new connection, so the session is ended and resumed.
        self._failed = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt-ingest")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def subscriptions(self) -> list[str]:
        if self.share_group is None:
            return list(TOPICS)
        return [f"$share/{self.share_group}/{topic}" for topic in TOPICS]

    async def _run(self) -> None:
        delay = 1.0
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as error:
                self.connected.clear()
                log.warning("MQTT connection to %s lost (%s); retrying", self.address.host, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _session(self) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        client = aiomqtt.Client(
            self.address.host,
            self.address.port,
            username=self.address.username,
            password=self.address.password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=properties,
        )
        # aiomqtt has no public switch for it: PUBACK only after the message is stored.
        client._client.manual_ack_set(True)
        async with client:
            for topic in self.subscriptions():
                await client.subscribe(topic, qos=1)
            self.connected.set()
            self._failed.clear()
            log.info("Taking device data from mqtt://%s:%d", self.address.host, self.address.port)
            receiving = asyncio.create_task(self._receive(client))
            failed = asyncio.create_task(self._failed.wait())
            try:
                await asyncio.wait({receiving, failed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                receiving.cancel()
                failed.cancel()
            if receiving.done() and not receiving.cancelled():
                receiving.result()
            self.connected.clear()
            log.warning("A device message was not stored; reconnecting to have it redelivered")

    async def _receive(self, client: aiomqtt.Client) -> None:
        pending: set[asyncio.Task[None]] = set()
        async for message in client.messages:
            await self._slots.acquire()
            task = asyncio.create_task(self._handle(client, message))
            pending.add(task)
            task.add_done_callback(pending.discard)

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        try:
            body = message.payload if isinstance(message.payload, bytes) else b""
            network: str
            event: str | None
            try:
                if message.topic.value.startswith(plain.TOPIC_PREFIX):
                    network, event = "json", None
                else:
                    topic = lorawan.parse_topic(message.topic.value)
                    network, event = topic.network, topic.event
            except lorawan.EnvelopeError:
                # Kept as a dead letter with the reason the envelope parser gives.
                network, event = "unknown", None
            await self.pipeline.submit(
                Message(
                    tenant=self.tenant,
                    transport="mqtt",
                    network=network,
                    event=event,
                    source=message.topic.value,
                    body=body,
                    received_at=now(),
                )
            )
        except Exception:
            # Not acknowledged: the broker delivers it again after reconnecting.
            log.exception("Device message on %s not stored", message.topic.value)
            self._failed.set()
            return
        finally:
            self._slots.release()
        if message.qos > 0:
            client._client.ack(message.mid, message.qos)
