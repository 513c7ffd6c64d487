"""Device profiles claim only what the decoders deliver, in Smart Data Models' own words.

Every documented payload (tests/data/devices/) is decoded; a profile's quantities must be among
the readings its decoder emits, with the same unit, and the documented values must lie within
the ranges the profile gives. Purposes and categories must be values the Smart Data Models
Device schema allows, and every entity type a model may feed one the mapping can write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stadsnav.devices.profiles import PROFILES, Profile
from stadsnav.devices.registration import parse_registration
from stadsnav.ingest import mapping
from stadsnav.ingest.decoders import MODELS, Reading, decode
from stadsnav.ngsild.errors import NgsiLdError

DATA = Path(__file__).parent / "data"
DEVICE_SCHEMA = json.loads(
    (DATA / "smart-data-models" / "common" / "device-schema.json").read_text(encoding="utf-8")
)["definitions"]
SDM_PROPERTIES = set(DEVICE_SCHEMA["ControlledPropertyType"]["items"]["enum"])
SDM_CATEGORIES = set(DEVICE_SCHEMA["CategoryType"]["items"]["enum"])
STAMP = "2026-11-23T08:00:00.000000Z"


def _emitted(model: str) -> list[Reading]:
    """Every reading of every documented payload of a model that decodes."""
    document = json.loads((DATA / "devices" / f"{model}.json").read_text(encoding="utf-8"))
    fports = document["fPorts"] or [1]  # one source gives no fPort; any is accepted
    readings: list[Reading] = []
    for example in document["examples"]:
        if example["decoded"] is not None:
            payload = bytes.fromhex(example["payload_hex"])
            readings += decode(model, example.get("fPort", fports[0]), payload)
    return readings


@pytest.fixture(params=sorted(PROFILES), ids=str)
def profile(request: pytest.FixtureRequest) -> Profile:
    return PROFILES[request.param]


def test_every_decoder_model_has_a_profile_and_every_profile_a_decoder() -> None:
    assert set(PROFILES) == set(MODELS)


def test_a_profile_claims_only_readings_its_decoder_emits_in_their_units(
    profile: Profile,
) -> None:
    units = {(r.name, r.unit) for r in _emitted(profile.model)}
    for quantity in profile.quantities:
        assert (quantity.reading, quantity.unit) in units, quantity


def test_documented_values_lie_within_the_profile_ranges(profile: Profile) -> None:
    for reading in _emitted(profile.model):
        quantity = profile.quantity(reading.name)
        if quantity is None or isinstance(reading.value, bool | str):
            continue
        assert quantity.minimum is None or reading.value >= quantity.minimum, reading
        assert quantity.maximum is None or reading.value <= quantity.maximum, reading


def test_purposes_are_smart_data_models_properties_served_by_the_profile_readings(
    profile: Profile,
) -> None:
    readings = {q.reading for q in profile.quantities}
    for purpose in profile.purposes:
        assert purpose.property in SDM_PROPERTIES
        assert set(purpose.readings) <= readings, purpose
        assert purpose.targets is None or purpose.targets <= profile.targets
    assert set(profile.category) <= SDM_CATEGORIES


def test_every_target_a_model_may_feed_is_mappable_and_has_a_default_purpose(
    profile: Profile,
) -> None:
    for target in profile.targets:
        assert target is None or target in mapping.TARGETS
        assert profile.default_properties(target), target


def test_profiles_name_the_settings_the_mapping_needs() -> None:
    assert PROFILES["milesight-em310-udl"].required_settings("WasteContainer") == ("binDepth",)
    assert PROFILES["vega-vegapuls-air-41"].required_settings("WaterObserved") == ("sensorHeight",)
    assert PROFILES["decentlab-dl-pm"].required_settings("AirQualityObserved") == ()


def test_reporting_intervals_are_sane(profile: Profile) -> None:
    assert 60 <= profile.reporting.expected <= profile.reporting.longest <= 24 * 3600


def test_a_sensor_over_a_container_measures_fill_and_over_water_the_water_level() -> None:
    vega = PROFILES["vega-vegapuls-air-41"]
    assert vega.default_properties("WasteContainer") == ("fillingLevel",)
    assert vega.default_properties("WaterObserved") == ("waterLevel",)


# -- the registration validator ------------------------------------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)  # JSON has neither
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
_VALID: dict[str, Any] = {
    "devEUI": "a84041000181c4d1",
    "model": "milesight-em310-udl",
    "owner": "trafikkontoret",
    "location": [18.0686, 59.3293],
    "target": {"id": "urn:ngsi-ld:WasteContainer:1", "type": "WasteContainer"},
    "settings": {"binDepth": 1.2},
    "state": "active",
}


@st.composite
def _registrations(draw: st.DrawFn) -> Any:
    """Anything at all, or a valid registration with some members replaced or removed."""
    if draw(st.booleans()):
        return draw(_JSON)
    body = dict(_VALID)
    for member in draw(st.lists(st.sampled_from([*_VALID, "coUsers", "override", "x"]))):
        if draw(st.booleans()):
            body.pop(member, None)
        else:
            body[member] = draw(_JSON)
    return body


@given(_registrations())
def test_any_json_is_a_registration_or_a_client_error_never_a_crash(body: Any) -> None:
    try:
        device = parse_registration(body, STAMP).device
    except NgsiLdError as error:
        refused: NgsiLdError | None = error
    else:
        refused = None
    if refused is not None:
        assert 400 <= refused.status < 500
        return
    assert device.key == body["devEUI"].lower()
    assert set(device.controlled_property) <= {p.property for p in PROFILES[device.model].purposes}


def test_the_registry_doc_lists_every_profile() -> None:
    text = (Path(__file__).parent.parent / "docs" / "devices.md").read_text(encoding="utf-8")
    for model in PROFILES:
        assert f"| `{model}` |" in text
