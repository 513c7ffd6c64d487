"""Geo-queries (GS CIM 009 clause 4.10): parsing, and evaluation in Python with shapely.

A geo-query relates the value of an entity's GeoProperty (A) to a reference geometry (B) given by
the request: ``within`` means A within B, ``contains`` means A contains B, and so on with the
DE-9IM meanings of the OGC Simple Features predicates, computed on longitude/latitude as plane
coordinates (as PostGIS does for the ``geometry`` type). ``near;maxDistance==M`` asks for a
distance from A to B of at most M metres, ``near;minDistance==M`` for at least M metres.

Distances are geodesic on the WGS84 ellipsoid between the two nearest points of A and B. Between
two points they are exact (Vincenty's inverse formula, to well under a millimetre); for other
shapes the nearest points are found in an azimuthal equidistant projection centred on B's nearest
point, whose distortion is negligible at city scale (under 0.01 % within 100 km).

The stores compile a :class:`GeoQuery` to SQL (``store/geosql.py``); :func:`matches_geo` and
:func:`relation_holds` are the same test in Python, used by subscriptions and by SQLite.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
import shapely.geometry
import shapely.ops
from shapely.errors import ShapelyError

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.errors import BadRequestData
from stadsnav.ngsild.geojson import validate_geometry
from stadsnav.ngsild.names import check_name

RELATIONS = frozenset(
    {"near", "within", "contains", "intersects", "equals", "disjoint", "overlaps"}
)
QUERY_GEOMETRY_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
)
DEFAULT_GEOPROPERTY = "location"

_DISTANCE = re.compile(r"^(maxDistance|minDistance)==(\d+(?:\.\d+)?)$")
_MAX_PARAMETER_LENGTH = 1_000_000

# WGS84 ellipsoid, and the mean radius of the sphere used for the local projection.
_A = 6378137.0
_F = 1 / 298.257223563
_B = _A * (1 - _F)
MEAN_RADIUS = (2 * _A + _B) / 3


@dataclass(frozen=True)
class GeoQuery:
    """A validated geo-query. `georel` is the bare relation name (``near``, ``within``, ...)."""

    georel: str
    max_distance: float | None
    min_distance: float | None
    geometry: dict[str, Any]
    geoproperty: str

    @property
    def geometry_text(self) -> str:
        """The reference geometry as compact GeoJSON text (the form handed to SQL)."""
        return json.dumps(self.geometry, separators=(",", ":"))


def parse_geoquery(
    georel: str | None,
    geometry: str | None,
    coordinates: str | list[Any] | None,
    geoproperty: str | None,
    ctx: Context,
) -> GeoQuery | None:
    """Parse the geo-query parameters of a query or subscription; None when there is none.

    `coordinates` is the JSON array text of a query string (already URL-decoded) or the array a
    subscription body holds. Every invalid input raises BadRequestData.
    """
    if georel is None and geometry is None and coordinates is None:
        return None
    missing = [
        name
        for name, value in (
            ("georel", georel),
            ("geometry", geometry),
            ("coordinates", coordinates),
        )
        if value is None
    ]
    if missing:
        raise BadRequestData(
            "A geo-query needs georel, geometry and coordinates; missing: " + ", ".join(missing)
        )
    relation, max_distance, min_distance = _parse_georel(georel)
    if not isinstance(geometry, str) or geometry not in QUERY_GEOMETRY_TYPES:
        raise BadRequestData(
            f"geometry must be one of {', '.join(sorted(QUERY_GEOMETRY_TYPES))}, "
            f"got {geometry!r:.100}"
        )
    value = _parse_coordinates(coordinates)
    checked = validate_geometry({"type": geometry, "coordinates": value})
    shape = _shape_or_none(checked)
    if shape is None or shape.is_empty:
        raise BadRequestData("The geo-query geometry is empty")
    if not shape.is_valid:
        reason = shapely.is_valid_reason(shape)
        raise BadRequestData(f"The geo-query geometry is not valid: {reason:.200}")
    name = DEFAULT_GEOPROPERTY if geoproperty is None else geoproperty
    if not isinstance(name, str):
        raise BadRequestData("geoproperty must be an attribute name")
    check_name(name, "geoproperty")
    return GeoQuery(
        georel=relation,
        max_distance=max_distance,
        min_distance=min_distance,
        geometry={"type": checked["type"], "coordinates": checked["coordinates"]},
        geoproperty=ctx.expand(name),
    )


def _parse_georel(text: Any) -> tuple[str, float | None, float | None]:
    if not isinstance(text, str) or len(text) > 200:
        raise BadRequestData(f"Invalid georel {text!r:.100}")
    parts = [part.strip() for part in text.split(";")]
    relation = parts[0]
    if relation not in RELATIONS:
        raise BadRequestData(
            f"georel must be one of {', '.join(sorted(RELATIONS))}, got {relation!r:.100}"
        )
    if relation != "near":
        if len(parts) > 1:
            raise BadRequestData(f"georel {relation!r} takes no modifiers")
        return relation, None, None
    distances: dict[str, float] = {}
    for part in parts[1:]:
        match = _DISTANCE.match(part)
        if match is None:
            raise BadRequestData(
                f"Invalid near modifier {part!r:.100}: expected maxDistance==M or minDistance==M"
            )
        key, number = match.group(1), float(match.group(2))
        if key in distances:
            raise BadRequestData(f"{key} is given twice in georel")
        if not math.isfinite(number):
            raise BadRequestData(f"{key} must be a finite number of metres")
        distances[key] = number
    if not distances:
        raise BadRequestData("georel near needs maxDistance==M or minDistance==M (metres)")
    max_distance = distances.get("maxDistance")
    min_distance = distances.get("minDistance")
    if max_distance is not None and min_distance is not None and min_distance > max_distance:
        raise BadRequestData("minDistance is larger than maxDistance")
    return relation, max_distance, min_distance


def _parse_coordinates(coordinates: Any) -> Any:
    if isinstance(coordinates, list):
        return coordinates
    if not isinstance(coordinates, str):
        raise BadRequestData("coordinates must be a JSON array")
    if len(coordinates) > _MAX_PARAMETER_LENGTH:
        raise BadRequestData("coordinates is too long")
    try:
        value = json.loads(coordinates)
    except (ValueError, RecursionError) as error:
        raise BadRequestData(f"coordinates is not a JSON array: {coordinates!r:.100}") from error
    if not isinstance(value, list):
        raise BadRequestData(f"coordinates is not a JSON array: {coordinates!r:.100}")
    return value


def _shape_or_none(geometry: dict[str, Any]) -> Any:
    try:
        return shapely.geometry.shape(geometry)
    except (ShapelyError, ValueError, TypeError, IndexError, AttributeError):
        return None


def bbox(geometry: dict[str, Any]) -> tuple[float, float, float, float]:
    """The bounding box (minx, maxx, miny, maxy) of a validated GeoJSON geometry."""
    shape = _shape_or_none(geometry)
    if shape is None or shape.is_empty:
        raise BadRequestData("An empty geometry has no bounding box")
    minx, miny, maxx, maxy = shape.bounds
    return float(minx), float(maxx), float(miny), float(maxy)


def shape_from_text(text: str) -> Any:
    """A shapely geometry from GeoJSON text (2D; a third coordinate is kept but ignored)."""
    return shapely.from_geojson(text)


def matches_geo(gq: GeoQuery, geometry: dict[str, Any]) -> bool:
    """Whether a GeoProperty value satisfies the geo-query (the SQL compilations' twin)."""
    entity_shape = _shape_or_none(geometry)
    if entity_shape is None or entity_shape.is_empty:
        return False
    try:
        return relation_holds(
            gq.georel,
            gq.max_distance,
            gq.min_distance,
            entity_shape,
            _thread_cache().get(gq.geometry_text),
        )
    except (ShapelyError, ValueError):
        return False


class QueryShapeCache:
    """Parsed and prepared reference geometries by GeoJSON text; one per thread or connection.

    Prepared GEOS geometries build their indexes lazily and must not be shared between threads.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._shapes: OrderedDict[str, Any] = OrderedDict()

    def get(self, text: str) -> Any:
        shape = self._shapes.get(text)
        if shape is not None:
            self._shapes.move_to_end(text)
            return shape
        shape = shapely.from_geojson(text)
        shapely.prepare(shape)
        self._shapes[text] = shape
        if len(self._shapes) > self.size:
            self._shapes.popitem(last=False)
        return shape


_local = threading.local()


def _thread_cache() -> QueryShapeCache:
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = QueryShapeCache()
    assert isinstance(cache, QueryShapeCache)
    return cache


def relation_holds(
    georel: str,
    max_distance: float | None,
    min_distance: float | None,
    entity_shape: Any,
    query_shape: Any,
) -> bool:
    """Evaluate ``A georel B`` for shapely geometries A (the entity's) and B (the query's).

    B comes first in the GEOS calls so that a prepared B speeds them up.
    """
    a, b = entity_shape, query_shape
    if georel == "near":
        if a.geom_type == "Point" and b.geom_type == "Point":
            return points_near(a.x, a.y, b.x, b.y, max_distance, min_distance)
        if max_distance is not None and min_distance is None and shapely.intersects(b, a):
            return True
        distance = geo_distance(a, b)
        if max_distance is not None and distance > max_distance:
            return False
        return min_distance is None or distance >= min_distance
    if georel == "within":
        return bool(shapely.contains(b, a))
    if georel == "contains":
        return bool(shapely.within(b, a))
    if georel == "intersects":
        return bool(shapely.intersects(b, a))
    if georel == "disjoint":
        return bool(shapely.disjoint(b, a))
    if georel == "overlaps":
        return bool(shapely.overlaps(b, a))
    if georel == "equals":
        return bool(shapely.equals(b, a))
    raise BadRequestData(f"Unknown georel {georel!r:.100}")


# ---------------------------------------------------------------------------------------------
# Distances

# The ellipsoid's geodesics differ from the mean sphere's great circles by less than 0.6 %.
_SPHERE_ERROR = 0.007


def points_near(
    lon: float,
    lat: float,
    ref_lon: float,
    ref_lat: float,
    max_distance: float | None,
    min_distance: float | None,
) -> bool:
    """`near` between two points: the haversine decides unless it is too close to call."""
    rough = haversine_distance(lon, lat, ref_lon, ref_lat)
    low, high = rough * (1 - _SPHERE_ERROR), rough * (1 + _SPHERE_ERROR)
    distance = rough
    if (max_distance is not None and low <= max_distance <= high) or (
        min_distance is not None and low <= min_distance <= high
    ):
        distance = geodesic_distance(lon, lat, ref_lon, ref_lat)
    if max_distance is not None and distance > max_distance:
        return False
    return min_distance is None or distance >= min_distance


def geodesic_distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """The geodesic distance in metres between two points on the WGS84 ellipsoid.

    Vincenty's inverse formula; for nearly antipodal points, where it may not converge, the
    spherical (haversine) distance on the mean-radius sphere is returned instead.
    """
    if lon1 == lon2 and lat1 == lat2:
        return 0.0
    big_l = math.radians(lon2 - lon1)
    u1 = math.atan((1 - _F) * math.tan(math.radians(lat1)))
    u2 = math.atan((1 - _F) * math.tan(math.radians(lat2)))
    sin_u1, cos_u1 = math.sin(u1), math.cos(u1)
    sin_u2, cos_u2 = math.sin(u2), math.cos(u2)
    lam = big_l
    for _ in range(200):
        sin_lam, cos_lam = math.sin(lam), math.cos(lam)
        sin_sigma = math.hypot(cos_u2 * sin_lam, cos_u1 * sin_u2 - sin_u1 * cos_u2 * cos_lam)
        if sin_sigma == 0:
            return 0.0
        cos_sigma = sin_u1 * sin_u2 + cos_u1 * cos_u2 * cos_lam
        sigma = math.atan2(sin_sigma, cos_sigma)
        sin_alpha = cos_u1 * cos_u2 * sin_lam / sin_sigma
        cos2_alpha = 1 - sin_alpha * sin_alpha
        cos_2sm = cos_sigma - 2 * sin_u1 * sin_u2 / cos2_alpha if cos2_alpha != 0 else 0.0
        c = _F / 16 * cos2_alpha * (4 + _F * (4 - 3 * cos2_alpha))
        previous = lam
        lam = big_l + (1 - c) * _F * sin_alpha * (
            sigma + c * sin_sigma * (cos_2sm + c * cos_sigma * (-1 + 2 * cos_2sm * cos_2sm))
        )
        if abs(lam - previous) < 1e-12:
            break
    else:
        return haversine_distance(lon1, lat1, lon2, lat2)
    u_sq = cos2_alpha * (_A * _A - _B * _B) / (_B * _B)
    big_a = 1 + u_sq / 16384 * (4096 + u_sq * (-768 + u_sq * (320 - 175 * u_sq)))
    big_b = u_sq / 1024 * (256 + u_sq * (-128 + u_sq * (74 - 47 * u_sq)))
    delta_sigma = (
        big_b
        * sin_sigma
        * (
            cos_2sm
            + big_b
            / 4
            * (
                cos_sigma * (-1 + 2 * cos_2sm * cos_2sm)
                - big_b / 6 * cos_2sm * (-3 + 4 * sin_sigma * sin_sigma) * (-3 + 4 * cos_2sm**2)
            )
        )
    )
    return _B * big_a * (sigma - delta_sigma)


def haversine_distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """The great-circle distance in metres on the sphere of the Earth's mean radius."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((phi2 - phi1) / 2) ** 2
        + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * MEAN_RADIUS * math.asin(min(1.0, math.sqrt(h)))


class _Azimuthal:
    """The azimuthal equidistant projection of the sphere around a centre (metres)."""

    def __init__(self, lon: float, lat: float) -> None:
        self.lon0 = math.radians(lon)
        self.lat0 = math.radians(lat)
        self.sin0 = math.sin(self.lat0)
        self.cos0 = math.cos(self.lat0)

    def forward(self, coords: Any) -> Any:
        lon = np.radians(coords[:, 0])
        lat = np.radians(coords[:, 1])
        dlon = lon - self.lon0
        cos_lat = np.cos(lat)
        h = np.sin((lat - self.lat0) / 2) ** 2 + self.cos0 * cos_lat * np.sin(dlon / 2) ** 2
        rho = 2 * MEAN_RADIUS * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
        azimuth = np.arctan2(
            np.sin(dlon) * cos_lat, self.cos0 * np.sin(lat) - self.sin0 * cos_lat * np.cos(dlon)
        )
        return np.column_stack((rho * np.sin(azimuth), rho * np.cos(azimuth)))

    def inverse(self, x: float, y: float) -> tuple[float, float]:
        c = math.hypot(x, y) / MEAN_RADIUS
        if c == 0:
            return math.degrees(self.lon0), math.degrees(self.lat0)
        azimuth = math.atan2(x, y)
        sin_c, cos_c = math.sin(c), math.cos(c)
        lat = math.asin(
            max(-1.0, min(1.0, self.sin0 * cos_c + self.cos0 * sin_c * math.cos(azimuth)))
        )
        lon = self.lon0 + math.atan2(
            math.sin(azimuth) * sin_c * self.cos0, cos_c - self.sin0 * math.sin(lat)
        )
        lon_deg = (math.degrees(lon) + 540.0) % 360.0 - 180.0
        return lon_deg, math.degrees(lat)


def geo_distance(a: Any, b: Any) -> float:
    """The geodesic distance in metres between two lon/lat shapely geometries (0 if they meet)."""
    if a.geom_type == "Point" and b.geom_type == "Point":
        return geodesic_distance(a.x, a.y, b.x, b.y)
    if shapely.intersects(a, b):
        return 0.0
    # First guess of B's nearest point in plain degrees, then twice in a projection around it.
    _, near_b = shapely.ops.nearest_points(a, b)
    centre = (near_b.x, near_b.y)
    ends = ((0.0, 0.0), centre)
    for _ in range(2):
        projection = _Azimuthal(*centre)
        pa, pb = shapely.ops.nearest_points(
            shapely.transform(a, projection.forward), shapely.transform(b, projection.forward)
        )
        ends = (projection.inverse(pa.x, pa.y), projection.inverse(pb.x, pb.y))
        centre = ends[1]
    (lon1, lat1), (lon2, lat2) = ends
    return geodesic_distance(lon1, lat1, lon2, lat2)


def near_box(
    bounds: tuple[float, float, float, float], distance: float
) -> tuple[float, float, float, float]:
    """A box (minx, maxx, miny, maxy) in degrees holding every point within `distance` metres
    of a geometry with these bounds (minx, maxx, miny, maxy): generous, never too small."""
    minx, maxx, miny, maxy = bounds
    # A degree of latitude is at least 110 574 m; take 110 000 m and 2 % more on top.
    dlat = distance / 110_000.0 * 1.02 + 1e-7
    low, high = miny - dlat, maxy + dlat
    extreme = max(abs(low), abs(high))
    if extreme >= 89.0:
        return -180.0, 180.0, max(low, -90.0), min(high, 90.0)
    dlon = dlat / math.cos(math.radians(extreme))
    west, east = minx - dlon, maxx + dlon
    if west < -180.0 or east > 180.0:
        west, east = -180.0, 180.0
    return west, east, low, high
