"""What clients send the registry, validated: registrations, changes, transitions, co-use
questions.

The HTTP API, the command line and the bulk import hand the same JSON shapes to these parsers,
so every way in is checked alike. A registration is checked twice: its form (every member known
and well-formed) and the guidelines of its model's profile (devices/profiles.py): the purpose is
one the model serves, the entity it feeds is one the model may feed, the settings the mapping
needs are there, the reporting interval is within bounds. Whatever is wrong is a BadRequestData
that says what and why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from stadsnav.devices import lifecycle
from stadsnav.devices.couse import MAX_RADIUS, Planned
from stadsnav.devices.profiles import PROFILES, SHORTEST_INTERVAL, Profile
from stadsnav.ngsild.errors import BadRequestData
from stadsnav.ngsild.names import check_name, check_uri, normalize_datetime
from stadsnav.store.base import DeviceQuery, DeviceRecord

# Organisations are named by identifiers (trafikkontoret, stockholm-vatten, urn:…): they become
# the Device entity's `owner`, which Smart Data Models holds as a list of entity identifiers.
_ORGANISATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}$")
_DEV_EUI = re.compile(r"^[0-9A-Fa-f]{16}$")
_MAX_CO_USERS = 50
_MAX_TEXT = 200
_MAX_REASON = 2000


@dataclass(frozen=True, slots=True)
class Setting:
    """An installation setting: what it means, and the values it may take."""

    meaning: str
    minimum: float
    maximum: float
    integer: bool = False


SETTINGS: Mapping[str, Setting] = {
    "binDepth": Setting("metres from a fill-level sensor down to the container's bottom", 0.05, 10),
    "sensorHeight": Setting("metres from a level sensor down to the water level's zero", 0.05, 100),
    # The upper bound is the profile's; this one only keeps the number sane.
    "reportingInterval": Setting(
        "seconds between uplinks, where the device is not set as its profile expects",
        SHORTEST_INTERVAL,
        366 * 24 * 3600,
        integer=True,
    ),
}


@dataclass(frozen=True, slots=True)
class Registration:
    device: DeviceRecord
    # Why the device is registered although devices already serve its purpose there.
    override: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """A PATCH: the members given, each replacing the record's (settings are merged)."""

    members: Mapping[str, Any]
    override: str | None = None

    def apply(self, device: DeviceRecord, stamp: str) -> DeviceRecord:
        fields: dict[str, Any] = {"modified_at": stamp}
        for member, value in self.members.items():
            if member == "settings":
                merged = {**device.settings, **value}
                fields["settings"] = {k: v for k, v in merged.items() if v is not None}
            elif member == "target":
                fields["target_id"], fields["target_type"] = value or (None, None)
            else:
                fields[_RECORD_FIELD[member]] = value
        return replace(device, **fields)


@dataclass(frozen=True, slots=True)
class Transition:
    to: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Question:
    """A co-use check: would a device serving these properties here duplicate one?"""

    planned: Planned
    radius: float


_RECORD_FIELD = {
    "coUsers": "co_users",
    "controlledProperty": "controlled_property",
    "location": "location",
    "name": "name",
    "district": "district",
}
_REGISTRATION_MEMBERS = frozenset(
    {
        "devEUI",
        "model",
        "owner",
        "coUsers",
        "controlledProperty",
        "location",
        "installedAt",
        "state",
        "target",
        "settings",
        "name",
        "district",
        "override",
    }
)
_CHANGE_MEMBERS = frozenset(
    {"coUsers", "controlledProperty", "settings", "target", "location", "name", "district"}
)
# Every purpose some profile serves: a co-use check for anything else is a typing error.
_KNOWN_PROPERTIES = frozenset(p.property for profile in PROFILES.values() for p in profile.purposes)


def device_id(key: str) -> str:
    """The id of a device's Smart Data Models Device entity."""
    return f"urn:ngsi-ld:Device:{key}"


def parse_registration(body: Any, stamp: str) -> Registration:
    members = _object(body, "A device", _REGISTRATION_MEMBERS)
    key = parse_dev_eui(members.get("devEUI"))
    profile = profile_of(members.get("model"))
    owner = parse_organisation(members.get("owner"), "owner")
    state = lifecycle.check_state(members.get("state", "planned"), lifecycle.INITIAL_STATES)
    target = _target(members.get("target"))
    target_type = None if target is None else target[1]
    _check_target(profile, target_type)
    installed_at = None
    if members.get("installedAt") is not None:
        if state not in lifecycle.LIVE_STATES:
            raise BadRequestData(f"A {state} device has no installedAt yet")
        installed_at = normalize_datetime(members["installedAt"], "installedAt")
    elif state in lifecycle.LIVE_STATES:
        installed_at = stamp
    device = DeviceRecord(
        key=key,
        device_id=device_id(key),
        model=profile.model,
        owner=owner,
        state=state,
        target_id=None if target is None else target[0],
        target_type=target_type,
        settings=_settings(members.get("settings", {}), allow_null=False),
        location=parse_location(members.get("location")),
        created_at=stamp,
        modified_at=stamp,
        name=_text(members.get("name"), "name"),
        district=_text(members.get("district"), "district"),
        controlled_property=_properties(members.get("controlledProperty"), profile, target_type),
        co_users=_co_users(members.get("coUsers", []), owner),
        installed_at=installed_at,
    )
    check_guidelines(device, profile)
    return Registration(device, parse_override(members.get("override")))


def parse_change(body: Any) -> Change:
    members = _object(body, "A change", _CHANGE_MEMBERS | {"override"})
    parsed: dict[str, Any] = {}
    for member, value in members.items():
        if member == "override":
            continue
        if member == "settings":
            parsed[member] = _settings(value, allow_null=True)
        elif member == "target":
            parsed[member] = _target(value)
        elif member == "location":
            parsed[member] = parse_location(value)
        elif member == "coUsers":
            parsed[member] = _co_users(value, None)
        elif member == "controlledProperty":
            parsed[member] = _property_names(value)
        else:
            parsed[member] = _text(value, member)
    if not parsed:
        raise BadRequestData(f"Nothing to change: give one of {', '.join(sorted(_CHANGE_MEMBERS))}")
    return Change(parsed, parse_override(members.get("override")))


def parse_transition(body: Any) -> Transition:
    members = _object(body, "A transition", frozenset({"to", "reason"}))
    to = lifecycle.check_state(members.get("to"))
    reason = members.get("reason")
    return Transition(to, None if reason is None else _reason(reason, "reason"))


def parse_question(body: Any, default_radius: float) -> Question:
    """A co-use check names the purpose (controlledProperty) or the model whose default purpose
    it is, the location, and optionally the radius and the entity the device would feed."""
    members = _object(
        body,
        "A co-use check",
        frozenset({"controlledProperty", "model", "location", "radius", "target"}),
    )
    target = _target(members.get("target"))
    target_type = None if target is None else target[1]
    if members.get("model") is not None:
        profile = profile_of(members["model"])
        properties = _properties(members.get("controlledProperty"), profile, target_type)
    elif members.get("controlledProperty") is not None:
        properties = _known_properties(_property_names(members["controlledProperty"]))
    else:
        raise BadRequestData("Name the purpose (controlledProperty) or the model to check")
    radius = members.get("radius", default_radius)
    if not _is_number(radius) or not 0 < radius <= MAX_RADIUS:
        raise BadRequestData(f"radius is in metres, above 0 and at most {MAX_RADIUS:g}")
    planned = Planned(
        frozenset(properties),
        parse_location(members.get("location")),
        None if target is None else target[0],
        target_type,
        model=None if members.get("model") is None else str(members["model"]),
    )
    return Question(planned, float(radius))


def device_query(
    *,
    owner: str | None = None,
    state: str | None = None,
    model: str | None = None,
    controlled_property: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> DeviceQuery:
    """Which devices a listing asks for; a criterion that cannot match anything is refused, so
    that a typing error does not look like an empty registry."""
    return DeviceQuery(
        owner=None if owner is None else parse_organisation(owner, "owner"),
        states=None if state is None else frozenset({lifecycle.check_state(state)}),
        model=None if model is None else profile_of(model).model,
        controlled_property=None
        if controlled_property is None
        else frozenset(_known_properties(_property_names(controlled_property))),
        limit=limit,
        offset=offset,
    )


def check_guidelines(device: DeviceRecord, profile: Profile) -> None:
    """BadRequestData unless the device is installed as its model's profile allows."""
    _check_target(profile, device.target_type)
    served = {p.property for p in profile.purposes_for(device.target_type)}
    unserved = [p for p in device.controlled_property if p not in served]
    if unserved:
        where = f" on a {device.target_type}" if device.target_type else ""
        raise BadRequestData(
            f"A {profile.model}{where} does not measure {', '.join(unserved)}; "
            f"it measures {', '.join(sorted(served))}"
        )
    for setting in profile.required_settings(device.target_type):
        if setting not in device.settings:
            raise BadRequestData(
                f"A {profile.model} on a {device.target_type} needs the setting {setting}: "
                f"{SETTINGS[setting].meaning}"
            )
    interval = device.settings.get("reportingInterval")
    if isinstance(interval, int) and interval > profile.reporting.longest:
        raise BadRequestData(
            f"A {profile.model} must report at least every {profile.reporting.longest} s, "
            f"not every {interval} s"
        )


def _check_target(profile: Profile, target_type: str | None) -> None:
    if target_type in profile.targets:
        return
    allowed = sorted(t for t in profile.targets if t is not None)
    if target_type is None:
        raise BadRequestData(
            f"A {profile.model} must feed an entity (target) of type {' or '.join(allowed)}"
        )
    if not allowed:
        raise BadRequestData(
            f"A {profile.model} feeds no entity (its readings stay on its Device entity): "
            "give no target"
        )
    raise BadRequestData(f"A {profile.model} may feed {' or '.join(allowed)}, not {target_type}")


def profile_of(model: Any) -> Profile:
    profile = PROFILES.get(model) if isinstance(model, str) else None
    if profile is None:
        raise BadRequestData(
            f"No profile for device model {model!r:.60}: a model must have one before its "
            f"devices are registered (known: {', '.join(sorted(PROFILES))})"
        )
    return profile


def parse_dev_eui(raw: Any) -> str:
    if not isinstance(raw, str) or not _DEV_EUI.match(raw):
        raise BadRequestData(f"devEUI must be 16 hexadecimal digits, got {raw!r:.40}")
    return raw.lower()


def parse_location(raw: Any) -> tuple[float, float]:
    if (
        not isinstance(raw, list)
        or len(raw) != 2
        or not all(_is_number(c) for c in raw)
        or not (-180 <= raw[0] <= 180 and -90 <= raw[1] <= 90)
    ):
        raise BadRequestData(f"location is [longitude, latitude] in degrees, got {raw!r:.80}")
    return float(raw[0]), float(raw[1])


def parse_override(raw: Any) -> str | None:
    if raw is None:
        return None
    members = _object(raw, "override", frozenset({"reason"}))
    return _reason(members.get("reason"), "override reason")


def _object(body: Any, what: str, known: frozenset[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequestData(f"{what} is a JSON object")
    unknown = sorted(set(body) - known)
    if unknown:
        raise BadRequestData(
            f"{what} has no member {', '.join(repr(u)[:60] for u in unknown[:5])}; "
            f"it has {', '.join(sorted(known))}"
        )
    return body


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_organisation(raw: Any, what: str) -> str:
    if not isinstance(raw, str) or not _ORGANISATION.match(raw):
        raise BadRequestData(
            f"{what} is an organisation's identifier (letters, digits, - _ . : @; up to 100), "
            f"got {raw!r:.60}"
        )
    return raw


def _co_users(raw: Any, owner: str | None) -> tuple[str, ...]:
    if not isinstance(raw, list) or len(raw) > _MAX_CO_USERS:
        raise BadRequestData(f"coUsers is a list of at most {_MAX_CO_USERS} organisations")
    users = tuple(dict.fromkeys(parse_organisation(u, "a co-user") for u in raw))
    if owner is not None and owner in users:
        raise BadRequestData(f"{owner} owns the device: it is not also a co-user")
    return users


def _text(raw: Any, what: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip() or len(raw) > _MAX_TEXT or not raw.isprintable():
        raise BadRequestData(f"{what} is a line of text of at most {_MAX_TEXT} characters")
    return raw.strip()


def _reason(raw: Any, what: str) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > _MAX_REASON or "\x00" in raw:
        raise BadRequestData(f"The {what} is written out: a text of 1 to {_MAX_REASON} characters")
    return raw.strip()


def _target(raw: Any) -> tuple[str, str] | None:
    if raw is None:
        return None
    members = _object(raw, "target", frozenset({"id", "type"}))
    target_id = check_uri(members.get("id"), "target id")
    target_type = check_name(members.get("type"), "target type")
    return target_id, target_type


def _property_names(raw: Any) -> tuple[str, ...]:
    names = [raw] if isinstance(raw, str) else raw
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and 0 < len(n) <= 100 for n in names)
    ):
        raise BadRequestData("controlledProperty is a non-empty list of property names")
    return tuple(dict.fromkeys(names))


def _known_properties(names: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [p for p in names if p not in _KNOWN_PROPERTIES]
    if unknown:
        raise BadRequestData(
            f"No model measures {', '.join(unknown)}; the purposes are "
            f"{', '.join(sorted(_KNOWN_PROPERTIES))}"
        )
    return names


def _properties(raw: Any, profile: Profile, target_type: str | None) -> tuple[str, ...]:
    """The purpose asked for, or the profile's default for what the device feeds."""
    if raw is not None:
        return _property_names(raw)
    default = profile.default_properties(target_type)
    if not default:
        raise BadRequestData(
            f"A {profile.model} feeding {target_type or 'no entity'} has no default purpose: "
            "give controlledProperty"
        )
    return default


def _settings(raw: Any, *, allow_null: bool) -> dict[str, float | int | None]:
    if not isinstance(raw, dict):
        raise BadRequestData("settings is a JSON object")
    parsed: dict[str, float | int | None] = {}
    for name, value in raw.items():
        setting = SETTINGS.get(name)
        if setting is None:
            raise BadRequestData(
                f"No setting {name!r:.60}; the settings are {', '.join(sorted(SETTINGS))}"
            )
        if value is None and allow_null:
            parsed[name] = None
            continue
        if (
            not _is_number(value)
            or not setting.minimum <= value <= setting.maximum
            or (setting.integer and value != int(value))
        ):
            kind = "a whole number" if setting.integer else "a number"
            raise BadRequestData(
                f"{name} ({setting.meaning}) is {kind} from {setting.minimum:g} "
                f"to {setting.maximum:g}, got {value!r:.40}"
            )
        parsed[name] = int(value) if setting.integer else value
    return parsed
