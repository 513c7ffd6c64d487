"""The registry's operations: register, change, move through the lifecycle, look up, check.

The HTTP API, the command line and the bulk import all go through a Registry, so a device is
validated, checked for duplicates and written the same way whichever way it comes in.

A write is the record and its audit events in one transaction (the commit point), then the
device's ``Device`` entity. The entity is written in full by every change, so if writing it ever
failed after the record was committed, the next change to the device repairs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from stadsnav.broker import Broker, now
from stadsnav.devices import lifecycle
from stadsnav.devices.couse import DEFAULT_RADIUS, Conflict, Neighbourhood, Planned, box_around
from stadsnav.devices.couse import conflicts as find_conflicts
from stadsnav.devices.entity import device_fragment, dropped_attributes, status
from stadsnav.devices.registration import (
    Question,
    Registration,
    check_guidelines,
    parse_change,
    parse_dev_eui,
    parse_question,
    parse_registration,
    parse_transition,
    profile_of,
)
from stadsnav.devices.views import conflict_json
from stadsnav.ngsild.context import core_context
from stadsnav.ngsild.entity import Entity
from stadsnav.ngsild.errors import AlreadyExists, OperationNotSupported, ResourceNotFound
from stadsnav.store.base import DeviceEvent, DeviceQuery, DeviceRecord

# Told (tenant, key) after a record changed: ingestion caches records for a few seconds.
Forget = Callable[[str, str], None]


class DuplicateDevice(AlreadyExists):
    """Devices on site already serve the purpose of the one being registered or moved."""

    def __init__(self, found: Sequence[Conflict], radius: float) -> None:
        listed = "; ".join(
            f"{c.device.key} ({c.device.model}, {c.device.state}, owner {c.device.owner}, "
            f"{', '.join(c.properties)}, {c.distance:g} m away)"
            for c in found[:10]
        )
        more = f" and {len(found) - 10} more" if len(found) > 10 else ""
        super().__init__(
            f"Already measured within {radius:g} m: {listed}{more}. Use that data (ask its "
            "owner to add you to coUsers), or go ahead anyway with an override that says why a "
            'second device is needed (API: "override": {"reason": "…"}, CLI: --override "…")'
        )


@dataclass(frozen=True, slots=True)
class Found:
    """A device with what uplinks told of it (devices/entity.py `status`)."""

    device: DeviceRecord
    status: dict[str, Any]


class Registry:
    def __init__(
        self, broker: Broker, *, radius: float = DEFAULT_RADIUS, forget: Forget | None = None
    ) -> None:
        self.broker = broker
        self.store = broker.store
        self.radius = radius
        self._forget = forget

    # -- registering ---------------------------------------------------------------------------

    async def register(self, tenant: str, body: Any, actor: str | None = None) -> DeviceRecord:
        """Register one device: 409 if it is registered already, or if devices on site already
        serve its purpose there and no override says why another is needed."""
        registration = parse_registration(body, now())
        device = registration.device
        if await self.store.devices(tenant, [device.key]):
            raise AlreadyExists(f"Device {device.key} is already registered")
        found = await self.conflicts(tenant, planned(device))
        if found and registration.override is None:
            raise DuplicateDevice(found, self.radius)
        (added,) = await self.add(tenant, [(registration, found)], actor)
        if not added:
            raise AlreadyExists(f"Device {device.key} is already registered")
        return device

    async def add(
        self,
        tenant: str,
        registrations: Sequence[tuple[Registration, Sequence[Conflict]]],
        actor: str | None,
    ) -> list[bool]:
        """Write checked registrations (each with the duplicates its override accepts) in one
        transaction; False where the device was registered meanwhile."""
        devices: list[DeviceRecord] = []
        events: list[DeviceEvent] = []
        fragments: list[Entity] = []
        for registration, found in registrations:
            device = registration.device
            who = actor or device.owner
            stamp = device.created_at
            devices.append(device)
            events.append(
                DeviceEvent(
                    device.key,
                    stamp,
                    "registered",
                    who,
                    to_state=device.state,
                    detail=_snapshot(device),
                )
            )
            if found:
                events.append(
                    DeviceEvent(
                        device.key,
                        stamp,
                        "override",
                        who,
                        reason=registration.override,
                        detail={"duplicates": [conflict_json(c) for c in found]},
                    )
                )
            fragments.append(self._entity(device, state_at=stamp))
        added = await self.store.add_devices(tenant, devices, events)
        written = [f for f, ok in zip(fragments, added, strict=True) if ok]
        if written:
            await self.broker.record(tenant, written, [])
        for device, ok in zip(devices, added, strict=True):
            if ok:
                self._changed(tenant, device.key)
        return added

    # -- changing ------------------------------------------------------------------------------

    async def transition(
        self, tenant: str, raw_key: str, body: Any, actor: str | None = None
    ) -> DeviceRecord:
        """Move a device through its lifecycle; the transition is kept in the audit trail and
        as the Device entity's deviceState (with its history)."""
        key = parse_dev_eui(raw_key)
        wanted = parse_transition(body)
        stamp = now()

        def apply(device: DeviceRecord) -> tuple[DeviceRecord, list[DeviceEvent]]:
            lifecycle.check_transition(device.state, wanted.to)
            installed_at = device.installed_at
            if installed_at is None and wanted.to in lifecycle.LIVE_STATES:
                installed_at = stamp
            event = DeviceEvent(
                key,
                stamp,
                "transition",
                actor or device.owner,
                from_state=device.state,
                to_state=wanted.to,
                reason=wanted.reason,
            )
            changed = replace(device, state=wanted.to, installed_at=installed_at, modified_at=stamp)
            return changed, [event]

        device = await self.store.change_device(tenant, key, apply)
        if device is None:
            raise ResourceNotFound(f"No device {key} is registered")
        await self.broker.record(tenant, [self._entity(device, state_at=stamp)], [])
        self._changed(tenant, key)
        return device

    async def update(
        self, tenant: str, raw_key: str, body: Any, actor: str | None = None
    ) -> DeviceRecord:
        """Change what a device feeds, where it stands, what it is for or who uses it. A move or
        a new purpose is checked for duplicates like a registration."""
        key = parse_dev_eui(raw_key)
        change = parse_change(body)
        stamp = now()
        current = (await self._one(tenant, key)).device
        profile = profile_of(current.model)
        candidate = change.apply(current, stamp)
        _check_changeable(current)
        check_guidelines(candidate, profile)
        found: list[Conflict] = []
        if planned(candidate) != planned(current):
            found = await self.conflicts(tenant, planned(candidate))
            if found and change.override is None:
                raise DuplicateDevice(found, self.radius)

        before: list[DeviceRecord] = []

        def apply(device: DeviceRecord) -> tuple[DeviceRecord, list[DeviceEvent]]:
            # Applied again to the record as it is now, in case it changed since it was read.
            _check_changeable(device)
            before.append(device)
            changed = change.apply(device, stamp)
            check_guidelines(changed, profile)
            who = actor or device.owner
            events = [DeviceEvent(key, stamp, "changed", who, detail=_differences(device, changed))]
            if found:
                events.append(
                    DeviceEvent(
                        key,
                        stamp,
                        "override",
                        who,
                        reason=change.override,
                        detail={"duplicates": [conflict_json(c) for c in found]},
                    )
                )
            return changed, events

        device = await self.store.change_device(tenant, key, apply)
        if device is None:
            raise ResourceNotFound(f"No device {key} is registered")
        for attr in dropped_attributes(before[-1], device):
            await self._drop_attribute(tenant, device.device_id, attr)
        await self.broker.record(tenant, [self._entity(device, state_at=None)], [])
        self._changed(tenant, key)
        return device

    # -- reading -------------------------------------------------------------------------------

    async def get(self, tenant: str, raw_key: str) -> Found:
        return await self._one(tenant, parse_dev_eui(raw_key))

    async def find(self, tenant: str, query: DeviceQuery) -> list[DeviceRecord]:
        return await self.store.find_devices(tenant, query)

    async def history(self, tenant: str, raw_key: str) -> list[DeviceEvent]:
        key = parse_dev_eui(raw_key)
        events = await self.store.device_events(tenant, key)
        if not events and not await self.store.devices(tenant, [key]):
            raise ResourceNotFound(f"No device {key} is registered")
        return events

    async def registered(self, tenant: str, keys: list[str]) -> set[str]:
        return {d.key for d in await self.store.devices(tenant, keys)} if keys else set()

    # -- co-use --------------------------------------------------------------------------------

    async def check(self, tenant: str, body: Any) -> tuple[Question, list[Conflict]]:
        """Answer a co-use question: the devices on site that already serve the purpose."""
        question = parse_question(body, self.radius)
        return question, await self.conflicts(tenant, question.planned, question.radius)

    async def conflicts(
        self, tenant: str, wanted: Planned, radius: float | None = None
    ) -> list[Conflict]:
        radius = self.radius if radius is None else radius
        query = DeviceQuery(states=lifecycle.LIVE_STATES, controlled_property=wanted.properties)
        nearby = {
            d.key: d
            for d in await self.store.find_devices(
                tenant, replace(query, box=box_around(wanted.location, radius))
            )
        }
        if wanted.target_id is not None:
            same_target = replace(query, target_id=wanted.target_id)
            nearby.update((d.key, d) for d in await self.store.find_devices(tenant, same_target))
        return find_conflicts(wanted, nearby.values(), radius)

    async def neighbourhood(self, tenant: str) -> Neighbourhood:
        """Every device on site, indexed for checking many new ones (a bulk import)."""
        found = Neighbourhood(self.radius)
        for device in await self.store.find_devices(
            tenant, DeviceQuery(states=lifecycle.LIVE_STATES)
        ):
            found.add(device)
        return found

    # -- internals -----------------------------------------------------------------------------

    async def _one(self, tenant: str, key: str) -> Found:
        found = await self.store.devices(tenant, [key])
        if not found:
            raise ResourceNotFound(f"No device {key} is registered")
        device = found[0]
        return Found(device, status(await self.store.get(tenant, device.device_id)))

    def _entity(self, device: DeviceRecord, *, state_at: str | None) -> Entity:
        fragment = device_fragment(device, profile_of(device.model), state_at=state_at)
        return self.broker.expand_observation(fragment, now())

    async def _drop_attribute(self, tenant: str, entity_id: str, attr: str) -> None:
        # Not found: never written, or removed through the NGSI-LD API meanwhile.
        with contextlib.suppress(ResourceNotFound):
            await self.broker.delete_attribute(
                tenant, entity_id, attr, core_context(), dataset_id=None, delete_all=True
            )

    def _changed(self, tenant: str, key: str) -> None:
        if self._forget is not None:
            self._forget(tenant, key)


def planned(device: DeviceRecord) -> Planned:
    """What a registered device measures where, as the co-use check sees it."""
    location = device.location if device.location is not None else (0.0, 0.0)
    return Planned(
        frozenset(device.controlled_property),
        location,
        device.target_id,
        device.target_type,
        device.key,
        device.model,
    )


def _check_changeable(device: DeviceRecord) -> None:
    if device.state == "retired":
        raise OperationNotSupported(f"Device {device.key} is retired, which is final")


def _snapshot(device: DeviceRecord) -> dict[str, Any]:
    """What a device is registered as, for the audit trail."""
    return {
        "model": device.model,
        "owner": device.owner,
        "coUsers": list(device.co_users),
        "controlledProperty": list(device.controlled_property),
        "location": None if device.location is None else list(device.location),
        "target": None
        if device.target_id is None
        else {"id": device.target_id, "type": device.target_type},
        "settings": device.settings,
        "name": device.name,
        "district": device.district,
    }


def _differences(before: DeviceRecord, after: DeviceRecord) -> dict[str, Any]:
    old, new = _snapshot(before), _snapshot(after)
    return {k: {"from": old[k], "to": new[k]} for k in new if old[k] != new[k]}
