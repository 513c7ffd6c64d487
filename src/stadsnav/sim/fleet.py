"""The simulated fleet: a few thousand devices placed in Stockholm's districts, out of the water.

A fleet is a function of its size and seed: the same two give the same devices, EUIs and
positions, so the registry can import a fleet (``export``) that a later run with the same
arguments then simulates. The model mix is that of a city's first years of IoT:
mostly fill-level sensors on waste containers, then streetlight controllers, indoor climate,
water meters, and a few air, weather, water-level and water-quality stations.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import math
import random
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import orjson
from shapely import Point, prepare
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

DEFAULT_COUNT = 3000
# The registry's bulk import reads these columns, in this order.
COLUMNS = (
    "dev_eui",
    "name",
    "model",
    "lon",
    "lat",
    "district",
    "target_id",
    "target_type",
    "bin_depth",
    "sensor_height",
    "interval_s",
)
# Sensors that watch water stand on a quay, bridge or shore, within this many degrees of it
# (about 150 m north-south, 80 m east-west at Stockholm's latitude).
_SHORE = 0.0014
_ATTEMPTS = 2000


@dataclass(frozen=True, slots=True)
class Device:
    """One simulated device, in the registry's import format (see COLUMNS).

    ``bin_depth`` is the distance in metres the sensor measures over an empty container (bin
    sensors only): the mapping turns a distance into a filling level with it.
    ``sensor_height`` is a water-level sensor's height over the normal water level, m: the
    mapping turns the distance it measures into a water level with it.
    A water meter measures into its own Device entity only: no target.
    """

    dev_eui: str
    name: str
    model: str
    lon: float
    lat: float
    district: str
    target_id: str | None
    target_type: str | None
    bin_depth: float | None
    sensor_height: float | None
    interval_s: int


@dataclass(frozen=True, slots=True)
class Profile:
    """How a model is deployed: its share of the fleet, what it measures, how often it reports."""

    model: str
    per_mille: int
    target_type: str | None  # the entity type it measures into; None: its Device only
    label: str  # first part of the device name
    interval_s: int
    near_water: bool = False
    # An OUI the vendor's DevEUIs start with, where the vendor uses its own.
    eui_prefix: str = ""


PROFILES: tuple[Profile, ...] = (
    Profile("milesight-em310-udl", 330, "WasteContainer", "bin", 1800, eui_prefix="24e124"),
    Profile("milesight-em400-tld", 250, "WasteContainer", "bin", 1800, eui_prefix="24e124"),
    Profile("nas-ul20xx", 130, "Streetlight", "light", 900),
    # Smart Data Models has no indoor-environment type in the specs at hand: a room's air is
    # AirQualityObserved (CO2, temperature, humidity), as the mapping holds it.
    Profile("elsys-ers-co2", 100, "AirQualityObserved", "indoor", 600, eui_prefix="a81758"),
    Profile("axioma-qalcosonic-w1", 95, None, "meter", 3600),
    Profile("decentlab-dl-pm", 40, "AirQualityObserved", "air", 600, eui_prefix="70b3d57ba"),
    Profile("decentlab-dl-atm41", 15, "WeatherObserved", "weather", 600, eui_prefix="70b3d57ba"),
    Profile("vega-vegapuls-air-41", 15, "WaterObserved", "level", 900, near_water=True),
    Profile("decentlab-dl-mbx", 15, "WaterObserved", "level", 600, True, eui_prefix="70b3d57ba"),
    Profile("decentlab-dl-ntu", 10, "WaterQualityObserved", "turbidity", 900, True, "70b3d57ba"),
)
BIN_MODELS = frozenset(p.model for p in PROFILES if p.target_type == "WasteContainer")
LEVEL_MODELS = frozenset(p.model for p in PROFILES if p.target_type == "WaterObserved")
# Empty-container distances in metres: street litter bins, 660 l wheelie bins, semi-underground
# and underground containers.
_BIN_DEPTHS = (0.7, 0.9, 1.1, 1.4, 1.8, 2.2)


@dataclass(frozen=True, slots=True)
class District:
    name: str  # as people write it: "Södermalm"
    slug: str  # for identifiers: "sodermalm"
    area: BaseGeometry


@dataclass(frozen=True, slots=True)
class Gateway:
    """A LoRaWAN gateway; the simulated network has one on a roof in every district."""

    eui: str
    name: str
    lon: float
    lat: float


def slug(text: str) -> str:
    """Lower-case ASCII with dashes: "HÄSSELBY GÅRD" -> "hasselby-gard"."""
    letters = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "-".join("".join(c if c.isalnum() else " " for c in letters).split())


def _geojson(name: str) -> Any:
    return orjson.loads((resources.files("stadsnav.sim") / "data" / name).read_bytes())


@functools.cache
def districts() -> tuple[District, ...]:
    """Stockholm's 117 districts, from the packaged City of Stockholm geodata."""
    found = []
    for feature in _geojson("stadsdelar.geojson")["features"]:
        name = feature["properties"]["name"].title()
        area = shape(feature["geometry"])
        prepare(area)
        found.append(District(name, slug(name), area))
    return tuple(found)


@functools.cache
def water() -> BaseGeometry:
    """The sea and the lakes, as one (prepared) geometry."""
    areas = shape(_geojson("vatten.geojson")["features"][0]["geometry"])
    prepare(areas)
    return areas


@functools.cache
def gateways() -> tuple[Gateway, ...]:
    """One gateway per district, at a point the district surely contains."""
    found = []
    for district in districts():
        point = district.area.representative_point()
        eui = hashlib.sha256(f"gateway:{district.slug}".encode()).hexdigest()[:16]
        found.append(Gateway(eui, f"gw-{district.slug}", round(point.x, 6), round(point.y, 6)))
    return tuple(found)


@functools.cache
def shores() -> tuple[tuple[District, BaseGeometry], ...]:
    """Each district's land within _SHORE of the water, for the districts that have any."""
    zone = water().buffer(_SHORE)
    found = []
    for district in districts():
        land = district.area.intersection(zone).difference(water())
        if not land.is_empty:
            prepare(land)
            found.append((district, land))
    return tuple(found)


def build_fleet(count: int = DEFAULT_COUNT, seed: int = 0) -> list[Device]:
    """``count`` devices in the PROFILES mix, placed and named reproducibly from ``seed``."""
    if count < 0:
        raise ValueError("a fleet cannot have fewer than 0 devices")
    rng = random.Random(seed)
    inland = [(d, d.area) for d in districts()]
    areas = [d.area.area for d, _ in inland]
    total = sum(areas)
    # Half by area and half evenly: the inner-city districts are small but dense with
    # containers, lamps and buildings.
    inland_weights = [0.5 * a / total + 0.5 / len(areas) for a in areas]
    shore_weights = [land.area for _, land in shores()]
    numbers: dict[tuple[str, str], int] = {}
    euis: set[str] = set()
    fleet = []
    for profile, quota in zip(PROFILES, _apportion(count), strict=True):
        places, weights = (
            (shores(), shore_weights) if profile.near_water else (inland, inland_weights)
        )
        for _ in range(quota):
            district, area = rng.choices(places, weights)[0]
            lon, lat = _place(district, area, rng)
            key = (profile.target_type or profile.label, district.slug)
            numbers[key] = number = numbers.get(key, 0) + 1
            target_id = (
                None
                if profile.target_type is None
                else f"urn:ngsi-ld:{profile.target_type}:{district.slug}-{number}"
            )
            fleet.append(
                Device(
                    dev_eui=_eui(profile.eui_prefix, euis, rng),
                    name=f"{profile.label}-{district.slug}-{number}",
                    model=profile.model,
                    lon=lon,
                    lat=lat,
                    district=district.name,
                    target_id=target_id,
                    target_type=profile.target_type,
                    bin_depth=rng.choice(_BIN_DEPTHS) if profile.model in BIN_MODELS else None,
                    sensor_height=(
                        round(rng.uniform(1.5, 4.0), 2) if profile.model in LEVEL_MODELS else None
                    ),
                    interval_s=profile.interval_s,
                )
            )
    return fleet


def _apportion(count: int) -> list[int]:
    """Devices per profile: the largest-remainder split of ``count`` by the shares."""
    total = sum(p.per_mille for p in PROFILES)
    exact = [count * p.per_mille / total for p in PROFILES]
    quotas = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: quotas[i] - exact[i])
    for i in by_remainder[: count - sum(quotas)]:
        quotas[i] += 1
    return quotas


def _place(district: District, area: BaseGeometry, rng: random.Random) -> tuple[float, float]:
    """A point of ``area`` (the district, or its shore) that is on land."""
    west, south, east, north = area.bounds
    for _ in range(_ATTEMPTS):
        # Six decimals (about 10 cm) is what the CSV keeps, so the point is rounded first and
        # the checks hold for the exported position.
        point = Point(round(rng.uniform(west, east), 6), round(rng.uniform(south, north), 6))
        if area.contains(point) and district.area.contains(point) and not water().contains(point):
            return point.x, point.y
    raise RuntimeError(f"found no place on land in {district.name} after {_ATTEMPTS} tries")


def _eui(prefix: str, taken: set[str], rng: random.Random) -> str:
    while True:
        eui = prefix + "".join(rng.choice("0123456789abcdef") for _ in range(16 - len(prefix)))
        if eui not in taken:
            taken.add(eui)
            return eui


def _row(device: Device) -> list[str]:
    return ["" if value is None else str(value) for value in astuple(device)]


def write_csv(fleet: Iterable[Device], out: TextIO) -> None:
    """The fleet as CSV with a header row of COLUMNS; an absent bin depth is an empty cell."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(_row(device) for device in fleet)


def geojson(fleet: Iterable[Device]) -> dict[str, Any]:
    """The fleet as a GeoJSON FeatureCollection: one Point per device, the other columns as
    properties."""
    features = []
    for device in fleet:
        properties = {
            f.name: getattr(device, f.name) for f in fields(device) if f.name not in ("lon", "lat")
        }
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [device.lon, device.lat]},
                "properties": properties,
            }
        )
    return {"type": "FeatureCollection", "features": features}


def export(fleet: Sequence[Device], path: Path) -> None:
    """Write the fleet to ``path``, as GeoJSON if it ends in .geojson or .json, else as CSV."""
    if path.suffix in (".geojson", ".json"):
        path.write_bytes(orjson.dumps(geojson(fleet), option=orjson.OPT_INDENT_2))
        return
    with path.open("w", encoding="utf-8", newline="") as out:
        write_csv(fleet, out)
