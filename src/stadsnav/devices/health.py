"""Device health alarms: a device silent for longer than its reporting interval allows, a low
battery, or a value its sensor cannot physically measure, kept as FIWARE Smart Data Models
``Alert`` entities.

Alerts are written through the broker like any other entity, so the NGSI-LD API queries them
(``type=Alert``) and change notifications, once subscriptions exist, cover them with no more work
here. What a reader of them should know (docs/devices-health-and-credentials.md has more):

- One alert per device and condition, under a stable id (``alert_id``): while the condition holds,
  a sweep rewrites what changed in that alert (a lower battery level) instead of adding another,
  and writes nothing when nothing changed, so that subscribers hear of real changes only.
- A condition that no longer holds closes its alert by setting ``validTo``. The alert stays:
  ``q=!validTo`` lists the open ones, and the closed ones are the record of what happened. When
  the condition returns, the same alert opens again with a new ``dateIssued`` and ``validFrom``.
- Only active devices are checked. The alerts of a device that is no longer active (maintenance,
  retired, or gone from the registry) are closed, since its silence is then expected.
- A sweep looks at the latest values on the Device entity and on the entity it measures into,
  not at every uplink: a wrong value that a newer one replaced before the sweep raises nothing.
  That keeps the check out of the ingestion path; a value that stays wrong is found in one sweep.
- ``category`` must be one of the schema's seven, none of them about equipment; ``security`` is
  the one that fits, as these alerts are about the availability (silence, battery) and integrity
  (impossible values) of the city's sensing. Every ``subCategory`` of the schema is a phenomenon
  in the city (``highTemperature`` is hot weather, not a broken thermometer), so none is set.
  ``data`` holds the details for machines: the condition, the values and the limits.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeGuard
from urllib.parse import quote

from stadsnav.broker import Broker
from stadsnav.devices.profiles import PROFILES
from stadsnav.ingest import mapping
from stadsnav.ngsild.context import Context
from stadsnav.ngsild.entity import LOCATION, NULL_URI, Attrs, Entity
from stadsnav.ngsild.errors import NgsiLdError
from stadsnav.ngsild.names import format_datetime, parse_datetime
from stadsnav.ngsild.qlang import parse_q
from stadsnav.ngsild.query import EntityQuery, TypeName
from stadsnav.store.base import DeviceRecord

log = logging.getLogger("stadsnav.devices.health")

# Seconds a model is expected to take between two reports; None when its profile does not say.
ExpectedInterval = Callable[[str], float | None]
# The (lowest, highest) value a model can physically report for a reading (its decoder name);
# None when the profile gives no range for it.
PhysicalRange = Callable[[str, str], tuple[float, float] | None]

ALERT_PREFIX = "urn:ngsi-ld:Alert:health:"
MONITORED_STATES = frozenset({"active"})
CATEGORY = "security"
# No data at all is worse than data that needs a visit soon or data that cannot be trusted.
SEVERITY = {"silent": "high", "batteryLow": "medium", "outOfRange": "medium"}

# Device data is named with the core context alone (the broker's device-data convention), and so
# are the alerts, which the API then finds without a Link header.
_CTX = Context.build()
_ALERT_TYPE = _CTX.expand("Alert")
_BATTERY = _CTX.expand("batteryLevel")
_REPORTED = _CTX.expand("dateLastValueReported")
_SOURCE = _CTX.expand("alertSource")
_DATA = _CTX.expand("data")
# The registry's per-device setting for a device not set as its profile expects
# (devices/registration.py).
_INTERVAL_SETTING = "reportingInterval"
# The reading each attribute holds, where the mapping renames it (ingest/mapping.py): ranges are
# the profiles' and speak of readings. Other attributes of a Device keep their reading's name.
_DEVICE_READINGS = {spec.name: reading for reading, spec in mapping.DEVICE.items()}
_TARGET_READINGS = {
    target_type: {spec.name: reading for reading, spec in target.attributes.items()}
    for target_type, target in mapping.TARGETS.items()
}
_OPEN = parse_q("!validTo", _CTX)
_PAGE = 1000

Action = Literal["raised", "updated", "cleared"]


def alert_id(device_id: str, kind: str) -> str:
    """The one alert of a device for a kind of condition (``silent``, ``batteryLow``,
    ``outOfRange:<attribute>``)."""
    return f"{ALERT_PREFIX}{quote(device_id, safe=':')}:{quote(kind, safe=':')}"


@dataclass(frozen=True)
class AlertChange:
    """What a sweep did to one alert."""

    tenant: str
    alert_id: str
    device_id: str
    kind: str
    action: Action


@dataclass(frozen=True)
class _Finding:
    """A condition that holds now, as its alert should say it."""

    device_id: str
    kind: str
    since: str
    description: str
    data: dict[str, Any]
    location: Any

    @property
    def alert_id(self) -> str:
        return alert_id(self.device_id, self.kind)

    def content(self) -> dict[str, Any]:
        """What may change while the condition holds: a sweep compares these with the stored
        alert and writes only those that differ."""
        return {
            "severity": SEVERITY[self.data["condition"]],
            "description": self.description,
            "data": self.data,
            "location": self.location,
        }

    def opening(self, issued: str) -> dict[str, Any]:
        """The alert as a normalized entity, as it is when the condition starts."""
        payload: dict[str, Any] = {
            "id": self.alert_id,
            "type": "Alert",
            "category": _attribute("category", CATEGORY),
            "alertSource": {"type": "Relationship", "object": self.device_id},
            "dateIssued": _attribute("dateIssued", issued),
            "validFrom": _attribute("validFrom", self.since),
        }
        for name, value in self.content().items():
            if value is not None:
                payload[name] = _attribute(name, value)
        return payload


class HealthMonitor:
    def __init__(
        self,
        broker: Broker,
        *,
        expected_interval: ExpectedInterval,
        physical_range: PhysicalRange,
        battery_threshold: float = 0.2,
        silence_factor: float = 3.0,
    ) -> None:
        self.broker = broker
        self.expected_interval = expected_interval
        self.physical_range = physical_range
        self.battery_threshold = battery_threshold
        self.silence_factor = silence_factor

    async def run(self, interval: float) -> None:
        """Sweep every `interval` seconds until cancelled; a failed sweep is retried next time."""
        while True:
            await asyncio.sleep(interval)
            try:
                changes = await self.sweep(datetime.now(UTC))
            except Exception:
                log.exception("The device health sweep failed; retrying in %g s", interval)
                continue
            if changes:
                counts = Counter(change.action for change in changes)
                log.info(
                    "Device health alerts: %s", ", ".join(f"{n} {a}" for a, n in counts.items())
                )

    async def sweep(self, now: datetime) -> list[AlertChange]:
        """Raise, update and close the alerts of every tenant's devices as of `now` (aware)."""
        changes: list[AlertChange] = []
        for tenant in await self.broker.store.tenants():
            changes.extend(await self._sweep_tenant(tenant, now))
        return changes

    async def _sweep_tenant(self, tenant: str, now: datetime) -> list[AlertChange]:
        store = self.broker.store
        records = [r for r in await store.devices(tenant) if r.state in MONITORED_STATES]
        wanted = {r.device_id for r in records} | {r.target_id for r in records if r.target_id}
        entities = await store.get_many(tenant, sorted(wanted))
        found = {f.alert_id: f for r in records for f in self._check(r, entities, now)}
        opened = await self._open_alerts(tenant)
        closed = await store.get_many(tenant, [i for i in found if i not in opened])
        issued = format_datetime(now)
        creates: list[dict[str, Any]] = []
        merges: list[dict[str, Any]] = []
        changes: list[AlertChange] = []
        for finding_id, finding in found.items():
            stored = opened.get(finding_id)
            if stored is None:
                payload = finding.opening(issued)
                if finding_id in closed:
                    absent = {
                        name: NULL_URI for name, value in finding.content().items() if value is None
                    }
                    merges.append({**payload, **absent, "validTo": NULL_URI})
                else:
                    creates.append(payload)
                action: Action = "raised"
            else:
                differences = _differences(finding, stored)
                if not differences:
                    continue
                merges.append({"id": finding_id, **differences})
                action = "updated"
            changes.append(AlertChange(tenant, finding_id, finding.device_id, finding.kind, action))
        for stale_id, stale in opened.items():
            if stale_id not in found:
                merges.append({"id": stale_id, "validTo": _attribute("validTo", issued)})
                source = str(_value(stale.attrs, _SOURCE))
                changes.append(AlertChange(tenant, stale_id, source, _kind_of(stale), "cleared"))
        written = await self._write(tenant, creates, merges)
        return [change for change in changes if change.alert_id in written]

    async def _open_alerts(self, tenant: str) -> dict[str, Entity]:
        found: dict[str, Entity] = {}
        offset = 0
        while True:
            page, _ = await self.broker.store.query(
                tenant,
                EntityQuery(
                    types=TypeName(_ALERT_TYPE),
                    id_pattern=f"^{ALERT_PREFIX}",
                    q=_OPEN,
                    limit=_PAGE,
                    offset=offset,
                ),
            )
            found.update((alert.id, alert) for alert in page)
            if len(page) < _PAGE:
                return found
            offset += _PAGE

    async def _write(
        self, tenant: str, creates: list[dict[str, Any]], merges: list[dict[str, Any]]
    ) -> set[str]:
        """The ids written; one that failed is logged, and the next sweep tries it again."""
        results = []
        if creates:
            results.append(await self.broker.batch_create(tenant, [(p, _CTX) for p in creates]))
        if merges:
            results.append(await self.broker.batch_merge(tenant, [(p, _CTX) for p in merges]))
        written: set[str] = set()
        for result in results:
            written.update(result.success)
            for failed_id, error in result.errors:
                log.warning("Device health alert %s not written: %s", failed_id, error)
        return written

    # -- the conditions ------------------------------------------------------------------------

    def _check(
        self, record: DeviceRecord, entities: dict[str, Entity], now: datetime
    ) -> Iterator[_Finding]:
        device = entities.get(record.device_id)
        attrs: Attrs = {} if device is None else device.attrs
        where = _value(attrs, LOCATION)
        yield from self._silence(record, attrs, now, where)
        battery = _reading(attrs.get(_BATTERY, []))
        if battery is not None and battery[0] < self.battery_threshold:
            level, observed = battery
            yield _Finding(
                record.device_id,
                "batteryLow",
                observed or format_datetime(now),
                f"The battery of device {record.device_id} ({record.model}) is at {level:.0%}, "
                f"below the {self.battery_threshold:.0%} threshold: plan a battery change.",
                {
                    "condition": "batteryLow",
                    "batteryLevel": level,
                    "threshold": self.battery_threshold,
                },
                where,
            )
        if device is not None:
            yield from self._out_of_range(record, device, _DEVICE_READINGS, now, where)
        target = entities.get(record.target_id) if record.target_id else None
        if target is not None:
            readings = _TARGET_READINGS.get(record.target_type or "", {})
            yield from self._out_of_range(record, target, readings, now, where)

    def _silence(
        self, record: DeviceRecord, attrs: Attrs, now: datetime, where: Any
    ) -> Iterator[_Finding]:
        configured = record.settings.get(_INTERVAL_SETTING)
        interval = (
            float(configured)
            if isinstance(configured, int | float) and not isinstance(configured, bool)
            else self.expected_interval(record.model)
        )
        if interval is None:
            return
        reported = _time(_value(attrs, _REPORTED))
        # A device that never reported is measured from its registration.
        last = reported or _time(record.created_at)
        allowed = timedelta(seconds=self.silence_factor * interval)
        if last is None or now - last <= allowed:
            return
        since = format_datetime(last)
        what = f"since {since}" if reported else f"since it was registered at {since}"
        data: dict[str, Any] = {
            "condition": "silent",
            "expectedInterval": interval,
            "silenceFactor": self.silence_factor,
        }
        if reported:
            data["lastValueReported"] = since
        yield _Finding(
            record.device_id,
            "silent",
            format_datetime(last + allowed),
            f"Device {record.device_id} ({record.model}) has reported nothing {what}, longer than "
            f"{self.silence_factor:g} times its expected interval of {_duration(interval)}: it "
            "may be broken, out of battery, out of radio range or removed.",
            data,
            where,
        )

    def _out_of_range(
        self,
        record: DeviceRecord,
        entity: Entity,
        readings: Mapping[str, str],
        now: datetime,
        where: Any,
    ) -> Iterator[_Finding]:
        """`readings` names the reading behind each renamed attribute; on a Device, the others
        are readings kept under their own name, while on a target they are not readings at all
        (derived, like fillingLevel, or written by someone else)."""
        on_device = entity.id == record.device_id
        for iri, instances in entity.attrs.items():
            name = _CTX.compact(iri)
            reading = readings.get(name, name if on_device else None)
            bounds = None if reading is None else self.physical_range(record.model, reading)
            if bounds is None:
                continue
            low, high = bounds
            for instance in instances:
                value = instance.get("value")
                if not _is_number(value) or low <= value <= high:
                    continue
                limit, side = (low, "minimum") if value < low else (high, "maximum")
                yield _Finding(
                    record.device_id,
                    f"outOfRange:{name}",
                    instance.get("observedAt") or format_datetime(now),
                    f"Device {record.device_id} ({record.model}) reported {name} {value:g} on "
                    f"{entity.id}, past the {side} of {limit:g} that it can physically measure: "
                    "the sensor or its decoding is faulty, and the value is not to be trusted.",
                    {
                        "condition": "outOfRange",
                        "entity": entity.id,
                        "attribute": name,
                        "value": value,
                        side: limit,
                    },
                    where,
                )
                break


def _attribute(name: str, value: Any) -> dict[str, Any]:
    kind = "GeoProperty" if name == "location" else "Property"
    return {"type": kind, "value": value}


def _differences(finding: _Finding, stored: Entity) -> dict[str, Any]:
    """The attributes of a merge that makes the stored alert say what the finding says."""
    changed: dict[str, Any] = {}
    for name, wanted in finding.content().items():
        if wanted != _value(stored.attrs, _CTX.expand(name)):
            changed[name] = NULL_URI if wanted is None else _attribute(name, wanted)
    return changed


def _kind_of(alert: Entity) -> str:
    """The kind an alert was raised for, from its data (its id cannot be split: device ids hold
    colons too)."""
    data = _value(alert.attrs, _DATA)
    if not isinstance(data, dict):
        return ""
    condition = str(data.get("condition", ""))
    return f"{condition}:{data.get('attribute')}" if condition == "outOfRange" else condition


def _value(attrs: Attrs, iri: str) -> Any:
    instances = attrs.get(iri)
    if not instances:
        return None
    first = instances[0]
    return first.get("object") if first.get("type") == "Relationship" else first.get("value")


def _reading(instances: list[dict[str, Any]]) -> tuple[float, str | None] | None:
    for instance in instances:
        value = instance.get("value")
        if _is_number(value):
            return value, instance.get("observedAt")
    return None


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_datetime(value, "date-time")
    except NgsiLdError:
        return None


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


# -- the profiles' expectations ----------------------------------------------------------------


def profile_interval(model: str) -> float | None:
    """Seconds between the reports of a device of this model as its profile sets it up."""
    profile = PROFILES.get(model)
    return None if profile is None else float(profile.reporting.expected)


def profile_range(model: str, reading: str) -> tuple[float, float] | None:
    """What a reading of this model can physically be, by its profile; an open end is
    unbounded."""
    profile = PROFILES.get(model)
    quantity = None if profile is None else profile.quantity(reading)
    if quantity is None or (quantity.minimum is None and quantity.maximum is None):
        return None
    low = -math.inf if quantity.minimum is None else quantity.minimum
    high = math.inf if quantity.maximum is None else quantity.maximum
    return low, high
