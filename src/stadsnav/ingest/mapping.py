"""Decoded readings as NGSI-LD observations of FIWARE Smart Data Models entities.

One uplink gives at most two observations, each a normalized entity fragment the broker merges
into its entity: one of the device's ``Device`` entity, and one of the entity the device
measures into (its *target*, e.g. a ``WasteContainer``) when the uplink measured something that
entity holds. Attribute names are the short Smart Data Models (SDM) names, which the broker
expands with the default @context; every measured Property carries ``observedAt`` and, when the
quantity has a unit, its UN/CEFACT Recommendation 20 code as ``unitCode``.

Where each reading goes is data, not code per model: ``TARGETS`` has one table per target type
(reading name -> SDM attribute, with the unit the reading must have and the range the schema
allows), ``DEVICE`` names the readings the SDM Device defines, and ``DROPPED`` lists the few
readings that are not stored, with the reason. Every other reading is kept on the Device entity
under its decoder name: SDM has no attribute for it on the target (battery voltage, alarms,
counters), and NGSI-LD lets an entity carry attributes beyond its model.

Choices a reader of the stored data should know:

- The registry owns what describes a device rather than one uplink (``controlledProperty``,
  which the SDM Device requires, category, lifecycle state). An observation only updates, so
  it never has to be a complete entity.
- ``location`` comes from the registry's binding and is written with every observation, not
  only the first: a pure function cannot know which uplink is the first, and rewriting keeps the
  entities where the registry says the device is. It has no ``observedAt``, so it adds no history.
- The raw distance of a downward-looking sensor is always kept on the Device as
  ``measuredDistance`` (SDM's ``Device.distance`` is where a device sits along a line, a
  different thing), so that a corrected ``binDepth`` or ``sensorHeight`` can be applied again.
- A ratio the sensor may overshoot for physical reasons is clamped into the schema's range
  (relative humidity, a filling level past the bin's bottom); any other value outside the range
  the schema gives is a MappingError, since it means a decoder or setting is wrong.
- Timestamps (``dateObserved``, ``dateLastValueReported``) are plain ISO 8601 UTC strings, the
  form the SDM keyValues schemas require and the store compares correctly in ``q``.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from stadsnav.ingest.decoders.base import UNITS, Reading, Value
from stadsnav.ngsild.entity import RESERVED_ATTRIBUTE_NAMES
from stadsnav.ngsild.errors import NgsiLdError
from stadsnav.ngsild.names import is_uri, is_valid_name, normalize_datetime

Attrs = dict[str, dict[str, Any]]
Settings = Mapping[str, float | str]


class MappingError(ValueError):
    """Readings that cannot become observations; the message is the reason, kept with the
    dead letter so that the uplink can be replayed once the binding or decoder is fixed."""


@dataclass(frozen=True, slots=True)
class Binding:
    """What the registry knows about a device that mapping needs.

    ``settings`` are per-installation numbers in metres: ``binDepth`` (sensor to the bin's
    bottom) for a fill-level sensor, ``sensorHeight`` (sensor to the water level's zero) for a
    water-level sensor. ``location`` is (longitude, latitude), GeoJSON's order.
    """

    device_id: str
    model: str
    target_id: str | None = None
    target_type: str | None = None
    settings: Settings = field(default_factory=dict)
    location: tuple[float, float] | None = None


@dataclass
class Observation:
    """A normalized entity fragment: ``attrs`` maps short SDM attribute names to NGSI-LD
    attribute payloads."""

    entity_id: str
    entity_type: str
    attrs: Attrs


@dataclass(frozen=True, slots=True)
class Attribute:
    """An SDM attribute a reading becomes: the reading's unit (also the unitCode written) and
    the range or the values the schema allows."""

    name: str
    unit: str | None = None
    kind: Literal["number", "text"] = "number"
    minimum: float | None = None
    maximum: float | None = None
    clamp: bool = False
    choices: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Derivation:
    """Attributes a target computes from a downward-looking sensor's distance and one
    installation setting; every output is checked against its Attribute like a reading."""

    setting: str
    compute: Callable[[float, float], Mapping[str, float]]
    outputs: Mapping[str, Attribute]


@dataclass(frozen=True, slots=True)
class Target:
    """How one SDM entity type takes readings.

    ``ref_device`` is how its schema holds the link to the Device (one id or a list of them;
    None when the schema has no refDevice). ``observed_time`` is the attribute its schema uses
    for the time of the observation. ``parts`` matches reading names about one part of the
    target, with the attribute name in the group ``base``.
    """

    attributes: Mapping[str, Attribute]
    ref_device: Literal["object", "list"] | None = None
    observed_time: str | None = None
    from_distance: Derivation | None = None
    parts: re.Pattern[str] | None = None


def _ratio(name: str, *, clamp: bool = False) -> Attribute:
    return Attribute(name, "P1", minimum=0, maximum=1, clamp=clamp)


_TEMPERATURE = Attribute("temperature", "CEL")
# Humidity sensors read a little past 0 and 100 % near the ends of their range (the DL-PM's
# formula, -6 + 125 S/65536 %, spans -6 to 119 %); air cannot, so the value is clipped.
_HUMIDITY = _ratio("relativeHumidity", clamp=True)

TARGETS: Mapping[str, Target] = MappingProxyType(
    {
        "WasteContainer": Target(
            {"temperature": _TEMPERATURE},
            ref_device="list",
            from_distance=Derivation(
                "binDepth",
                lambda distance, depth: {"fillingLevel": 1 - distance / depth},
                # Past the bottom (a distance beyond binDepth) is an empty bin, not an error.
                {"fillingLevel": _ratio("fillingLevel", clamp=True)},
            ),
        ),
        "AirQualityObserved": Target(
            {
                "pm1": Attribute("pm1", "GQ"),
                "pm25": Attribute("pm25", "GQ", minimum=0),
                "pm4": Attribute("pm4", "GQ", minimum=0),
                "pm10": Attribute("pm10", "GQ", minimum=0),
                "co2": Attribute("co2", "59", minimum=0),
                "temperature": _TEMPERATURE,
                "relativeHumidity": _HUMIDITY,
                "atmosphericPressure": Attribute("pressure", "A97", minimum=0),
            },
            ref_device="object",
            observed_time="dateObserved",
        ),
        "WeatherObserved": Target(
            {
                "temperature": _TEMPERATURE,
                "relativeHumidity": _HUMIDITY,
                "atmosphericPressure": Attribute("atmosphericPressure", "A97", minimum=0),
                "precipitation": Attribute("precipitation", "MMT", minimum=0),
                "windSpeed": Attribute("windSpeed", "MTS", minimum=0),
                "windDirection": Attribute("windDirection", "DD", minimum=0, maximum=360),
                "gustSpeed": Attribute("gustSpeed", "MTS"),
                "solarRadiation": Attribute("solarRadiation", "D54", minimum=0),
                "illuminance": Attribute("illuminance", "LUX", minimum=0),
            },
            ref_device="object",
            observed_time="dateObserved",
        ),
        "WaterQualityObserved": Target(
            {
                # In NTU, for which Recommendation 20 has no code.
                "turbidity": Attribute("turbidity", minimum=0),
                "temperature": _TEMPERATURE,
            },
            observed_time="dateObserved",
        ),
        "WaterObserved": Target(
            {},
            ref_device="object",
            observed_time="dateObserved",
            from_distance=Derivation(
                "sensorHeight",
                lambda distance, height: {"waterLevel": height - distance},
                # Below the zero is a dry channel or a well pumped empty.
                {"waterLevel": Attribute("waterLevel", "MTR", minimum=0, clamp=True)},
            ),
        ),
        "FloodMonitoring": Target(
            {},
            observed_time="observationDateTime",
            from_distance=Derivation(
                "sensorHeight",
                # The schema's own formula: currentLevel = referenceLevel - measuredDistance.
                lambda distance, height: {
                    "measuredDistance": distance,
                    "referenceLevel": height,
                    "currentLevel": height - distance,
                },
                {
                    name: Attribute(name, "MTR")
                    for name in ("measuredDistance", "referenceLevel", "currentLevel")
                },
            ),
        ),
        "Streetlight": Target(
            {
                "illuminanceLevel": _ratio("illuminanceLevel"),
                "status": Attribute(
                    "status",
                    kind="text",
                    choices=frozenset({"brokenLantern", "columnIssue", "defectiveLamp", "ok"}),
                ),
                "powerState": Attribute(
                    "powerState", kind="text", choices=frozenset({"bootingUp", "low", "off", "on"})
                ),
                "powerConsumption": Attribute("powerConsumption", "WTT"),
                "voltage": Attribute("voltage", "VLT"),
                "powerFactor": Attribute("powerFactor", "C62"),
                # The controller's meter counts the energy since it was installed.
                "activeEnergyImport": Attribute("lifetimePowerConsumption", "WHR"),
            },
            ref_device="list",
            observed_time="observationDateTime",
            # A luminaire controller names readings about one DALI driver with its address
            # (statusDali9, powerConsumptionDaliGroup2).
            parts=re.compile(r"(?P<base>.+?)Dali(?:Group)?\d+"),
        ),
    }
)

DEVICE: Mapping[str, Attribute] = MappingProxyType(
    {
        "batteryLevel": _ratio("batteryLevel"),
        "distance": Attribute("measuredDistance", "MTR", minimum=0),
        "firmwareVersion": Attribute("firmwareVersion", kind="text"),
        "serialNumber": Attribute("serialNumber", kind="text"),
    }
)

# Readings that are never stored: each repeats another reading of the same uplink.
DROPPED: Mapping[str, str] = MappingProxyType(
    {
        "northWindSpeed": "a component of windSpeed and windDirection, which are stored",
        "eastWindSpeed": "a component of windSpeed and windDirection, which are stored",
        "vaporPressure": "computed by the station from temperature and relativeHumidity",
        "turbidityFnu": "the turbidity measurement again, on the FNU scale",
        "turbidityMassConcentration": "the turbidity measurement converted by a fixed factor",
    }
)

# Recommendation 20 has no code for dBm; decibel says the value is a level, which the SDM
# Device's rssi takes relative to one milliwatt.
_RSSI = Attribute("rssi", "2N")
_SNR = Attribute("snr", "2N")
# Device attributes the mapping writes itself, which a reading must not overwrite.
_WRITTEN = frozenset(
    {"location", "rssi", "snr", "dateLastValueReported", "controlledAsset", "measuredDistance"}
)
# The store's JSON encoder holds integers of at most 64 bits.
_SMALLEST_INT, _LARGEST_INT = -(2**63), 2**64 - 1


def map_readings(
    binding: Binding,
    readings: Sequence[Reading],
    observed_at: str,
    *,
    rssi: float | None = None,
    snr: float | None = None,
    battery: float | None = None,
) -> list[Observation]:
    """The Device observation, then the target's if the uplink measured something it holds.

    ``rssi`` (dBm) and ``snr`` (dB) are the network's view of the uplink; ``battery`` is the
    network server's battery percentage, used when the payload carries no ``batteryLevel``.
    """
    at = _timestamp(observed_at)
    bound = _target(binding)
    target = None if bound is None else bound[2]
    latest = _latest(readings)
    if target is not None and target.parts is not None:
        latest = _promote_parts(latest, target.parts, target.attributes)
    device: Attrs = {}
    measured: Attrs = {}
    for reading in latest.values():
        spec = None if target is None else target.attributes.get(reading.name)
        if spec is not None:
            measured[spec.name] = _property(_checked(spec, reading), spec.unit, at)
        elif reading.name == "distance":
            spec = DEVICE["distance"]
            distance = _number(spec, reading)
            device[spec.name] = _property(distance, spec.unit, at)
            if target is not None and target.from_distance is not None:
                measured.update(_derive(target.from_distance, distance, binding, at))
        elif (spec := DEVICE.get(reading.name)) is not None:
            device[spec.name] = _property(_checked(spec, reading), spec.unit, at)
        else:
            device[reading.name] = _property(_plain(reading), reading.unit, at)
    if battery is not None and "batteryLevel" not in device:
        level = _bounded(DEVICE["batteryLevel"], "battery", _finite("battery", battery) / 100)
        device["batteryLevel"] = _property(level, "P1", at)
    for spec, value in ((_RSSI, rssi), (_SNR, snr)):
        if value is not None:
            device[spec.name] = _property(_finite(spec.name, value), spec.unit, at)
    device["dateLastValueReported"] = {"type": "Property", "value": at}
    location = _location(binding)
    if location is not None:
        device["location"] = location
    observations = [Observation(binding.device_id, "Device", device)]
    if bound is not None:
        target_id, target_type, target = bound
        device["controlledAsset"] = {"type": "Relationship", "object": [target_id]}
        if measured:
            measured.update(_circumstances(target, binding.device_id, at, location))
            observations.append(Observation(target_id, target_type, measured))
    return observations


def _timestamp(observed_at: str) -> str:
    try:
        return normalize_datetime(observed_at, "observedAt")
    except NgsiLdError as error:
        raise MappingError(str(error)) from None


def _target(binding: Binding) -> tuple[str, str, Target] | None:
    if not is_uri(binding.device_id):
        raise MappingError(f"device id {binding.device_id!r:.100} is not a URI")
    if binding.target_id is None and binding.target_type is None:
        return None
    if binding.target_id is None or binding.target_type is None:
        raise MappingError(f"device {binding.device_id} has a target without both id and type")
    target = TARGETS.get(binding.target_type)
    if target is None:
        known = ", ".join(sorted(TARGETS))
        raise MappingError(
            f"target type {binding.target_type!r:.100} is not mappable (mappable: {known})"
        )
    if not is_uri(binding.target_id):
        raise MappingError(f"target id {binding.target_id!r:.100} is not a URI")
    return binding.target_id, binding.target_type, target


def _latest(readings: Sequence[Reading]) -> dict[str, Reading]:
    """Readings by name, without the dropped ones. A frame may report a quantity twice (two
    threshold reports of one light sensor); the later one is kept."""
    latest: dict[str, Reading] = {}
    for reading in readings:
        _check_name(reading.name)
        if reading.unit is not None and reading.unit not in UNITS:
            raise MappingError(
                f"reading {reading.name} has unit {reading.unit!r:.50}, no known code"
            )
        if reading.name not in DROPPED:
            latest[reading.name] = reading
    return latest


def _check_name(name: str) -> None:
    if name in _WRITTEN:
        raise MappingError(f"reading {name} would overwrite the attribute the mapping writes")
    # The broker's rules for attribute names, checked here so that the reason names the reading.
    if name in RESERVED_ATTRIBUTE_NAMES or name.startswith("@"):
        raise MappingError(f"reading name {name!r:.100} is reserved in NGSI-LD")
    if not is_valid_name(name) or not _storable(name):
        raise MappingError(f"reading name {name!r:.100} is not a valid attribute name")


def _promote_parts(
    readings: dict[str, Reading], parts: re.Pattern[str], attributes: Mapping[str, Attribute]
) -> dict[str, Reading]:
    """A part's reading stands for the whole target when it is the only reading of that
    attribute in the uplink: a luminaire with one driver is described by that driver. With
    several parts, or a reading for the whole, the parts' readings stay on the Device."""
    names_by_base: dict[str, list[str]] = defaultdict(list)
    for name in readings:
        match = parts.fullmatch(name)
        if match is not None and match["base"] in attributes:
            names_by_base[match["base"]].append(name)
    promoted = dict(readings)
    for base, names in names_by_base.items():
        if base not in readings and len(names) == 1:
            part = promoted.pop(names[0])
            promoted[base] = Reading(base, part.value, part.unit)
    return promoted


def _checked(spec: Attribute, reading: Reading) -> Value:
    if spec.kind == "number":
        return _number(spec, reading)
    _check_unit(spec, reading)
    if not isinstance(reading.value, str):
        raise MappingError(f"reading {reading.name} is {reading.value!r:.100}, not text")
    if not _storable(reading.value):
        raise MappingError(f"reading {reading.name} holds text that cannot be stored")
    if spec.choices and reading.value not in spec.choices:
        allowed = ", ".join(sorted(spec.choices))
        raise MappingError(
            f"reading {reading.name} is {reading.value!r:.100}, not one of {allowed}"
        )
    return reading.value


def _number(spec: Attribute, reading: Reading) -> int | float:
    _check_unit(spec, reading)
    return _bounded(spec, reading.name, _finite(reading.name, reading.value))


def _check_unit(spec: Attribute, reading: Reading) -> None:
    if reading.unit != spec.unit:
        raise MappingError(
            f"reading {reading.name} is in {reading.unit or 'no unit'}, "
            f"{spec.name} takes {spec.unit or 'no unit'}"
        )


def _plain(reading: Reading) -> Value:
    """A reading kept under its own name: any JSON scalar the store can hold."""
    if isinstance(reading.value, str):
        if not _storable(reading.value):
            raise MappingError(f"reading {reading.name} holds text that cannot be stored")
        return reading.value
    if isinstance(reading.value, bool):
        return reading.value
    return _finite(reading.name, reading.value)


def _finite(what: str, value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MappingError(f"{what} is {value!r:.100}, not a number")
    if isinstance(value, int):
        if not _SMALLEST_INT <= value <= _LARGEST_INT:
            raise MappingError(f"{what} is an integer too large to store")
    elif not math.isfinite(value):
        raise MappingError(f"{what} is {value}, not a finite number")
    return value


def _bounded(spec: Attribute, what: str, value: int | float) -> int | float:
    if spec.minimum is not None and value < spec.minimum:
        if not spec.clamp:
            raise MappingError(f"{what} {value} is below the minimum {spec.minimum} of {spec.name}")
        value = spec.minimum
    if spec.maximum is not None and value > spec.maximum:
        if not spec.clamp:
            raise MappingError(f"{what} {value} is above the maximum {spec.maximum} of {spec.name}")
        value = spec.maximum
    return value


def _storable(text: str) -> bool:
    """PostgreSQL text holds no NUL, and JSON encoders refuse lone surrogates."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _derive(derivation: Derivation, distance: float, binding: Binding, at: str) -> Attrs:
    setting = binding.settings.get(derivation.setting)
    if (
        isinstance(setting, bool)
        or not isinstance(setting, int | float)
        or not math.isfinite(setting)
        or setting <= 0
    ):
        raise MappingError(
            f"{binding.model} on a {binding.target_type} needs the setting {derivation.setting} "
            f"in metres (a positive number), has {setting!r:.50}"
        )
    attrs: Attrs = {}
    for name, value in derivation.compute(distance, setting).items():
        spec = derivation.outputs[name]
        # Arithmetic on millimetre distances leaves float noise (0.15359999999999996); six
        # decimals keep micrometres and millionths, finer than any of these sensors resolve.
        attrs[name] = _property(_bounded(spec, name, round(value, 6)), spec.unit, at)
    return attrs


def _property(value: Value, unit: str | None, at: str) -> dict[str, Any]:
    attribute: dict[str, Any] = {"type": "Property", "value": value, "observedAt": at}
    if unit is not None:
        attribute["unitCode"] = unit
    return attribute


def _location(binding: Binding) -> dict[str, Any] | None:
    if binding.location is None:
        return None
    lon, lat = binding.location
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise MappingError(f"device {binding.device_id} has no valid location: {binding.location}")
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


def _circumstances(
    target: Target, device_id: str, at: str, location: dict[str, Any] | None
) -> Attrs:
    """What the target's observation says besides the measurements: when, by which device,
    where."""
    attrs: Attrs = {}
    if target.observed_time is not None:
        attrs[target.observed_time] = {"type": "Property", "value": at}
    if target.ref_device == "object":
        attrs["refDevice"] = {"type": "Relationship", "object": device_id}
    elif target.ref_device == "list":
        attrs["refDevice"] = {"type": "Relationship", "object": [device_id]}
    if location is not None:
        attrs["location"] = location
    return attrs
