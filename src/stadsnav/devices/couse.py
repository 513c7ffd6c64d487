"""The co-use check: which devices already measure what a new one would, where it would.

Before a board buys a sensor it asks whether another organisation's device already measures the
same thing there; if so it can use that device's data instead. Two devices serve the same
purpose when they share a Smart Data Models ``controlledProperty`` and measure the same thing:

- for a property of a *place* (air quality, weather, water), when they stand within the radius
  of each other and, if both feed an entity, feed the same type of entity;
- for a property of an *asset* (one container's filling level, one streetlight's power, the
  climate of one room, one building's water use), when they feed the same asset: two bins
  side by side each need their own sensor, and so do two rooms of a school.

Only devices on site count (installed, active or in maintenance): a planned device may never be
bought, a retired one is gone.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from stadsnav.devices.lifecycle import LIVE_STATES
from stadsnav.devices.profiles import PROFILES
from stadsnav.ngsild.geoquery import haversine_distance
from stadsnav.store.base import DeviceRecord

# Entity types whose devices measure the thing itself rather than the place it stands in.
ASSET_TYPES = frozenset({"WasteContainer", "Streetlight"})
DEFAULT_RADIUS = 50.0
# The widest radius a check may ask for: beyond it a "nearby" device is no longer a substitute.
MAX_RADIUS = 10_000.0
_METRES_PER_DEGREE = 111_320.0  # of latitude; of longitude times the cosine of the latitude


@dataclass(frozen=True, slots=True)
class Planned:
    """What a new or moved device would measure, and where."""

    properties: frozenset[str]
    location: tuple[float, float]
    target_id: str | None = None
    target_type: str | None = None
    key: str | None = None  # a device already registered is not its own duplicate
    model: str | None = None  # unknown when a check names only the purpose


@dataclass(frozen=True, slots=True)
class Conflict:
    """A device on site that already serves the purpose: which of the properties, how far."""

    device: DeviceRecord
    properties: tuple[str, ...]
    distance: float  # metres; 0 where the device has no location but feeds the same asset


def box_around(location: tuple[float, float], radius: float) -> tuple[float, float, float, float]:
    """(min lon, min lat, max lon, max lat) holding every point within `radius` metres; near
    the poles and across the antimeridian it is clipped rather than wrapped."""
    lon, lat = location
    dlat = radius / _METRES_PER_DEGREE
    cosine = math.cos(math.radians(min(abs(lat) + dlat, 89.9)))
    dlon = radius / (_METRES_PER_DEGREE * cosine)
    return (max(lon - dlon, -180), max(lat - dlat, -90), min(lon + dlon, 180), min(lat + dlat, 90))


def measures_asset(model: str | None, target_type: str | None) -> bool:
    """Whether a device measures one thing (an asset, a room, a supply point) rather than its
    surroundings: by the entity type it feeds, or by its model."""
    profile = None if model is None else PROFILES.get(model)
    return target_type in ASSET_TYPES or (profile is not None and profile.asset_bound)


def conflicts(planned: Planned, devices: Iterable[DeviceRecord], radius: float) -> list[Conflict]:
    """The devices among these that already serve the planned purpose, nearest first."""
    found: list[Conflict] = []
    asset = measures_asset(planned.model, planned.target_type)
    for device in devices:
        if device.key == planned.key or device.state not in LIVE_STATES:
            continue
        shared = tuple(sorted(planned.properties.intersection(device.controlled_property)))
        if not shared:
            continue
        distance = (
            0.0
            if device.location is None
            else haversine_distance(*planned.location, *device.location)
        )
        if asset or measures_asset(device.model, device.target_type):
            if device.target_id is None or device.target_id != planned.target_id:
                continue
        elif distance > radius or (
            planned.target_type is not None
            and device.target_type is not None
            and planned.target_type != device.target_type
        ):
            continue
        found.append(Conflict(device, shared, round(distance, 1)))
    return sorted(found, key=lambda c: (c.distance, c.device.key))


class Neighbourhood:
    """Devices indexed by place and by the asset they feed, for checking many planned devices
    (a bulk import) against each other and the registry without comparing every pair."""

    def __init__(self, radius: float) -> None:
        self.radius = radius
        self._cell = radius / _METRES_PER_DEGREE  # degrees of latitude per grid cell
        self._grid: dict[tuple[int, int], list[DeviceRecord]] = defaultdict(list)
        self._by_target: dict[str, list[DeviceRecord]] = defaultdict(list)

    def _key(self, location: tuple[float, float]) -> tuple[int, int]:
        return (math.floor(location[1] / self._cell), math.floor(location[0] / self._cell))

    def add(self, device: DeviceRecord) -> None:
        if device.location is not None:
            self._grid[self._key(device.location)].append(device)
        if device.target_id is not None:
            self._by_target[device.target_id].append(device)

    def conflicts(self, planned: Planned) -> list[Conflict]:
        row, column = self._key(planned.location)
        # A cell is `radius` high; at this latitude as many cells across cover `radius`.
        cosine = math.cos(math.radians(min(abs(planned.location[1]) + self._cell, 89.9)))
        across = math.ceil(1 / cosine)
        nearby = {
            device.key: device
            for r in range(row - 1, row + 2)
            for c in range(column - across, column + across + 1)
            for device in self._grid.get((r, c), ())
        }
        if planned.target_id is not None:
            nearby.update((d.key, d) for d in self._by_target.get(planned.target_id, ()))
        return conflicts(planned, nearby.values(), self.radius)
