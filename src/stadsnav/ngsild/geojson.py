"""GeoJSON geometry validation (RFC 7946) for GeoProperty values and geo-queries."""

from __future__ import annotations

import math
from typing import Any

from stadsnav.ngsild.errors import BadRequestData

GEOMETRY_TYPES = frozenset(
    {
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    }
)
# The core context maps GeoJSON types to geojson: IRIs; they may arrive expanded.
_GEOJSON_VOCAB = "https://purl.org/geojson/vocab#"


def _position(value: Any) -> None:
    if not isinstance(value, list) or not 2 <= len(value) <= 3:
        raise BadRequestData("A GeoJSON position must be an array of 2 or 3 numbers")
    for number in value:
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise BadRequestData("A GeoJSON position must hold numbers only")
        if not math.isfinite(number):
            raise BadRequestData("A GeoJSON position must hold finite numbers")
    lon, lat = value[0], value[1]
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise BadRequestData(f"Position {value} is outside longitude/latitude range")


def _positions(value: Any, minimum: int) -> None:
    if not isinstance(value, list) or len(value) < minimum:
        raise BadRequestData(f"A GeoJSON line needs at least {minimum} positions")
    for position in value:
        _position(position)


def _ring(value: Any) -> None:
    _positions(value, 4)
    if value[0] != value[-1]:
        raise BadRequestData("A GeoJSON polygon ring must be closed (first = last position)")


def _polygon(value: Any) -> None:
    if not isinstance(value, list) or not value:
        raise BadRequestData("A GeoJSON polygon needs at least one ring")
    for ring in value:
        _ring(ring)


def _multi(value: Any, check: Any) -> None:
    if not isinstance(value, list):
        raise BadRequestData("GeoJSON coordinates must be an array")
    for part in value:
        check(part)


def geometry_type(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if not isinstance(kind, str):
        return None
    if kind.startswith(_GEOJSON_VOCAB):
        kind = kind[len(_GEOJSON_VOCAB) :]
    return kind if kind in GEOMETRY_TYPES else None


def looks_like_geometry(value: Any) -> bool:
    return geometry_type(value) is not None and ("coordinates" in value or "geometries" in value)


def validate_geometry(value: Any) -> dict[str, Any]:
    """Check a GeoJSON geometry and return it with a plain (compacted) type name."""
    kind = geometry_type(value)
    if kind is None:
        raise BadRequestData("A GeoProperty value must be a GeoJSON geometry")
    assert isinstance(value, dict)
    if kind == "GeometryCollection":
        parts = value.get("geometries")
        if not isinstance(parts, list):
            raise BadRequestData("A GeometryCollection needs a 'geometries' array")
        return {"type": kind, "geometries": [validate_geometry(part) for part in parts]}
    coordinates = value.get("coordinates")
    if kind == "Point":
        _position(coordinates)
    elif kind == "MultiPoint":
        _multi(coordinates, _position)
    elif kind == "LineString":
        _positions(coordinates, 2)
    elif kind == "MultiLineString":
        _multi(coordinates, lambda line: _positions(line, 2))
    elif kind == "Polygon":
        _polygon(coordinates)
    else:
        _multi(coordinates, _polygon)
    result = dict(value)
    result["type"] = kind
    return result
