"""Documented payloads decode to their documented values; no payload escapes DecodeError.

The examples are published payloads (tests/data/devices/, see its README). Each documented
value is looked up among the readings under the decoder's name and compared in the decoder's
unit, to the precision the document shows. A documented value the decoders do not report is
listed with the reason, so that a new field in a document fails the test until it is placed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stadsnav.ingest.decoders import MODELS, DecodeError, Reading, decode
from stadsnav.ingest.decoders.base import UNITS

DEVICES = Path(__file__).parent / "data" / "devices"
DOCUMENTS: dict[str, dict[str, Any]] = {
    path.stem: json.loads(path.read_text(encoding="utf-8"))
    for path in sorted(DEVICES.glob("*.json"))
}


@dataclass(frozen=True)
class Field:
    """Where a documented value appears among the readings."""

    name: str
    unit: str | None = None
    # Documented unit -> reading unit, for numbers.
    factor: float = 1.0
    # Documented value -> reading value, for what is not a plain number.
    convert: Callable[[Any], Any] | None = None


# A documented key maps to the Field that reports it, or to the reason it is not reported.
Placement = Field | str
# Documented values as (key, value, placement); a placement of None means "nowhere".
Documented = Iterator[tuple[str, Any, Placement | None]]

PERCENT = 0.01
HEADER = "frame header, not a measurement"
DEVICE_ID = "device id in the frame; the network server identifies the device"
DEVICE_CLOCK = "the device's clock; readings are stamped with the uplink's time"
HISTORY = "hourly history; a reading has no time of its own to carry it"
CONFIGURATION = "configuration or command echo, not a measurement"
RAW_LDR = "raw LDR input level, without unit"

BATTERY_PERCENT = Field("batteryLevel", "P1", PERCENT)
HUMIDITY_PERCENT = Field("relativeHumidity", "P1", PERCENT)
TEMPERATURE = Field("temperature", "CEL")
DISTANCE_MM = Field("distance", "MTR", 0.001)
BATTERY_VOLTS = Field("batteryVoltage", "VLT")
MILLIVOLTS = Field("batteryVoltage", "VLT", 0.001)
TILT = Field("tilted", convert=lambda position: position == "tilt")
DERIVED_BATTERY = "derived by diwise from the supply voltage by its own curve, not in the payload"
DECENTLAB_FRAME: dict[str, Placement] = {"protocol_version": HEADER, "device_id": DEVICE_ID}
AXIOMA_STATUS: dict[str, Placement] = {
    "status": Field("statusCode"),
    "status_code": Field("statusCode"),
    "low_battery": Field("lowBatteryAlarm"),
    "permanent_error": Field("permanentErrorAlarm"),
    "temporary_error": Field("temporaryErrorAlarm"),
    "pipe_empty": Field("emptyPipeAlarm"),
    "backflow": Field("backflowAlarm"),
    "burst": Field("burstAlarm"),
    "leakage": Field("leakAlarm"),
    "low_temperature": Field("lowTemperatureAlarm"),
}

PLACEMENTS: dict[str, dict[str, Placement]] = {
    "milesight-em310-udl": {"battery": BATTERY_PERCENT, "distance": DISTANCE_MM, "tilt": TILT},
    "milesight-em400-tld": {
        "battery": BATTERY_PERCENT,
        "temperature": TEMPERATURE,
        "distance": DISTANCE_MM,
        "position": TILT,
    },
    "niab-fls": {
        "battery": BATTERY_PERCENT,
        "temperature": TEMPERATURE,
        "distance": Field("distance", "MTR"),
    },
    "vega-vegapuls-air-41": {
        "packet_identifier": HEADER,
        "distance": Field("distance", "MTR"),
        "temperature": TEMPERATURE,
        "battery": BATTERY_PERCENT,
    },
    "decentlab-dl-mbx": {
        **DECENTLAB_FRAME,
        "distance": DISTANCE_MM,
        "number_of_valid_samples": Field("numberOfValidSamples"),
        "battery_voltage": BATTERY_VOLTS,
    },
    "json-environment": {
        "temperature": TEMPERATURE,
        "humidity": HUMIDITY_PERCENT,
        "co2": Field("co2", "59"),
        "pm25": Field("pm25", "GQ"),
        "pm10": Field("pm10", "GQ"),
        "battery": BATTERY_PERCENT,
    },
    "elsys-ers-co2": {
        "temperature": TEMPERATURE,
        "humidity": HUMIDITY_PERCENT,
        "light": Field("illuminance", "LUX"),
        "motion": Field("motionCount"),
        "co2": Field("co2", "59"),
        "vdd": MILLIVOLTS,
        "battery_level": DERIVED_BATTERY,
    },
    "elsys-elt-2-hp": {
        "temperature": TEMPERATURE,
        "humidity": HUMIDITY_PERCENT,
        "supply_voltage": MILLIVOLTS,
        "battery_level": DERIVED_BATTERY,
        "digital_input": Field("digitalInput1"),
    },
    "sensative-strips": {
        "historySeqNr": HEADER,
        "prevHistSeqNr": HEADER,
        "battery": BATTERY_PERCENT,
        "temperature": TEMPERATURE,
        "tempAlarm.highAlarm": Field("temperatureHighAlarm"),
        "tempAlarm.lowAlarm": Field("temperatureLowAlarm"),
        "flood": Field("flood", "P1", PERCENT),
        "floodAlarm": Field("floodAlarm"),
        "userSwitch1Alarm": Field("userSwitchAlarm"),
        "closeProximityAlarm": Field("closeProximityAlarm"),
        "buildId.id": Field("firmwareVersion", convert=lambda build: f"{build:08x}"),
        "buildId.modified": "bit 31 of the build word, which is reported whole",
    },
    "decentlab-dl-pm": {
        **DECENTLAB_FRAME,
        "battery_voltage": BATTERY_VOLTS,
        "pm1_0_mass_concentration": Field("pm1", "GQ"),
        "pm2_5_mass_concentration": Field("pm25", "GQ"),
        "pm4_mass_concentration": Field("pm4", "GQ"),
        "pm10_mass_concentration": Field("pm10", "GQ"),
        "typical_particle_size": Field("typicalParticleSize", "C45"),
        "pm0_5_number_concentration": Field("pm05NumberConcentration", "H50"),
        "pm1_0_number_concentration": Field("pm1NumberConcentration", "H50"),
        "pm2_5_number_concentration": Field("pm25NumberConcentration", "H50"),
        "pm4_number_concentration": Field("pm4NumberConcentration", "H50"),
        "pm10_number_concentration": Field("pm10NumberConcentration", "H50"),
        "air_temperature": TEMPERATURE,
        "air_humidity": HUMIDITY_PERCENT,
        "barometric_pressure": Field("atmosphericPressure", "A97", 0.01),
    },
    "unknown-airquality-pm-no2": {
        "pm10raw": Field("pm10Raw"),
        "pm25raw": Field("pm25Raw"),
        "pm10": "calibrated from the raw value by a formula the source does not give",
        "pm25": "calibrated from the raw value by a formula the source does not give",
        "no2": "the source gives neither the scale nor the unit of the NO2 word",
        "temperature": TEMPERATURE,
        "humidity": HUMIDITY_PERCENT,
        "sensorerror": Field("sensorError"),
    },
    "decentlab-dl-atm41": {
        **DECENTLAB_FRAME,
        "solar_radiation": Field("solarRadiation", "D54"),
        "precipitation": Field("precipitation", "MMT"),
        "lightning_strike_count": Field("lightningStrikeCount"),
        "lightning_average_distance": Field("lightningAverageDistance", "KMT"),
        "wind_speed": Field("windSpeed", "MTS"),
        "wind_direction": Field("windDirection", "DD"),
        "maximum_wind_speed": Field("gustSpeed", "MTS"),
        "air_temperature": TEMPERATURE,
        "vapor_pressure": Field("vaporPressure", "A97", 10),
        "atmospheric_pressure": Field("atmosphericPressure", "A97", 10),
        "relative_humidity": HUMIDITY_PERCENT,
        "sensor_temperature_internal": Field("internalTemperature", "CEL"),
        "x_orientation_angle": Field("xOrientationAngle", "DD"),
        "y_orientation_angle": Field("yOrientationAngle", "DD"),
        "compass_heading": Field("compassHeading", "DD"),
        "north_wind_speed": Field("northWindSpeed", "MTS"),
        "east_wind_speed": Field("eastWindSpeed", "MTS"),
        "battery_voltage": BATTERY_VOLTS,
    },
    "decentlab-dl-ntu": {
        **DECENTLAB_FRAME,
        "status": Field("sensorStatus"),
        "temperature": TEMPERATURE,
        "turbidity_in_ntu": Field("turbidity"),
        "turbidity_in_fnu": Field("turbidityFnu"),
        "turbidity_in_mg_l": Field("turbidityMassConcentration", "M1"),
        "battery_voltage": BATTERY_VOLTS,
    },
    "axioma-qalcosonic-w1": {
        **AXIOMA_STATUS,
        "payload_format": HEADER,
        "frame_version": HEADER,
        "payload_bytes": HEADER,
        "timestamp_unix": DEVICE_CLOCK,
        "timestamp_utc": DEVICE_CLOCK,
        "current_volume": Field("waterConsumption", "MTQ"),
        "water_temperature": TEMPERATURE,
        "log_volume": HISTORY,
        "deltas_m3": HISTORY,
        "history_count": HISTORY,
        "history_total": HISTORY,
        "hourly_volumes_count": HISTORY,
        "volumes_count": HISTORY,
        "cumulated_volume_object_15": HISTORY,
        "cumulated_volume_object_16": HISTORY,
        "history_multiplier": "0 in every example; the decoder rejects others",
    },
    "nas-ul20xx": {
        "packet_type": HEADER,
        "device_unix_epoch": DEVICE_CLOCK,
        "status.dali_connection_error": Field("daliConnectionError"),
        "status.metering_com_error": Field("meteringComError"),
        "status.ext_rtc_warning": "clock hardware warning, for the controller's maintainer",
        "status.internal_relay_closed": "relay state; each driver reports its lamp's powerState",
        "status.open_drain_output_on": "an output the controller drives, not a measurement",
        "status.lumalink_connected": "connection of the commissioning app",
        "status.lumalink_connected_after_boot": "connection of the commissioning app",
        "status.ldr_input_on": RAW_LDR,
        "status.dig_input_on": Field("digitalInput"),
        "downlink_rssi__dBm": "downlink radio quality, the network server's business",
        "downlink_snr__dB": "downlink radio quality, the network server's business",
        "mcu_temperature__C": Field("mcuTemperature", "CEL"),
        "active_alerts.voltage_alert_in_24h": Field("voltageAlertIn24h"),
        "active_alerts.lamp_error_alert_in_24h": Field("lampErrorAlertIn24h"),
        "active_alerts.power_alert_in_24h": Field("powerAlertIn24h"),
        "active_alerts.power_factor_alert_in_24h": Field("powerFactorAlertIn24h"),
        "sensor_source.ldr_input": RAW_LDR,
        "sensor_source.light_sensor__lx": Field("illuminance", "LUX", convert=float),
        "sensor_source.dig_input_1_on": Field("digitalInput"),
        "query_data_raw": CONFIGURATION,
        "dali_command": CONFIGURATION,
        "status_requested": CONFIGURATION,
        "usage_requested": CONFIGURATION,
        "dim_map_report_requested": CONFIGURATION,
        "request_gnss_notification": CONFIGURATION,
        "address": CONFIGURATION,
        "memory_bank": CONFIGURATION,
        "memory_address": CONFIGURATION,
        "memory_value": CONFIGURATION,
        "dig_input_on": Field("digitalInput"),
        "dig_input_event_counter": "event counter, not a measurement",
        "ldr_input_on": RAW_LDR,
        "ldr_input_value": RAW_LDR,
        "lamp_error_alert": Field("lampErrorAlert"),
        "over_current_alert": Field("overCurrentAlert"),
        "under_voltage_alert": Field("underVoltageAlert"),
        "over_voltage_alert": Field("overVoltageAlert"),
        "low_power_factor_alert": Field("lowPowerFactorAlert"),
        "power__W": Field("powerConsumption", "WTT"),
        "voltage__V": Field("voltage", "VLT"),
        "power_factor": Field("powerFactor", "C62"),
        "device_serial": Field("serialNumber"),
        "firmware_version": Field("firmwareVersion"),
        "device_config": CONFIGURATION,
        "optional_features.dig_input": CONFIGURATION,
        "optional_features.ldr_input": CONFIGURATION,
        "optional_features.open_drain_output": CONFIGURATION,
        "optional_features.metering": CONFIGURATION,
        "dali_supply_state__V": CONFIGURATION,
        "dali_power_source_external": CONFIGURATION,
        "dali_addressed_driver_count": CONFIGURATION,
        "dali_unaddressed_driver_found": CONFIGURATION,
        "reset_reason": "why the controller restarted, for its maintainer",
        "downlink_from_fport": "a downlink the controller rejected, for the operator's log",
        "error_reason": "a downlink the controller rejected, for the operator's log",
    },
}

# Documented values that contradict their own payload bytes: (model, key) -> (value, why).
CONTRADICTED: dict[tuple[str, str], tuple[Any, str]] = {
    ("elsys-ers-co2", "vdd"): (
        3450,
        "the diwise fixture's codec object is stale: its bytes 07 0E 34 say 3636 mV",
    ),
}


def _contradicted(model: str, key: str, documented: Any) -> bool:
    entry = CONTRADICTED.get((model, key))
    return entry is not None and entry[0] == documented


# NAS reports per DALI address: lists of entries whose readings carry the address in the name.
NAS_PER_ADDRESS = {"dimming_source", "destination", "consumption", "drivers"}
NAS_ENTRY: dict[str, Placement] = {
    "reason": "what set the dimming level (calendar step, input, ...), not a measurement",
    "dimming_level__percent": Field("illuminanceLevel", "P1", PERCENT),
    "active_energy__Wh": Field("activeEnergyImport", "WHR"),
    "active_power__W": Field("powerConsumption", "WTT"),
    "load_side_energy__Wh": Field("loadSideEnergy", "WHR"),
    "load_side_power__W": Field("loadSidePower", "WTT"),
    "power_factor": Field("powerFactor", "C62"),
    "mains_voltage__V": Field("voltage", "VLT"),
    "driver_operating_time__h": Field("driverOperatingTime", "HUR"),
    "lamp_on_time__h": Field("lampOnTime", "HUR"),
    "dali_min_level": CONFIGURATION,
    "dali_max_level": CONFIGURATION,
    "dimming_curve": CONFIGURATION,
}


def _lamp_status(status: Mapping[str, bool]) -> str:
    if status["lamp_failure"]:
        return "defectiveLamp"
    return "brokenLantern" if status["driver_error"] else "ok"


def _nas_suffix(address: str) -> str:
    kind, _, number = address.rpartition("_")
    if kind == "dali_single":
        return f"Dali{number}"
    if kind == "dali_group":
        return f"DaliGroup{number}"
    return ""  # broadcast, the 0-10 V output, the controller's own meter


def _nas_entries(key: str, entries: list[dict[str, Any]]) -> Documented:
    for index, entry in enumerate(entries):
        suffix = _nas_suffix(entry["address"])
        for name, value in entry.items():
            where = f"{key}[{index}].{name}"
            if name == "address":
                continue
            if name == "status":
                # With the relay off the driver is unpowered: its status byte is 0xFF, which the
                # vendor codec shows as all false and the decoder leaves out.
                if entry.get("reason") == "relay_off":
                    continue
                yield where, value, Field(f"status{suffix}", convert=_lamp_status)
                on = Field(f"powerState{suffix}", convert=lambda s: "on" if s["lamp_on"] else "off")
                yield where, value, on
            elif name == "dimming_level__percent" and not isinstance(value, int):
                continue  # "n/a" or "resume": no level in the frame
            else:
                placement = NAS_ENTRY.get(name)
                if isinstance(placement, Field):
                    placement = Field(
                        placement.name + suffix, placement.unit, placement.factor, placement.convert
                    )
                yield where, value, placement


def _documented(model: str, decoded: Mapping[str, Any]) -> Documented:
    """Every documented value with where it shows up (None: nowhere), nested keys dotted."""
    for key, value in decoded.items():
        if model == "nas-ul20xx" and key in NAS_PER_ADDRESS:
            yield from _nas_entries(key, value)
        elif isinstance(value, dict) and "value" not in value:
            yield from _documented(model, {f"{key}.{sub}": item for sub, item in value.items()})
        else:
            leaf = value["value"] if isinstance(value, dict) else value
            yield key, leaf, PLACEMENTS[model].get(key)


def _examples(rejected: bool) -> list[Any]:
    return [
        pytest.param(model, example, id=f"{model}-{index}")
        for model, document in DOCUMENTS.items()
        for index, example in enumerate(document["examples"])
        if (example["decoded"] is None) == rejected
    ]


def _fport(model: str, example: Mapping[str, Any]) -> int:
    # One source gives no fPort; its decoder accepts any.
    fports = DOCUMENTS[model]["fPorts"] or [1]
    fport: int = example.get("fPort", fports[0])
    return fport


def _decimals(documented: Any) -> int:
    exponent = Decimal(str(documented)).as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def _assert_placed(
    readings: Mapping[str, Reading], key: str, documented: Any, field: Field
) -> None:
    assert field.name in readings, f"{key}: no reading {field.name}"
    reading = readings[field.name]
    assert reading.unit == field.unit, f"{key}: unit of {field.name}"
    expected = field.convert(documented) if field.convert else documented
    if isinstance(expected, bool | str):
        assert type(reading.value) is type(expected), f"{key}: type of {field.name}"
        assert reading.value == expected, f"{key}: {field.name}"
        return
    # Documents round; a value agrees if it rounds to what the document shows.
    tolerance = 0.5 * 10 ** -_decimals(documented) * field.factor
    assert reading.value == pytest.approx(expected * field.factor, rel=1e-9, abs=tolerance), key


def _assert_wellformed(readings: list[Reading]) -> None:
    for reading in readings:
        assert isinstance(reading, Reading)
        assert reading.unit is None or reading.unit in UNITS, reading
        assert not (isinstance(reading.value, float) and not math.isfinite(reading.value)), reading


def test_every_documented_device_model_has_a_decoder() -> None:
    assert set(MODELS) == set(DOCUMENTS)


@pytest.mark.parametrize(("model", "example"), _examples(rejected=False))
def test_documented_payload_decodes_to_the_documented_values(
    model: str, example: dict[str, Any]
) -> None:
    readings = decode(model, _fport(model, example), bytes.fromhex(example["payload_hex"]))
    _assert_wellformed(readings)
    by_name = {reading.name: reading for reading in readings}
    assert len(by_name) == len(readings), "a reading name appears twice"
    for key, documented, placement in _documented(model, example["decoded"]):
        assert placement is not None, f"documented {key} is neither checked nor explained"
        if isinstance(placement, Field) and not _contradicted(model, key, documented):
            _assert_placed(by_name, key, documented, placement)


@pytest.mark.parametrize(("model", "example"), _examples(rejected=True))
def test_documented_invalid_payload_is_rejected(model: str, example: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        decode(model, _fport(model, example), bytes.fromhex(example["payload_hex"]))


def test_elsys_supply_voltage_is_read_from_the_payload_bytes() -> None:
    (example,) = [e for e in DOCUMENTS["elsys-ers-co2"]["examples"] if "vdd" in e["decoded"]]
    readings = decode("elsys-ers-co2", example["fPort"], bytes.fromhex(example["payload_hex"]))
    assert Reading("batteryVoltage", 3.636, "VLT") in readings


def test_unknown_device_model_is_rejected() -> None:
    with pytest.raises(DecodeError, match="unknown"):
        decode("acme-nothing", 1, b"\x00")


def test_payload_on_a_port_the_model_does_not_use_is_rejected() -> None:
    with pytest.raises(DecodeError, match="fPort 9"):
        decode("milesight-em400-tld", 9, bytes.fromhex("0175640367620004823203050000"))


def _decodes_or_is_rejected(model: str, fport: int, payload: bytes) -> None:
    try:
        readings = decode(model, fport, payload)
    except DecodeError:
        return
    _assert_wellformed(readings)


@pytest.mark.parametrize("model", sorted(MODELS))
@settings(max_examples=200)
@given(fport=st.integers(min_value=0, max_value=255), payload=st.binary(max_size=80))
def test_arbitrary_bytes_decode_to_readings_or_raise_decode_error(
    model: str, fport: int, payload: bytes
) -> None:
    _decodes_or_is_rejected(model, fport, payload)


@pytest.mark.parametrize("model", sorted(MODELS))
@settings(max_examples=200)
@given(data=st.data())
def test_damaged_documented_payload_decodes_to_readings_or_raises_decode_error(
    model: str, data: st.DataObject
) -> None:
    # Random bytes rarely get past a frame header; damaging real frames reaches the inner
    # layouts: a changed byte, a cut-off end, extra bytes.
    example = data.draw(st.sampled_from(DOCUMENTS[model]["examples"]))
    payload = bytearray.fromhex(example["payload_hex"])
    if payload:
        at = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
        payload[at] = data.draw(st.integers(min_value=0, max_value=255))
    payload = payload[: data.draw(st.integers(min_value=0, max_value=len(payload)))]
    payload += data.draw(st.binary(max_size=4))
    _decodes_or_is_rejected(model, _fport(model, example), bytes(payload))
