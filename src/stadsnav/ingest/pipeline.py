"""From a raw device message to stored observations: envelope, device, dedup, decode, map, store.

Every message ends in exactly one outcome: stored, duplicate, ignored (a network-server event
that carries no measurement) or dead-lettered, with the reason and the raw bytes kept for a
replay. Transports hand messages to `submit`, which returns once the message's outcome is
durable; messages that arrive together are stored together, in one transaction per batch, so
a burst of uplinks costs a few commits rather than one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from stadsnav.broker import Broker, now
from stadsnav.ingest import decoders, lorawan, mapping, plain
from stadsnav.ngsild.entity import Entity
from stadsnav.ngsild.errors import NgsiLdError
from stadsnav.store.base import DeadLetter, DeviceRecord, UplinkKey

log = logging.getLogger("stadsnav.ingest")

Status = Literal["stored", "duplicate", "ignored", "dead-letter"]
# Lifecycle states in which a device's data is taken in (planned and retired devices are not
# on the network; data claiming to come from them is suspicious and kept aside).
RECEIVING_STATES = frozenset({"installed", "active", "maintenance"})


@dataclass(frozen=True)
class Message:
    """A device message as a transport received it."""

    tenant: str
    transport: str  # http or mqtt
    network: str  # chirpstack, tts, or json (a device's own JSON, ingest/plain.py)
    event: str | None  # the network server's event name, where the transport gives it apart
    source: str  # MQTT topic or HTTP path
    body: bytes
    received_at: str


@dataclass
class Outcome:
    status: Status
    stage: str | None = None
    reason: str | None = None
    dead_letter: int | None = None
    entities: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"outcome": self.status}
        if self.stage is not None:
            found["stage"] = self.stage
        if self.reason is not None:
            found["reason"] = self.reason
        if self.dead_letter is not None:
            found["deadLetter"] = self.dead_letter
        if self.entities:
            found["entities"] = self.entities
        return found


class _Rejected(Exception):
    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


@dataclass
class _Accepted:
    key: UplinkKey
    entities: list[Entity]


class Pipeline:
    def __init__(
        self, broker: Broker, *, max_batch: int = 500, device_cache_seconds: float = 10.0
    ) -> None:
        self.broker = broker
        self.max_batch = max_batch
        self.device_cache_seconds = device_cache_seconds
        self._devices: dict[tuple[str, str], tuple[float, DeviceRecord | None]] = {}
        self._queue: asyncio.Queue[tuple[Message, asyncio.Future[Outcome]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        # Outcomes since start, by status: what /health and the logs report.
        self.counts: Counter[str] = Counter()

    # -- running -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._worker = asyncio.create_task(self._drain(), name="ingest-batches")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def submit(self, message: Message) -> Outcome:
        """Hand a message in; returns its outcome once that is durable. Raises if storing
        failed (the database is down): the sender should then deliver the message again."""
        if self._worker is None:
            raise RuntimeError("The ingestion pipeline is not running")
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        await self._queue.put((message, future))
        return await future

    async def _drain(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            live = [(m, f) for m, f in batch if not f.cancelled()]
            try:
                outcomes = await self.handle([m for m, _ in live])
            except Exception as error:
                log.exception("Storing a batch of %d device messages failed", len(live))
                for _, future in live:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), outcome in zip(live, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)

    # -- the work --------------------------------------------------------------------------------

    async def handle(self, messages: list[Message], *, replay: bool = False) -> list[Outcome]:
        """Outcomes of a batch, in order. With `replay`, failures are reported but no new dead
        letters are written (the caller settles the letters it replays)."""
        outcomes: list[Outcome | None] = [None] * len(messages)
        letters: dict[str, list[tuple[int, DeadLetter]]] = defaultdict(list)
        accepted: dict[str, list[tuple[int, _Accepted]]] = defaultdict(list)
        uplinks: list[tuple[int, Message, Frame]] = []
        stamp = now()
        for i, message in enumerate(messages):
            try:
                uplink = _frame(message)
            except lorawan.EnvelopeError as error:
                outcomes[i] = Outcome("dead-letter", "envelope", str(error))
                letters[message.tenant].append((i, _letter(message, "envelope", str(error))))
                continue
            if uplink is None:
                outcomes[i] = Outcome("ignored", reason="event carries no measurement")
                continue
            uplinks.append((i, message, uplink))
        await self._load_devices({(m.tenant, u.dev_eui) for _, m, u in uplinks})
        keys = {(m.tenant, i): _key(m, u) for i, m, u in uplinks}
        stored: set[tuple[str, UplinkKey]] = set()
        for tenant in {m.tenant for _, m, _ in uplinks}:
            wanted = [key for (t, _), key in keys.items() if t == tenant]
            stored.update(
                (tenant, key) for key in await self.broker.store.stored_uplinks(tenant, wanted)
            )
        for i, message, uplink in uplinks:
            key = keys[(message.tenant, i)]
            if (message.tenant, key) in stored:
                outcomes[i] = Outcome("duplicate", reason=f"uplink {key.f_cnt} already stored")
                continue
            stored.add((message.tenant, key))
            try:
                if isinstance(uplink, lorawan.DeviceStatus):
                    entities = self._status(message, uplink, stamp)
                else:
                    entities = self._observations(message, uplink, stamp)
            except _Rejected as rejected:
                outcomes[i] = Outcome("dead-letter", rejected.stage, rejected.reason)
                letter = _letter(message, rejected.stage, rejected.reason, uplink.dev_eui)
                letters[message.tenant].append((i, letter))
                continue
            if not entities:
                outcomes[i] = Outcome("ignored", reason="status without a battery level")
                continue
            accepted[message.tenant].append((i, _Accepted(key, entities)))
        if not replay:
            for tenant, found in letters.items():
                await self.broker.store.add_dead_letters(tenant, [letter for _, letter in found])
                for i, letter in found:
                    outcome = outcomes[i]
                    assert outcome is not None
                    outcome.dead_letter = letter.id
        for tenant, taken in accepted.items():
            entities = [e for _, a in taken for e in a.entities]
            await self.broker.record(tenant, entities, [a.key for _, a in taken])
            for i, item in taken:
                outcomes[i] = Outcome("stored", entities=[e.id for e in item.entities])
        final = [outcome or Outcome("ignored") for outcome in outcomes]
        if not replay:
            self.counts.update(outcome.status for outcome in final)
        return final

    def _receiving(self, tenant: str, dev_eui: str) -> DeviceRecord:
        device = self._cached_device(tenant, dev_eui)
        if device is None:
            raise _Rejected("device", f"no device with DevEUI {dev_eui} is registered")
        if device.state not in RECEIVING_STATES:
            raise _Rejected("device", f"device {device.device_id} is {device.state}")
        return device

    def _status(self, message: Message, status: lorawan.DeviceStatus, stamp: str) -> list[Entity]:
        """A network server's status report: the battery level the device told it, on the
        device's own entity (and so in its history)."""
        device = self._receiving(message.tenant, status.dev_eui)
        if status.battery is None:
            return []
        level = {
            "type": "Property",
            "value": round(status.battery / 100, 4),
            "unitCode": "P1",
            "observedAt": status.received_at,
        }
        payload = {"id": device.device_id, "type": "Device", "batteryLevel": level}
        return [self.broker.expand_observation(payload, stamp)]

    def _observations(self, message: Message, uplink: lorawan.Uplink, stamp: str) -> list[Entity]:
        device = self._receiving(message.tenant, uplink.dev_eui)
        if uplink.f_port is None or not uplink.payload:
            raise _Rejected("decode", "uplink carries no application payload")
        try:
            readings = decoders.decode(device.model, uplink.f_port, uplink.payload)
        except decoders.DecodeError as error:
            raise _Rejected("decode", f"{device.model}: {error}") from None
        binding = mapping.Binding(
            device_id=device.device_id,
            model=device.model,
            target_id=device.target_id,
            target_type=device.target_type,
            settings=device.settings,
            location=device.location,
        )
        try:
            observations = mapping.map_readings(
                binding,
                readings,
                uplink.received_at,
                rssi=uplink.rssi,
                snr=uplink.snr,
                battery=uplink.battery,
            )
            return [
                self.broker.expand_observation(
                    {"id": o.entity_id, "type": o.entity_type, **o.attrs}, stamp
                )
                for o in observations
            ]
        except (mapping.MappingError, NgsiLdError) as error:
            raise _Rejected("map", str(error)) from None

    # -- devices ---------------------------------------------------------------------------------

    async def _load_devices(self, wanted: set[tuple[str, str]]) -> None:
        """Registry records of these devices, from the database unless recently fetched:
        registry changes reach the pipelines of other workers within device_cache_seconds."""
        clock = time.monotonic()
        stale: dict[str, list[str]] = defaultdict(list)
        for tenant, key in wanted:
            cached = self._devices.get((tenant, key))
            if cached is None or clock - cached[0] > self.device_cache_seconds:
                stale[tenant].append(key)
        for tenant, keys in stale.items():
            found = {d.key: d for d in await self.broker.store.devices(tenant, keys)}
            for key in keys:
                self._devices[(tenant, key)] = (clock, found.get(key))

    def _cached_device(self, tenant: str, key: str) -> DeviceRecord | None:
        cached = self._devices.get((tenant, key))
        return None if cached is None else cached[1]

    def forget_device(self, tenant: str, key: str) -> None:
        """A registry change in this process takes effect at once."""
        self._devices.pop((tenant, key), None)

    # -- dead letters ------------------------------------------------------------------------

    async def replay(self, tenant: str, letter_ids: list[int]) -> dict[int, Outcome]:
        """Run dead letters through the pipeline again (after a decoder fix or a device's
        registration) and note each outcome on its letter; a stored one is closed."""
        letters = await self.broker.store.dead_letters(
            tenant, open_only=False, limit=len(letter_ids), offset=0, ids=letter_ids
        )
        messages = [
            Message(
                tenant,
                letter.transport,
                letter.network,
                letter.event,
                letter.source,
                letter.body,
                letter.received_at,
            )
            for letter in letters
        ]
        for letter in letters:
            if letter.device is not None:
                self.forget_device(tenant, letter.device)
        outcomes = await self.handle(messages, replay=True)
        stamp = now()
        for letter, outcome in zip(letters, outcomes, strict=True):
            settled = (
                outcome.status
                if outcome.status != "dead-letter"
                else (f"{outcome.stage}: {outcome.reason}")
            )
            await self.broker.store.settle_dead_letter(tenant, letter.id, stamp, settled)
        return {letter.id: outcome for letter, outcome in zip(letters, outcomes, strict=True)}


# What a message carries: an uplink (a measurement) or a network server's device status.
Frame = lorawan.Uplink | lorawan.DeviceStatus


def _frame(message: Message) -> Frame | None:
    if message.network == "json":
        return plain.parse_plain(message.source, message.body, message.received_at)
    if message.network == "chirpstack" and message.event == "status":
        return lorawan.parse_chirpstack_status(message.body)
    return lorawan.parse_event(message.network, message.event, message.body)


def _key(message: Message, frame: Frame) -> UplinkKey:
    if isinstance(frame, lorawan.DeviceStatus):
        # A status has no frame counter; the same report delivered twice has the same body.
        return UplinkKey(frame.dev_eui, -1, _digest(message.body))
    return UplinkKey(frame.dev_eui, frame.f_cnt, _digest(frame.payload))


def _digest(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=8).hexdigest()


def _letter(message: Message, stage: str, reason: str, device: str | None = None) -> DeadLetter:
    return DeadLetter(
        received_at=message.received_at,
        transport=message.transport,
        network=message.network,
        source=message.source,
        stage=stage,
        reason=reason,
        body=message.body,
        event=message.event,
        device=device,
    )
