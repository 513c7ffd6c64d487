"""The registry's JSON: how a device, its audit trail, a co-use answer and a profile are shown,
the same by the HTTP API and the command line."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from stadsnav.devices.couse import Conflict
from stadsnav.devices.profiles import Profile
from stadsnav.devices.registration import SETTINGS
from stadsnav.store.base import DeviceEvent, DeviceRecord


def device_json(device: DeviceRecord, status: dict[str, Any] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "devEUI": device.key,
        "deviceId": device.device_id,
        "model": device.model,
        "owner": device.owner,
        "coUsers": list(device.co_users),
        "controlledProperty": list(device.controlled_property),
        "state": device.state,
        "location": None if device.location is None else list(device.location),
        "settings": device.settings,
        "createdAt": device.created_at,
        "modifiedAt": device.modified_at,
    }
    for member, value in (
        ("name", device.name),
        ("district", device.district),
        ("installedAt", device.installed_at),
    ):
        if value is not None:
            found[member] = value
    if device.target_id is not None:
        found["target"] = {"id": device.target_id, "type": device.target_type}
    if status:
        found.update(status)
    return found


def event_json(event: DeviceEvent) -> dict[str, Any]:
    found: dict[str, Any] = {"at": event.at, "kind": event.kind, "actor": event.actor}
    for member, value in (
        ("from", event.from_state),
        ("to", event.to_state),
        ("reason", event.reason),
    ):
        if value is not None:
            found[member] = value
    if event.detail:
        found["detail"] = event.detail
    return found


def conflict_json(conflict: Conflict) -> dict[str, Any]:
    device = conflict.device
    found: dict[str, Any] = {
        "devEUI": device.key,
        "deviceId": device.device_id,
        "model": device.model,
        "owner": device.owner,
        "coUsers": list(device.co_users),
        "state": device.state,
        "controlledProperty": list(conflict.properties),
        "distance": conflict.distance,
    }
    if device.target_id is not None:
        found["target"] = {"id": device.target_id, "type": device.target_type}
    return found


def profile_json(profile: Profile) -> dict[str, Any]:
    targets = sorted(profile.targets, key=lambda t: t or "")
    return {
        "model": profile.model,
        "vendor": profile.vendor,
        "product": profile.product,
        "deviceCategory": list(profile.category),
        "quantities": [asdict(q) for q in profile.quantities],
        "purposes": [
            {
                "controlledProperty": p.property,
                "readings": list(p.readings),
                "default": p.primary,
                **({"targets": sorted(p.targets)} if p.targets is not None else {}),
            }
            for p in profile.purposes
        ],
        "reportingInterval": {
            "expected": profile.reporting.expected,
            "longest": profile.reporting.longest,
        },
        "battery": profile.battery,
        "security": asdict(profile.security),
        "targets": targets,
        "assetBound": profile.asset_bound,
        "requiredSettings": {
            target or "none": {s: SETTINGS[s].meaning for s in profile.required_settings(target)}
            for target in targets
        },
    }
