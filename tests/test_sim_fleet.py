"""The simulated fleet: reproducible, in the city, on land, in the registry's import format."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from shapely import Point, dwithin
from shapely.geometry import shape

from stadsnav.ingest.decoders import MODELS
from stadsnav.ingest.mapping import TARGETS
from stadsnav.sim import fleet
from stadsnav.sim.fleet import COLUMNS, PROFILES, build_fleet, export, slug


@pytest.fixture(scope="module")
def city() -> list[fleet.Device]:
    return build_fleet()


def _packaged(name: str) -> dict[str, Any]:
    """Read straight from the package data, not through the module under test."""
    return json.loads((resources.files("stadsnav.sim") / "data" / name).read_text("utf-8"))


def test_the_same_seed_gives_the_same_fleet_and_another_seed_another() -> None:
    assert build_fleet(400, seed=7) == build_fleet(400, seed=7)
    assert build_fleet(400, seed=7) != build_fleet(400, seed=8)


def test_the_fleet_has_the_requested_size_and_the_city_mix(city: list[fleet.Device]) -> None:
    assert len(city) == fleet.DEFAULT_COUNT
    assert len(build_fleet(17)) == 17
    assert build_fleet(0) == []
    counts = Counter(device.model for device in city)
    total = sum(p.per_mille for p in PROFILES)
    for profile in PROFILES:
        assert abs(counts[profile.model] - len(city) * profile.per_mille / total) < 1
    bins = counts["milesight-em310-udl"] + counts["milesight-em400-tld"]
    assert bins > len(city) / 2, "a city's first sensors are mostly on waste containers"
    assert set(counts) <= set(MODELS), "every simulated model has a decoder"


def test_identifiers_are_unique_and_well_formed(city: list[fleet.Device]) -> None:
    assert len({d.dev_eui for d in city}) == len(city)
    assert len({d.name for d in city}) == len(city)
    targets = [d.target_id for d in city if d.target_id is not None]
    assert len(set(targets)) == len(targets)
    assert all(d.target_type is None for d in city if d.target_id is None)
    for device in city:
        assert len(device.dev_eui) == 16
        int(device.dev_eui, 16)
        assert device.dev_eui == device.dev_eui.lower()
        # The Things Stack's device ids: lower-case letters, digits and dashes, at most 36.
        assert len(device.name) <= 36
        assert device.name == slug(device.name)
        if device.target_type is not None:
            number = device.name.rsplit("-")[-1]
            assert device.target_id == (
                f"urn:ngsi-ld:{device.target_type}:{slug(device.district)}-{number}"
            )
    milesight = [d for d in city if d.model.startswith("milesight-")]
    assert all(d.dev_eui.startswith("24e124") for d in milesight)


def test_every_device_is_in_its_district_and_on_land(city: list[fleet.Device]) -> None:
    districts = {
        feature["properties"]["name"].title(): shape(feature["geometry"])
        for feature in _packaged("stadsdelar.geojson")["features"]
    }
    water = shape(_packaged("vatten.geojson")["features"][0]["geometry"])
    for device in city:
        point = Point(device.lon, device.lat)
        assert districts[device.district].contains(point), device
        assert not water.contains(point), device
    assert len({d.district for d in city}) > 100, "devices spread over nearly all 117 districts"


def test_water_sensors_stand_by_the_water(city: list[fleet.Device]) -> None:
    water = shape(_packaged("vatten.geojson")["features"][0]["geometry"])
    watching = [d for d in city if d.target_type in ("WaterObserved", "WaterQualityObserved")]
    assert watching
    for device in watching:
        assert dwithin(water, Point(device.lon, device.lat), 0.0015), device


def test_bin_sensors_and_only_they_have_a_bin_depth(city: list[fleet.Device]) -> None:
    for device in city:
        if device.target_type == "WasteContainer":
            assert device.bin_depth is not None
            assert 0.5 <= device.bin_depth <= 2.5
        else:
            assert device.bin_depth is None
        assert device.interval_s > 0


def test_csv_export_has_the_registry_columns(city: list[fleet.Device], tmp_path: Path) -> None:
    path = tmp_path / "fleet.csv"
    export(city, path)
    rows = list(csv.DictReader(io.StringIO(path.read_text("utf-8"))))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == len(city)
    for row, device in zip(rows, city, strict=True):
        assert row["dev_eui"] == device.dev_eui
        assert row["model"] == device.model
        assert (float(row["lon"]), float(row["lat"])) == (device.lon, device.lat)
        assert row["district"] == device.district
        assert row["target_id"] == (device.target_id or "")
        assert row["target_type"] == (device.target_type or "")
        assert row["bin_depth"] == ("" if device.bin_depth is None else str(device.bin_depth))
        height = device.sensor_height
        assert row["sensor_height"] == ("" if height is None else str(height))
        assert int(row["interval_s"]) == device.interval_s


def test_geojson_export_is_a_feature_collection_of_points(
    city: list[fleet.Device], tmp_path: Path
) -> None:
    path = tmp_path / "fleet.geojson"
    export(city[:50], path)
    document = json.loads(path.read_text("utf-8"))
    assert document["type"] == "FeatureCollection"
    first, device = document["features"][0], city[0]
    assert first["geometry"] == {"type": "Point", "coordinates": [device.lon, device.lat]}
    assert set(first["properties"]) == set(COLUMNS) - {"lon", "lat"}
    assert first["properties"]["dev_eui"] == device.dev_eui


def test_one_gateway_per_district() -> None:
    gateways = fleet.gateways()
    assert len(gateways) == len(fleet.districts()) == 117
    assert len({g.eui for g in gateways}) == len(gateways)


def test_every_device_can_be_mapped_as_the_fleet_registers_it(city: list[fleet.Device]) -> None:
    """The fleet measures only into entity types the mapping holds, with the settings it needs."""
    for device in city:
        if device.target_type is None:
            assert device.model == "axioma-qalcosonic-w1"
            continue
        assert device.target_type in TARGETS
        if device.target_type == "WasteContainer":
            assert device.bin_depth is not None
        if device.target_type == "WaterObserved":
            assert device.sensor_height is not None
