"""Each encoder is the inverse of its model's decoder.

For physical values anywhere in a sensor's range, decoding the encoded frame gives each value
back to within half the frame's resolution; and for values the frame can carry exactly (the
decoded ones), decode(encode(values)) == values and the bytes are the same again. Readings the
decoder derives from others (the water meter's alarms from its status byte) are the only extra
ones allowed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stadsnav.ingest.decoders import decode
from stadsnav.sim import world
from stadsnav.sim.encoders import MODELS, EncodeError, encode
from stadsnav.sim.fleet import build_fleet


@dataclass(frozen=True)
class Field:
    values: st.SearchStrategy[Any]
    step: float = 0.0  # the frame's resolution; 0 for exact values
    relative: bool = False  # the step is relative to the value (floating-point formats)


def real(low: float, high: float, step: float) -> Field:
    return Field(st.floats(low, high, allow_nan=False), step)


def whole(low: int, high: int) -> Field:
    return Field(st.integers(low, high))


FLAG = Field(st.booleans())
RATIO = real(0, 1, 0.01)
VOLTS = real(2.0, 3.7, 0.001)
MM = real(0, 65.535, 0.001)
TEMPERATURE = real(-40, 85, 0.1)
EPOCH = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
WEATHER: dict[str, Field] = {
    "solarRadiation": whole(0, 1800),
    "precipitation": real(0, 32.767, 0.001),
    "lightningStrikeCount": whole(0, 500),
    "lightningAverageDistance": whole(0, 40),
    "windSpeed": real(0, 60, 0.01),
    "windDirection": real(0, 359.9, 0.1),
    "gustSpeed": real(0, 80, 0.01),
    "temperature": real(-50, 60, 0.1),
    "vaporPressure": real(0, 100, 0.1),
    "atmosphericPressure": real(500, 1100, 0.1),
    "relativeHumidity": real(0, 1, 0.001),
    "internalTemperature": real(-50, 80, 0.1),
    "xOrientationAngle": real(-90, 90, 0.1),
    "yOrientationAngle": real(-90, 90, 0.1),
    "compassHeading": whole(0, 359),
    "northWindSpeed": real(-60, 60, 0.01),
    "eastWindSpeed": real(-60, 60, 0.01),
    "batteryVoltage": VOLTS,
}
PARTICULATES: dict[str, Field] = {
    **{name: real(0, 1000, 0.1) for name in ("pm1", "pm25", "pm4", "pm10")},
    "typicalParticleSize": whole(0, 65535),
    **{
        f"{size}NumberConcentration": real(0, 6000, 0.1)
        for size in ("pm05", "pm1", "pm25", "pm4", "pm10")
    },
}
NAS_METER: dict[str, Field] = {
    "activeEnergyImport": whole(0, 2**32 - 1),
    "powerConsumption": whole(0, 65535),
    "loadSideEnergy": whole(0, 2**32 - 1),
    "loadSidePower": whole(0, 65535),
    "powerFactor": real(0, 1, 0.01),
    "voltage": whole(0, 255),
    "driverOperatingTime": real(0, 1_000_000, 1 / 3600),
    "lampOnTime": real(0, 1_000_000, 1 / 3600),
}
NAS_LAMP: dict[str, Field] = {
    "status": Field(st.sampled_from(["ok", "brokenLantern", "defectiveLamp"])),
    "powerState": Field(st.sampled_from(["on", "off"])),
}

# Per model: the readings always given, and those that may be left out.
FIELDS: dict[str, tuple[dict[str, Field], dict[str, Field]]] = {
    "milesight-em310-udl": ({"batteryLevel": RATIO, "distance": MM, "tilted": FLAG}, {}),
    "milesight-em400-tld": (
        {"batteryLevel": RATIO, "temperature": TEMPERATURE, "distance": MM, "tilted": FLAG},
        {"temperatureAlarm": FLAG, "distanceAlarm": FLAG},
    ),
    "decentlab-dl-pm": (
        {
            "batteryVoltage": VOLTS,
            **PARTICULATES,
            # The SHT formulas' steps: 175.72 °C and 125 % over 16 bits.
            "temperature": real(-40, 125, 175.72 / 65536),
            "relativeHumidity": real(0, 1, 1.25 / 65536),
            "atmosphericPressure": real(300, 1100, 0.02),
        },
        {},
    ),
    "decentlab-dl-atm41": (WEATHER, {}),
    "decentlab-dl-mbx": (
        {"distance": MM, "numberOfValidSamples": whole(0, 65535), "batteryVoltage": VOLTS},
        {},
    ),
    "decentlab-dl-ntu": (
        {
            "sensorStatus": whole(0, 65535),
            "temperature": real(-5, 40, 0.01),
            "turbidity": real(0, 4000, 0.1),
            "turbidityFnu": real(0, 4000, 0.1),
            "turbidityMassConcentration": real(0, 6000, 0.1),
            "batteryVoltage": VOLTS,
        },
        {},
    ),
    "elsys-ers-co2": (
        {
            "temperature": TEMPERATURE,
            "relativeHumidity": RATIO,
            "illuminance": whole(0, 65535),
            "motionCount": whole(0, 255),
            "co2": whole(0, 10000),
            "batteryVoltage": VOLTS,
        },
        {},
    ),
    "vega-vegapuls-air-41": (
        {"distance": Field(st.floats(0, 30), 2**-23, relative=True), "batteryLevel": RATIO},
        {"temperature": TEMPERATURE},
    ),
    "nas-ul20xx": (
        {
            "daliConnectionError": FLAG,
            "meteringComError": FLAG,
            "mcuTemperature": whole(-128, 127),
            "voltageAlertIn24h": FLAG,
            "lampErrorAlertIn24h": FLAG,
            "powerAlertIn24h": FLAG,
            "powerFactorAlertIn24h": FLAG,
        },
        {
            # 4000 steps per decade.
            "illuminance": Field(st.floats(0.001, 150000), 10 ** (1 / 4000) - 1, relative=True),
            "illuminanceLevel": RATIO,
        },
    ),
    "axioma-qalcosonic-w1": (
        {"waterConsumption": real(0, 4_000_000, 0.001), "statusCode": whole(0, 255)},
        {},
    ),
}
# What the decoder derives from the values it is given.
DERIVED = {
    "axioma-qalcosonic-w1": {
        "lowBatteryAlarm",
        "permanentErrorAlarm",
        "temporaryErrorAlarm",
        "emptyPipeAlarm",
        "backflowAlarm",
        "burstAlarm",
        "leakAlarm",
        "lowTemperatureAlarm",
    }
}


def strategy(model: str) -> st.SearchStrategy[dict[str, Any]]:
    required, optional = FIELDS[model]
    return st.fixed_dictionaries(
        {name: field.values for name, field in required.items()},
        optional={name: field.values for name, field in optional.items()},
    )


def field_of(model: str, name: str) -> Field:
    required, optional = FIELDS[model]
    return {**required, **optional, **NAS_METER, **NAS_LAMP}[name]


def decoded(model: str, frame: tuple[int, bytes]) -> dict[str, Any]:
    readings = decode(model, *frame)
    found = {reading.name: reading.value for reading in readings}
    assert len(found) == len(readings), "a reading appears twice"
    return found


def check_round_trip(model: str, values: Mapping[str, Any], at: int, serial: int) -> None:
    frame = encode(model, values, at=at, serial=serial)
    back = decoded(model, frame)
    assert set(back) - set(values) <= DERIVED.get(model, set())
    for name, value in values.items():
        field = field_of(model, name)
        if field.step == 0:
            assert back[name] == value, name
            assert type(back[name]) is type(value), name
        else:
            half = field.step / 2 * (abs(value) if field.relative else 1)
            assert abs(back[name] - value) <= half + 1e-9 * max(1.0, abs(value)), name
    # The decoded values are what the frame can carry: they come back exactly, in the same bytes.
    exact = {name: back[name] for name in values}
    again = encode(model, exact, at=at, serial=serial)
    assert again == frame
    assert {name: decoded(model, again)[name] for name in exact} == exact


def test_every_fleet_model_has_an_encoder_and_a_test() -> None:
    assert set(FIELDS) == set(MODELS) == world.MODELS


@pytest.mark.parametrize("model", sorted(set(FIELDS) - {"nas-ul20xx"}))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_decode_inverts_encode(model: str, data: st.DataObject) -> None:
    values = data.draw(strategy(model))
    at = data.draw(st.integers(EPOCH, 2**32 - 1))
    check_round_trip(model, values, at, data.draw(st.integers(0, 0xFFFF)))


@settings(max_examples=100, deadline=None)
@given(
    values=strategy("nas-ul20xx"),
    lamp=st.one_of(
        st.just({}), st.fixed_dictionaries({name: f.values for name, f in NAS_LAMP.items()})
    ),
    at=st.integers(EPOCH, 2**32 - 1),
)
def test_decode_inverts_encode_for_nas_status(
    values: dict[str, Any], lamp: dict[str, Any], at: int
) -> None:
    frame = encode("nas-ul20xx", {**values, **lamp}, at=at)
    assert frame.fport == 23
    check_round_trip("nas-ul20xx", {**values, **lamp}, at, 0)


@settings(max_examples=100, deadline=None)
@given(
    values=st.fixed_dictionaries(
        {}, optional={name: field.values for name, field in NAS_METER.items()}
    ).filter(bool)
)
def test_decode_inverts_encode_for_nas_usage(values: dict[str, Any]) -> None:
    assert encode("nas-ul20xx", values, at=EPOCH).fport == 26
    check_round_trip("nas-ul20xx", values, EPOCH, 0)


def test_decentlab_frames_carry_the_sensors_whose_readings_are_given() -> None:
    only_battery = {"batteryVoltage": 3.6}
    frame = encode("decentlab-dl-pm", only_battery, at=EPOCH, serial=0x1234)
    assert frame.payload[:5] == bytes([2, 0x12, 0x34, 0x00, 0x01])
    assert decoded("decentlab-dl-pm", frame) == only_battery
    with pytest.raises(EncodeError, match="relativeHumidity"):
        encode("decentlab-dl-pm", {"temperature": 3.0}, at=EPOCH)


def test_a_missing_vega_distance_is_sent_as_no_echo() -> None:
    frame = encode("vega-vegapuls-air-41", {"batteryLevel": 0.5}, at=EPOCH)
    assert decoded("vega-vegapuls-air-41", frame) == {"batteryLevel": 0.5}


@pytest.mark.parametrize(
    ("model", "values", "problem"),
    [
        ("milesight-em310-udl", {"distance": 70.0}, "outside"),
        ("milesight-em310-udl", {"distance": -0.01}, "outside"),
        ("milesight-em310-udl", {"distance": math.nan}, "finite number"),
        ("milesight-em310-udl", {"distance": True}, "finite number"),
        ("milesight-em310-udl", {"distance": 1.0, "co2": 400}, "co2"),
        ("milesight-em310-udl", {}, "no readings"),
        ("milesight-em310-udl", {"tilted": 1}, "true or false"),
        ("elsys-ers-co2", {"relativeHumidity": 1.2}, "outside"),
        ("decentlab-dl-atm41", {"batteryVoltage": 3.6, "temperature": 2.0}, "needs"),
        ("decentlab-dl-mbx", {}, "no readings"),
        ("nas-ul20xx", {"powerFactor": 2.55}, "outside"),
        ("nas-ul20xx", {"status": "ok"}, "missing"),
        ("axioma-qalcosonic-w1", {"waterConsumption": 5000000.0, "statusCode": 0}, "outside"),
        ("axioma-qalcosonic-w1", {"waterConsumption": 1.0}, "statusCode missing"),
        ("vega-vegapuls-air-41", {"distance": 1e39, "batteryLevel": 0.5}, "outside"),
        ("niab-fls", {"distance": 1.0}, "no encoder"),
    ],
)
def test_values_a_frame_cannot_carry_are_refused(
    model: str, values: dict[str, Any], problem: str
) -> None:
    with pytest.raises(EncodeError, match=problem):
        encode(model, values, at=EPOCH)


def test_what_the_world_measures_always_fits_the_frames() -> None:
    """Three days of every model's readings, at every hour, encode and decode."""
    fleet = build_fleet(300, seed=3)
    start = datetime(2026, 11, 20, tzinfo=UTC)
    rng = random.Random(0)
    for device in fleet:
        for hour in range(0, 72, 5):
            at = start + timedelta(hours=hour, minutes=device.interval_s // 60)
            values = world.observe(device, at, rng)
            frame = encode(device.model, values, at=int(at.timestamp()))
            back = decoded(device.model, frame)
            for name, value in values.items():
                if isinstance(value, float):
                    assert back[name] == pytest.approx(value, rel=0.01, abs=0.051), name
                else:
                    assert back[name] == value, name
