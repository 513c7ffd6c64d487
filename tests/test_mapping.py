"""Decoded readings become Smart Data Models observations that fit their schemas.

Real payloads (tests/data/devices/) are decoded and mapped, and each observation, in keyValues
form, is validated against its FIWARE Smart Data Models JSON Schema (the copies in
tests/data/smart-data-models/, with every remote $ref resolved to those files). Documented
values are followed into the attribute they should reach, with its unitCode and observedAt.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from stadsnav.ingest.decoders import MODELS, Reading, decode
from stadsnav.ingest.decoders.base import UNITS
from stadsnav.ingest.mapping import (
    DEVICE,
    DROPPED,
    TARGETS,
    Binding,
    MappingError,
    Observation,
    map_readings,
)
from stadsnav.ngsild.context import core_context
from stadsnav.ngsild.entity import expand_entity

DATA = Path(__file__).parent / "data"
SDM = DATA / "smart-data-models"
DOCUMENTS: dict[str, dict[str, Any]] = {
    path.stem: json.loads(path.read_text(encoding="utf-8"))
    for path in sorted((DATA / "devices").glob("*.json"))
}
# AirQualityObserved refers to the Environment definitions by this address instead of their $id.
RAW_ENVIRONMENT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/"
    "Environment-schema.json"
)

DEVICE_ID = "urn:ngsi-ld:Device:a84041000181c4d1"
SLUSSEN = (18.0717, 59.3195)
OBSERVED_AT = "2026-11-23T08:00:00Z"
STORED_AT = "2026-11-23T08:00:00.000000Z"  # the platform's canonical form of OBSERVED_AT


def _schema_resources() -> Iterator[tuple[str, Resource[Any]]]:
    for path in sorted(SDM.rglob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(contents, default_specification=DRAFT202012)
        yield contents["$id"], resource
        if path.name == "Environment-schema.json":
            yield RAW_ENVIRONMENT, resource


REGISTRY: Registry[Any] = Registry().with_resources(_schema_resources())
SCHEMAS: dict[str, dict[str, Any]] = {
    path.parent.name: json.loads(path.read_text(encoding="utf-8"))
    for path in SDM.glob("*/schema.json")
    if path.parent.name != "common"
}
# Members a schema requires that an observation may lack, and why: an observation only updates
# an entity, and these come from elsewhere.
NOT_IN_EVERY_OBSERVATION = {
    ("Device", "controlledProperty"): "the registry's: what the device is installed to measure",
    ("Streetlight", "status"): "only status frames and driver alerts report it",
}


def _binding(model: str, target_type: str | None = None, **settings: float | str) -> Binding:
    target_id = None if target_type is None else f"urn:ngsi-ld:{target_type}:sthlm-0001"
    return Binding(DEVICE_ID, model, target_id, target_type, settings, SLUSSEN)


# How each documented device is installed for these tests, by its category.
BINDINGS: dict[str, Binding] = {
    "axioma-qalcosonic-w1": _binding("axioma-qalcosonic-w1"),
    "decentlab-dl-atm41": _binding("decentlab-dl-atm41", "WeatherObserved"),
    "decentlab-dl-mbx": _binding("decentlab-dl-mbx", "FloodMonitoring", sensorHeight=3.0),
    "decentlab-dl-ntu": _binding("decentlab-dl-ntu", "WaterQualityObserved"),
    "decentlab-dl-pm": _binding("decentlab-dl-pm", "AirQualityObserved"),
    "elsys-elt-2-hp": _binding("elsys-elt-2-hp", "WeatherObserved"),
    "elsys-ers-co2": _binding("elsys-ers-co2", "AirQualityObserved"),
    "json-environment": _binding("json-environment", "AirQualityObserved"),
    "milesight-em310-udl": _binding("milesight-em310-udl", "WasteContainer", binDepth=2.5),
    "milesight-em400-tld": _binding("milesight-em400-tld", "WasteContainer", binDepth=1.2),
    "nas-ul20xx": _binding("nas-ul20xx", "Streetlight"),
    "niab-fls": _binding("niab-fls", "WasteContainer", binDepth=1.2),
    "sensative-strips": _binding("sensative-strips"),
    "unknown-airquality-pm-no2": _binding("unknown-airquality-pm-no2", "AirQualityObserved"),
    "vega-vegapuls-air-41": _binding("vega-vegapuls-air-41", "WaterObserved", sensorHeight=3.0),
}


def _decoded(model: str, index: int) -> list[Reading]:
    example = DOCUMENTS[model]["examples"][index]
    fports = DOCUMENTS[model]["fPorts"] or [1]  # one source gives no fPort; any is accepted
    return decode(model, example.get("fPort", fports[0]), bytes.fromhex(example["payload_hex"]))


def _mapped(model: str, index: int) -> dict[str, Observation]:
    """The observations of one documented uplink, by entity type."""
    readings = _decoded(model, index)
    observations = map_readings(BINDINGS[model], readings, OBSERVED_AT, rssi=-97.0, snr=7.5)
    return {o.entity_type: o for o in observations}


def _key_values(observation: Observation) -> dict[str, Any]:
    simplified: dict[str, Any] = {"id": observation.entity_id, "type": observation.entity_type}
    for name, attribute in observation.attrs.items():
        simplified[name] = attribute["object" if attribute["type"] == "Relationship" else "value"]
    return simplified


# jsonschema checks "date-time" only with an optional package; RFC 3339 is this, on a real day.
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True  # "format" constrains strings only
    datetime.fromisoformat(value)  # raises on a day the calendar lacks
    return RFC3339.fullmatch(value) is not None


def _schema_errors(observation: Observation) -> list[str]:
    """Where the observation's keyValues break its schema; `required` is checked apart."""
    schema = {k: v for k, v in SCHEMAS[observation.entity_type].items() if k != "required"}
    validator = Draft202012Validator(schema, registry=REGISTRY, format_checker=FORMATS)
    errors = validator.iter_errors(_key_values(observation))
    return [f"{list(error.absolute_path)}: {error.message}" for error in errors]


def _schema_properties(entity_type: str) -> dict[str, Any]:
    """Every property the schema defines, its own and those of the common parts it refers to."""
    resolver = REGISTRY.resolver()
    found: dict[str, Any] = {}
    for part in SCHEMAS[entity_type]["allOf"]:
        if "$ref" in part:
            part = resolver.lookup(part["$ref"]).contents
        found.update(part.get("properties", {}))
    return found


def _examples() -> list[Any]:
    return [
        pytest.param(model, index, id=f"{model}-{index}")
        for model, document in DOCUMENTS.items()
        for index, example in enumerate(document["examples"])
        if example["decoded"] is not None
    ]


def test_every_documented_model_has_an_installation_here() -> None:
    assert set(BINDINGS) == set(MODELS)


@pytest.mark.parametrize(("model", "index"), _examples())
def test_every_observation_of_a_documented_payload_fits_its_smart_data_model(
    model: str, index: int
) -> None:
    for observation in _mapped(model, index).values():
        assert _schema_errors(observation) == [], observation.entity_type
        missing = set(SCHEMAS[observation.entity_type]["required"]) - set(observation.attrs)
        allowed = {
            name for kind, name in NOT_IN_EVERY_OBSERVATION if kind == observation.entity_type
        }
        assert missing - {"id", "type"} <= allowed, observation.entity_type
        # What the schema accepts, the broker must accept too.
        payload = {"id": observation.entity_id, "type": observation.entity_type}
        expand_entity({**payload, **observation.attrs}, core_context(), STORED_AT)


def _documented(model: str, index: int, key: str) -> Any:
    value = DOCUMENTS[model]["examples"][index]["decoded"][key]
    return value["value"] if isinstance(value, dict) else value


def _decimals(documented: Any) -> int:
    exponent = Decimal(str(documented)).as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


# Where documented values arrive, by (model, example): (entity type, attribute, documented key,
# factor from the documented unit to the unitCode's, unitCode). Values are compared to the
# precision the document shows.
ARRIVALS: dict[tuple[str, int], list[tuple[str, str, str, float, str | None]]] = {
    ("decentlab-dl-pm", 0): [
        ("AirQualityObserved", "pm1", "pm1_0_mass_concentration", 1, "GQ"),
        ("AirQualityObserved", "pm25", "pm2_5_mass_concentration", 1, "GQ"),
        ("AirQualityObserved", "pm4", "pm4_mass_concentration", 1, "GQ"),
        ("AirQualityObserved", "pm10", "pm10_mass_concentration", 1, "GQ"),
        ("AirQualityObserved", "temperature", "air_temperature", 1, "CEL"),
        ("AirQualityObserved", "relativeHumidity", "air_humidity", 0.01, "P1"),
        ("AirQualityObserved", "pressure", "barometric_pressure", 0.01, "A97"),
        ("Device", "batteryVoltage", "battery_voltage", 1, "VLT"),
        ("Device", "typicalParticleSize", "typical_particle_size", 1, "C45"),
    ],
    ("elsys-ers-co2", 0): [
        ("AirQualityObserved", "co2", "co2", 1, "59"),
        ("AirQualityObserved", "temperature", "temperature", 1, "CEL"),
        ("AirQualityObserved", "relativeHumidity", "humidity", 0.01, "P1"),
        ("Device", "illuminance", "light", 1, "LUX"),
        ("Device", "motionCount", "motion", 1, None),
    ],
    ("unknown-airquality-pm-no2", 0): [
        ("AirQualityObserved", "temperature", "temperature", 1, "CEL"),
        ("Device", "pm10Raw", "pm10raw", 1, None),
    ],
    ("decentlab-dl-atm41", 0): [
        ("WeatherObserved", "temperature", "air_temperature", 1, "CEL"),
        ("WeatherObserved", "relativeHumidity", "relative_humidity", 0.01, "P1"),
        ("WeatherObserved", "atmosphericPressure", "atmospheric_pressure", 10, "A97"),
        ("WeatherObserved", "precipitation", "precipitation", 1, "MMT"),
        ("WeatherObserved", "windSpeed", "wind_speed", 1, "MTS"),
        ("WeatherObserved", "windDirection", "wind_direction", 1, "DD"),
        ("WeatherObserved", "gustSpeed", "maximum_wind_speed", 1, "MTS"),
        ("WeatherObserved", "solarRadiation", "solar_radiation", 1, "D54"),
        ("Device", "internalTemperature", "sensor_temperature_internal", 1, "CEL"),
        ("Device", "lightningStrikeCount", "lightning_strike_count", 1, None),
    ],
    ("elsys-elt-2-hp", 0): [
        ("WeatherObserved", "temperature", "temperature", 1, "CEL"),
        ("WeatherObserved", "relativeHumidity", "humidity", 0.01, "P1"),
    ],
    ("decentlab-dl-ntu", 0): [
        ("WaterQualityObserved", "turbidity", "turbidity_in_ntu", 1, None),
        ("WaterQualityObserved", "temperature", "temperature", 1, "CEL"),
    ],
    ("milesight-em310-udl", 0): [
        ("Device", "batteryLevel", "battery", 0.01, "P1"),
        ("Device", "measuredDistance", "distance", 0.001, "MTR"),
    ],
    ("milesight-em400-tld", 0): [
        ("WasteContainer", "temperature", "temperature", 1, "CEL"),
    ],
    ("niab-fls", 0): [
        ("WasteContainer", "temperature", "temperature", 1, "CEL"),
        ("Device", "batteryLevel", "battery", 0.01, "P1"),
    ],
    ("decentlab-dl-mbx", 0): [
        ("FloodMonitoring", "measuredDistance", "distance", 0.001, "MTR"),
    ],
    ("vega-vegapuls-air-41", 0): [
        ("Device", "measuredDistance", "distance", 1, "MTR"),
        ("Device", "temperature", "temperature", 1, "CEL"),
    ],
    ("nas-ul20xx", 14): [
        ("Streetlight", "powerConsumption", "power__W", 1, "WTT"),
        ("Streetlight", "voltage", "voltage__V", 1, "VLT"),
        ("Streetlight", "powerFactor", "power_factor", 1, "C62"),
    ],
    ("axioma-qalcosonic-w1", 0): [
        ("Device", "waterConsumption", "current_volume", 1, "MTQ"),
    ],
    ("sensative-strips", 0): [
        ("Device", "temperature", "temperature", 1, "CEL"),
    ],
}


@pytest.mark.parametrize(
    ("model", "index", "entity_type", "attribute", "key", "factor", "unit_code"),
    [
        pytest.param(model, index, *arrival, id=f"{model}-{index}-{arrival[1]}")
        for (model, index), arrivals in ARRIVALS.items()
        for arrival in arrivals
    ],
)
def test_documented_values_arrive_in_their_attribute_with_unit_code_and_time(
    model: str,
    index: int,
    entity_type: str,
    attribute: str,
    key: str,
    factor: float,
    unit_code: str | None,
) -> None:
    documented = _documented(model, index, key)
    found = _mapped(model, index)[entity_type].attrs[attribute]
    tolerance = 0.5 * 10 ** -_decimals(documented) * factor
    assert found["value"] == pytest.approx(documented * factor, rel=1e-9, abs=tolerance)
    assert found.get("unitCode") == unit_code
    assert found["observedAt"] == STORED_AT
    assert found["type"] == "Property"


def test_documented_text_arrives_in_the_sdm_device_attributes() -> None:
    device = _mapped("nas-ul20xx", 15)["Device"].attrs
    assert device["firmwareVersion"]["value"] == _documented("nas-ul20xx", 15, "firmware_version")
    assert device["serialNumber"]["value"] == _documented("nas-ul20xx", 15, "device_serial")


def test_a_luminaire_status_frame_sets_the_streetlight_state() -> None:
    streetlight = _key_values(_mapped("nas-ul20xx", 0)["Streetlight"])
    assert streetlight["status"] == "ok"
    assert streetlight["powerState"] == "off"
    assert streetlight["illuminanceLevel"] == 0.25


def test_a_single_driver_reading_stands_for_its_luminaire() -> None:
    # The usage frame meters one DALI driver: it is the luminaire's power and energy.
    usage = _mapped("nas-ul20xx", 4)
    streetlight = _key_values(usage["Streetlight"])
    consumption = _documented("nas-ul20xx", 4, "consumption")[1]
    assert streetlight["powerConsumption"] == consumption["active_power__W"]
    assert streetlight["lifetimePowerConsumption"] == consumption["active_energy__Wh"]
    assert "powerConsumptionDali9" not in usage["Device"].attrs
    # A driver alert names the lamp of the only driver that reports.
    assert _key_values(_mapped("nas-ul20xx", 13)["Streetlight"])["status"] == "defectiveLamp"


def test_driver_readings_stay_on_the_device_beside_a_luminaire_wide_reading() -> None:
    # The status frame reports the broadcast level and driver 9's: the broadcast one is the
    # luminaire's.
    device = _mapped("nas-ul20xx", 0)["Device"].attrs
    assert device["illuminanceLevelDali9"]["value"] == 0.25
    assert device["statusDali9"]["value"] == "ok"


def test_readings_of_several_drivers_stay_on_the_device() -> None:
    readings = [
        Reading("powerConsumptionDali1", 40, "WTT"),
        Reading("powerConsumptionDali2", 38, "WTT"),
    ]
    observations = map_readings(BINDINGS["nas-ul20xx"], readings, OBSERVED_AT)
    assert [o.entity_type for o in observations] == ["Device"]
    assert observations[0].attrs["powerConsumptionDali2"]["value"] == 38


@pytest.mark.parametrize(
    ("distance", "depth", "level"),
    [
        pytest.param(0.3, 1.2, 0.75, id="three-quarters"),
        pytest.param(0.0, 1.2, 1.0, id="full-to-the-sensor"),
        pytest.param(1.2, 1.2, 0.0, id="empty-at-the-bottom"),
        pytest.param(1.5, 1.2, 0.0, id="past-the-bottom-clamped-to-empty"),
        pytest.param(2.116, 2.5, 0.1536, id="documented-em310-distance"),
    ],
)
def test_filling_level_is_one_minus_distance_over_bin_depth_within_zero_and_one(
    distance: float, depth: float, level: float
) -> None:
    binding = _binding("milesight-em310-udl", "WasteContainer", binDepth=depth)
    device, bin_ = map_readings(binding, [Reading("distance", distance, "MTR")], OBSERVED_AT)
    assert bin_.attrs["fillingLevel"] == {
        "type": "Property",
        "value": level,
        "observedAt": STORED_AT,
        "unitCode": "P1",
    }
    # The raw distance stays with the device, so that a corrected binDepth can be applied again.
    assert device.attrs["measuredDistance"]["value"] == distance


def test_the_documented_bin_sensor_uplink_fills_the_container() -> None:
    mapped = _mapped("milesight-em310-udl", 0)
    distance = _documented("milesight-em310-udl", 0, "distance") / 1000
    assert mapped["WasteContainer"].attrs["fillingLevel"]["value"] == pytest.approx(
        1 - distance / 2.5
    )
    assert mapped["Device"].attrs["tilted"]["value"] is True


def test_water_level_is_sensor_height_minus_distance_and_never_below_zero() -> None:
    distance = _documented("vega-vegapuls-air-41", 0, "distance")
    water = _mapped("vega-vegapuls-air-41", 0)["WaterObserved"].attrs["waterLevel"]
    assert water["value"] == pytest.approx(3.0 - distance, abs=1e-5)
    assert water["unitCode"] == "MTR"
    dry = _binding("vega-vegapuls-air-41", "WaterObserved", sensorHeight=1.0)
    observations = map_readings(dry, [Reading("distance", 1.3, "MTR")], OBSERVED_AT)
    assert observations[1].attrs["waterLevel"]["value"] == 0.0


def test_flood_level_follows_the_schema_formula_reference_minus_distance() -> None:
    flood = _key_values(_mapped("decentlab-dl-mbx", 0)["FloodMonitoring"])
    distance = _documented("decentlab-dl-mbx", 0, "distance") / 1000
    assert flood["referenceLevel"] == 3.0
    assert flood["currentLevel"] == pytest.approx(3.0 - distance)
    assert flood["observationDateTime"] == STORED_AT


def test_the_device_observation_comes_first_and_links_the_target_both_ways() -> None:
    observations = map_readings(
        BINDINGS["decentlab-dl-pm"], _decoded("decentlab-dl-pm", 0), OBSERVED_AT
    )
    device, air = (_key_values(o) for o in observations)
    assert device["id"] == DEVICE_ID
    assert device["controlledAsset"] == [air["id"]]
    assert air["refDevice"] == DEVICE_ID
    assert air["dateObserved"] == STORED_AT
    assert device["dateLastValueReported"] == STORED_AT
    assert device["location"] == air["location"] == {"type": "Point", "coordinates": list(SLUSSEN)}


def test_an_uplink_without_measurements_for_the_target_updates_only_the_device() -> None:
    # Example 1 of the DL-MBX is the battery-only frame: no distance, so no binDepth needed.
    binding = _binding("decentlab-dl-mbx", "WasteContainer")
    observations = map_readings(binding, _decoded("decentlab-dl-mbx", 1), OBSERVED_AT)
    assert [o.entity_type for o in observations] == ["Device"]
    assert observations[0].attrs["batteryVoltage"]["value"] == 2.993


def test_the_network_link_quality_is_kept_in_decibels() -> None:
    device = _mapped("niab-fls", 0)["Device"].attrs
    assert device["rssi"] == {
        "type": "Property",
        "value": -97.0,
        "observedAt": STORED_AT,
        "unitCode": "2N",
    }
    assert device["snr"]["unitCode"] == "2N"


def test_the_network_server_battery_counts_only_when_the_payload_has_none() -> None:
    binding = BINDINGS["decentlab-dl-ntu"]
    voltage_only = map_readings(binding, _decoded("decentlab-dl-ntu", 1), OBSERVED_AT, battery=40)
    assert voltage_only[0].attrs["batteryLevel"]["value"] == 0.4
    own = map_readings(BINDINGS["niab-fls"], _decoded("niab-fls", 0), OBSERVED_AT, battery=40)
    assert own[0].attrs["batteryLevel"]["value"] == _documented("niab-fls", 0, "battery") / 100


def test_a_water_meter_keeps_its_volume_and_alarms_on_its_device() -> None:
    observations = _mapped("axioma-qalcosonic-w1", 1)
    assert set(observations) == {"Device"}
    device = _key_values(observations["Device"])
    assert device["leakAlarm"] is True
    assert "controlledAsset" not in device


def test_dropped_readings_are_stored_nowhere() -> None:
    for model, index in (("decentlab-dl-atm41", 0), ("decentlab-dl-ntu", 0)):
        stored = {name for o in _mapped(model, index).values() for name in o.attrs}
        assert not stored & set(DROPPED), model


def test_a_reading_repeated_in_one_frame_keeps_its_later_value() -> None:
    readings = [Reading("illuminance", 10, "LUX"), Reading("illuminance", 12, "LUX")]
    device = map_readings(BINDINGS["sensative-strips"], readings, OBSERVED_AT)[0]
    assert device.attrs["illuminance"]["value"] == 12


def test_humidity_past_saturation_is_clamped_to_one() -> None:
    readings = [Reading("relativeHumidity", 1.02, "P1")]
    weather = map_readings(BINDINGS["elsys-elt-2-hp"], readings, OBSERVED_AT)[1]
    assert weather.attrs["relativeHumidity"]["value"] == 1


def test_without_a_location_in_the_registry_none_is_written() -> None:
    binding = Binding(
        DEVICE_ID, "niab-fls", "urn:ngsi-ld:WasteContainer:1", "WasteContainer", {"binDepth": 1.2}
    )
    for observation in map_readings(binding, _decoded("niab-fls", 0), OBSERVED_AT):
        assert "location" not in observation.attrs


def test_every_table_attribute_is_in_its_schema_with_the_schema_range() -> None:
    for entity_type, target in TARGETS.items():
        properties = _schema_properties(entity_type)
        specs = [*target.attributes.values()]
        if target.from_distance is not None:
            specs += target.from_distance.outputs.values()
        for spec in specs:
            assert spec.name in properties, (entity_type, spec.name)
            schema = properties[spec.name]
            if spec.kind == "number":
                assert schema["type"] == "number", (entity_type, spec.name)
                assert spec.minimum == schema.get("minimum"), (entity_type, spec.name)
                assert spec.maximum == schema.get("maximum"), (entity_type, spec.name)
            else:
                assert set(spec.choices) == set(schema.get("enum", [])), (entity_type, spec.name)
        links = {target.observed_time} | ({"refDevice"} if target.ref_device else set())
        assert links - {None} <= set(properties), entity_type
    device = _schema_properties("Device")
    # SDM's Device.distance is where a device sits along a line, not what it measures.
    assert {spec.name for spec in DEVICE.values()} - set(device) == {"measuredDistance"}


@pytest.mark.parametrize(
    ("binding", "readings", "reason"),
    [
        pytest.param(
            _binding("niab-fls", "WasteContainer"),
            [Reading("distance", 0.5, "MTR")],
            "binDepth",
            id="fill-level-sensor-without-bin-depth",
        ),
        pytest.param(
            _binding("niab-fls", "WasteContainer", binDepth=0.0),
            [Reading("distance", 0.5, "MTR")],
            "binDepth",
            id="bin-depth-zero",
        ),
        pytest.param(
            _binding("niab-fls", "WasteContainer", binDepth="1.2"),
            [Reading("distance", 0.5, "MTR")],
            "binDepth",
            id="bin-depth-as-text",
        ),
        pytest.param(
            _binding("vega-vegapuls-air-41", "WaterObserved"),
            [Reading("distance", 0.5, "MTR")],
            "sensorHeight",
            id="water-level-sensor-without-height",
        ),
        pytest.param(
            _binding("niab-fls", "ParkingSpot"),
            [Reading("temperature", 1.0, "CEL")],
            "not mappable",
            id="target-type-without-a-table",
        ),
        pytest.param(
            Binding(DEVICE_ID, "niab-fls", None, "WasteContainer"),
            [],
            "both id and type",
            id="target-type-without-id",
        ),
        pytest.param(Binding("sensor 1", "niab-fls"), [], "not a URI", id="device-id-not-a-uri"),
        pytest.param(
            _binding("decentlab-dl-pm", "AirQualityObserved"),
            [Reading("pm25", 3.0, "59")],
            "takes GQ",
            id="reading-in-another-unit",
        ),
        pytest.param(
            _binding("decentlab-dl-atm41", "WeatherObserved"),
            [Reading("windDirection", 400.0, "DD")],
            "maximum 360",
            id="value-outside-the-schema-range",
        ),
        pytest.param(
            _binding("nas-ul20xx", "Streetlight"),
            [Reading("status", "broken", None)],
            "not one of",
            id="state-outside-the-schema-enum",
        ),
        pytest.param(
            _binding("sensative-strips"),
            [Reading("temperature", math.nan, "CEL")],
            "not a finite number",
            id="not-a-number",
        ),
        pytest.param(
            _binding("sensative-strips"),
            [Reading("temperature", 21.0, "XYZ")],
            "no known code",
            id="unit-code-unknown",
        ),
        pytest.param(
            _binding("sensative-strips"), [Reading("id", 1, None)], "reserved", id="reserved-name"
        ),
        pytest.param(
            _binding("sensative-strips"),
            [Reading("lamp state", "on", None)],
            "not a valid attribute name",
            id="name-with-a-space",
        ),
        pytest.param(
            _binding("sensative-strips"),
            [Reading("rssi", -80, None)],
            "would overwrite",
            id="name-the-mapping-writes",
        ),
        pytest.param(
            _binding("sensative-strips"),
            [Reading("firmwareVersion", "1.0\x00", None)],
            "cannot be stored",
            id="text-with-nul",
        ),
        pytest.param(
            _binding("sensative-strips"),
            [Reading("label", "\ud800", None)],
            "cannot be stored",
            id="text-with-lone-surrogate",
        ),
    ],
)
def test_readings_that_cannot_be_mapped_raise_mapping_error_with_the_reason(
    binding: Binding, readings: list[Reading], reason: str
) -> None:
    with pytest.raises(MappingError, match=reason):
        map_readings(binding, readings, OBSERVED_AT)


def test_an_observation_time_that_is_no_date_raises_mapping_error() -> None:
    with pytest.raises(MappingError, match="date-time"):
        map_readings(BINDINGS["niab-fls"], [], "yesterday")


# Readings a decoder could send: the names the tables know with their units, and anything else.
KNOWN = sorted(
    {(name, spec.unit) for target in TARGETS.values() for name, spec in target.attributes.items()}
    | {(name, spec.unit) for name, spec in DEVICE.items()}
    | {("statusDali3", None), ("powerConsumptionDaliGroup2", "WTT"), ("tilted", None)}
    | {(name, None) for name in DROPPED},
    key=str,
)
VALUES = st.one_of(st.booleans(), st.integers(), st.floats(), st.text(max_size=12))
# Values every table accepts for its numbers and states, so that whole uplinks do map.
PLAUSIBLE = st.one_of(st.floats(0, 1), st.sampled_from(["ok", "on", "defectiveLamp"]))


def _known(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Reading]:
    return st.builds(
        lambda pair, value: Reading(pair[0], value, pair[1]), st.sampled_from(KNOWN), values
    )


ANYTHING = st.builds(
    Reading,
    st.text(max_size=12),
    VALUES,
    st.one_of(st.none(), st.sampled_from(sorted(UNITS)), st.text(max_size=4)),
)
READINGS = st.lists(
    st.one_of(_known(PLAUSIBLE), _known(PLAUSIBLE), _known(VALUES), ANYTHING), max_size=8
)
SETTINGS = st.dictionaries(
    st.sampled_from(["binDepth", "sensorHeight"]),
    st.one_of(st.floats(0.5, 5), st.floats(), st.integers(-5, 5), st.text(max_size=4)),
)


@st.composite
def _bindings(draw: st.DrawFn) -> Binding:
    target_type = draw(st.sampled_from([None, "ParkingSpot", *sorted(TARGETS)]))
    target_id = None if target_type is None else f"urn:ngsi-ld:{target_type}:x"
    location = draw(st.none() | st.tuples(st.floats(-180, 180), st.floats(-90, 90)))
    return Binding(DEVICE_ID, "any", target_id, target_type, draw(SETTINGS), location)


@settings(max_examples=300)
@given(
    binding=_bindings(),
    readings=READINGS,
    rssi=st.none() | st.floats(),
    battery=st.none() | st.floats(0, 100),
)
def test_any_readings_map_or_raise_mapping_error_and_what_maps_the_broker_accepts(
    binding: Binding, readings: list[Reading], rssi: float | None, battery: float | None
) -> None:
    try:
        observations = map_readings(binding, readings, OBSERVED_AT, rssi=rssi, battery=battery)
    except MappingError:
        return
    for observation in observations:
        payload: Mapping[str, Any] = {
            "id": observation.entity_id,
            "type": observation.entity_type,
            **observation.attrs,
        }
        expand_entity(payload, core_context(), STORED_AT)
        orjson.dumps(payload)
