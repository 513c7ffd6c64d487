"""Deterministic WasteContainer entities in NGSI-LD normalized form, spread over Stockholm.

The attributes follow the FIWARE Smart Data Models WasteContainer schema (fillingLevel as a ratio
with unitCode P1, temperature, binCapacity, status, storedWasteKind, …), expressed with the proper
NGSI-LD node types: Property, GeoProperty and Relationship. All randomness comes from
random.Random generators: the readings (fillingLevel, temperature, status, times) from one seeded
by the caller, and what stays with a container between readings (its place, capacity, kind,
colour, serial number) from one seeded by its number, so that a later generation is what a
sensor update looks like: the same container with new readings.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

# Stockholm, roughly from Bromma to Nacka and from Farsta to Kista.
LON_MIN, LON_MAX = 17.80, 18.20
LAT_MIN, LAT_MAX = 59.25, 59.42

ID_PREFIX = "urn:ngsi-ld:WasteContainer:sthlm-"
STATUSES = ["ok"] * 14 + ["lidOpen", "dropped", "moved", "vandalized", "burning", "unknown"]
WASTE_KINDS = ["organic", "inorganic", "glass", "plastic", "metal", "paper", "batteries"]
CATEGORIES = ["fixed", "ground", "portable", "underground"]
COLORS = ["green", "brown", "grey", "blue", "yellow", "black"]
CAPACITIES_LITRES = [140, 240, 370, 660, 1100, 3000, 5000]
EPOCH = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def entity_id(n: int) -> str:
    return f"{ID_PREFIX}{n:07d}"


def _instant(rng: random.Random, within_hours: float) -> str:
    moment = EPOCH + timedelta(seconds=rng.uniform(0, within_hours * 3600))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def waste_container(n: int, rng: random.Random, *, generation: int = 0) -> dict[str, Any]:
    """Container number n; a higher generation is a later reading of the same container."""
    observed = _instant(rng, 24 * (generation + 1))
    fixed = random.Random(f"container-{n}")
    lon = round(fixed.uniform(LON_MIN, LON_MAX), 6)
    lat = round(fixed.uniform(LAT_MIN, LAT_MAX), 6)
    return {
        "id": entity_id(n),
        "type": "WasteContainer",
        "fillingLevel": {
            "type": "Property",
            "value": round(rng.random(), 2),
            "unitCode": "P1",
            "observedAt": observed,
        },
        "temperature": {
            "type": "Property",
            "value": round(rng.gauss(4.0, 8.0), 1),
            "unitCode": "CEL",
            "observedAt": observed,
        },
        "binCapacity": {
            "type": "Property",
            "value": fixed.choice(CAPACITIES_LITRES),
            "unitCode": "LTR",
        },
        "status": {"type": "Property", "value": rng.choice(STATUSES)},
        "storedWasteKind": {"type": "Property", "value": fixed.choice(WASTE_KINDS)},
        "category": {"type": "Property", "value": [fixed.choice(CATEGORIES)]},
        "binColor": {"type": "Property", "value": fixed.choice(COLORS)},
        "serialNumber": {"type": "Property", "value": f"SE-{fixed.randrange(10**8):08d}"},
        "dateLastEmptying": {
            "type": "Property",
            "value": {"@type": "DateTime", "@value": _instant(rng, 24 * 14)},
        },
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [lon, lat]},
        },
        "refDevice": {
            "type": "Relationship",
            "object": f"urn:ngsi-ld:Device:fill-sensor-{n:07d}",
        },
        "refWasteContainerIsle": {
            "type": "Relationship",
            "object": f"urn:ngsi-ld:WasteContainerIsle:isle-{n // 4:06d}",
        },
    }


def batch(
    start: int, count: int, rng: random.Random, *, generation: int = 0
) -> list[dict[str, Any]]:
    return [waste_container(n, rng, generation=generation) for n in range(start, start + count)]


def random_point(rng: random.Random) -> tuple[float, float]:
    """A point well inside the area, so that a 500 m circle around it is fully populated."""
    return (
        round(rng.uniform(LON_MIN + 0.02, LON_MAX - 0.02), 5),
        round(rng.uniform(LAT_MIN + 0.01, LAT_MAX - 0.01), 5),
    )
