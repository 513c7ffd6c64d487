"""A registered device as its Smart Data Models ``Device`` entity, and what uplinks add to it.

The registry writes what describes the device (its purpose, owner, state, place, installation
date); the ingestion mapping writes what each uplink tells (battery, signal, when it was last
heard, its raw readings). Both merge into the same entity, ``urn:ngsi-ld:Device:<DevEUI>``,
with the short Smart Data Models names of the default @context.

``deviceState`` carries ``observedAt``, the time of the transition, so every lifecycle change
also lands in the temporal history of the entity.
"""

from __future__ import annotations

from typing import Any

from stadsnav.devices.profiles import Profile
from stadsnav.ngsild.context import core_context
from stadsnav.ngsild.entity import Entity
from stadsnav.store.base import DeviceRecord

_PROTOCOL = {"lorawan": "lora", "mqtt": "mqtt"}  # Smart Data Models supportedProtocol names
# Entity attributes the registry writes from the record, by the record member they follow.
_FROM_RECORD = {
    "name": "name",
    "district": "address",
    "target_id": "controlledAsset",
    "installed_at": "dateInstalled",
}


def device_fragment(
    device: DeviceRecord, profile: Profile, *, state_at: str | None
) -> dict[str, Any]:
    """The registry's part of the Device entity, as a normalized NGSI-LD payload. With
    `state_at`, the lifecycle state observed at that time is included."""
    attrs: dict[str, Any] = {
        "controlledProperty": _property(list(device.controlled_property)),
        "owner": _property([device.owner]),
        # Not a Smart Data Models attribute: NGSI-LD lets an entity hold more than its model.
        "coUsers": _property(list(device.co_users)),
        "deviceCategory": _property(list(profile.category)),
        "supportedProtocol": _property([_PROTOCOL[profile.security.transport]]),
    }
    if state_at is not None:
        attrs["deviceState"] = {"type": "Property", "value": device.state, "observedAt": state_at}
    if device.location is not None:
        point = {"type": "Point", "coordinates": list(device.location)}
        attrs["location"] = {"type": "GeoProperty", "value": point}
    if device.name is not None:
        attrs["name"] = _property(device.name)
    if device.district is not None:
        attrs["address"] = _property({"district": device.district})
    if device.target_id is not None:
        attrs["controlledAsset"] = {"type": "Relationship", "object": [device.target_id]}
    if device.installed_at is not None:
        attrs["dateInstalled"] = _property(device.installed_at)
    return {"id": device.device_id, "type": "Device", **attrs}


def dropped_attributes(before: DeviceRecord, after: DeviceRecord) -> list[str]:
    """Attributes the registry wrote for `before` that `after` no longer has."""
    return [
        attr
        for member, attr in _FROM_RECORD.items()
        if getattr(before, member) is not None and getattr(after, member) is None
    ]


def status(entity: Entity | None) -> dict[str, Any]:
    """What uplinks told of the device: when it was last heard, its battery and its signal."""
    if entity is None:
        return {}
    found: dict[str, Any] = {}
    last_seen = _value(entity, "dateLastValueReported")
    if last_seen is not None:
        found["lastSeen"] = last_seen
    battery = {
        key: value
        for key, name in (("level", "batteryLevel"), ("voltage", "batteryVoltage"))
        if (value := _value(entity, name)) is not None
    }
    if battery:
        found["battery"] = battery
    signal = {
        name: value for name in ("rssi", "snr") if (value := _value(entity, name)) is not None
    }
    if signal:
        found["signal"] = signal
    return found


def _property(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def _value(entity: Entity, name: str) -> Any:
    instances = entity.attrs.get(core_context().expand(name))
    return None if not instances else instances[0].get("value")
