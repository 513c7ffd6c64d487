"""Compilation of a GeoQuery to a SQL condition on the entity row `e`, for either backend.

SQLite keeps GeoJSON text and an R*Tree of bounding boxes: the R*Tree narrows the candidates and
``stadsnav_geo(...)`` (a Python function over shapely, registered per connection) decides exactly,
with the same code as ``ngsild.geoquery.matches_geo``. PostgreSQL uses PostGIS: the predicates on
``geometry`` use the GIST index on ``entity_geo.geom``; `near` measures on ``geography`` (metres on
the WGS84 spheroid) behind a ``geom && box`` filter in degrees, so that the index still serves.

An entity matches when any instance of the GeoProperty (one per datasetId) satisfies the relation;
`disjoint` and `near;minDistance` therefore need the entity to have the GeoProperty at all.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

import orjson
from shapely.errors import ShapelyError

from stadsnav.ngsild.geoquery import (
    GeoQuery,
    QueryShapeCache,
    bbox,
    near_box,
    points_near,
    relation_holds,
    shape_from_text,
)

Dialect = Literal["sqlite", "postgres"]
SQLITE_FUNCTION = "stadsnav_geo"

_POSTGIS_PREDICATE = {
    "within": "ST_Within",
    "contains": "ST_Contains",
    "intersects": "ST_Intersects",
    "equals": "ST_Equals",
    "overlaps": "ST_Overlaps",
    "disjoint": "ST_Disjoint",
}


def compile_geo(gq: GeoQuery, dialect: Dialect) -> tuple[str, list[Any]]:
    """A SQL boolean expression selecting the entities `e` that satisfy the geo-query."""
    if dialect == "sqlite":
        return _sqlite(gq)
    return _postgres(gq)


def _sqlite(gq: GeoQuery) -> tuple[str, list[Any]]:
    text = gq.geometry_text
    box = bbox(gq.geometry)
    check = f"{SQLITE_FUNCTION}(?, ?, ?, ?, g.geojson)"
    check_params: list[Any] = [gq.georel, text, gq.max_distance, gq.min_distance]
    box_test = "b.minx <= ? AND b.maxx >= ? AND b.miny <= ? AND b.maxy >= ?"
    in_box = f"SELECT b.gid FROM entity_geo_box b WHERE {box_test}"
    if gq.georel == "near" and gq.max_distance is not None:
        # Only rows whose box meets the query's box grown by the distance can be near enough.
        minx, maxx, miny, maxy = near_box(box, gq.max_distance)
    elif gq.georel == "near" or gq.georel == "disjoint":
        # Rows whose box misses the (grown) query box certainly qualify; the others are checked.
        grown = near_box(box, gq.min_distance) if gq.min_distance else box
        minx, maxx, miny, maxy = grown
        return (
            "EXISTS (SELECT 1 FROM entity_geo g WHERE g.entity = e.pk AND g.attr = ? "
            f"AND (g.gid NOT IN ({in_box}) OR {check}))",
            [gq.geoproperty, maxx, minx, maxy, miny, *check_params],
        )
    else:
        # Every other relation needs the two geometries, hence their boxes, to meet.
        minx, maxx, miny, maxy = box
    # Uncorrelated, and CROSS JOIN makes SQLite start from the R*Tree: the exact test runs only
    # for the rows whose box qualifies, however many entities there are.
    return (
        "e.pk IN (SELECT g.entity FROM entity_geo_box b CROSS JOIN entity_geo g "
        f"WHERE {box_test} AND g.gid = b.gid AND g.attr = ? AND {check})",
        [maxx, minx, maxy, miny, gq.geoproperty, *check_params],
    )


def _postgres(gq: GeoQuery) -> tuple[str, list[Any]]:
    text = gq.geometry_text
    ref = "ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326)"
    conditions: list[str] = []
    params: list[Any] = [gq.geoproperty]
    if gq.georel == "near":
        if gq.max_distance is not None:
            minx, maxx, miny, maxy = near_box(bbox(gq.geometry), gq.max_distance)
            conditions.append("g.geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)")
            params.extend([minx, miny, maxx, maxy])
            conditions.append(f"ST_DWithin(g.geom::geography, {ref}::geography, %s)")
            params.extend([text, gq.max_distance])
        if gq.min_distance is not None:
            conditions.append(f"NOT ST_DWithin(g.geom::geography, {ref}::geography, %s)")
            params.extend([text, gq.min_distance])
    else:
        conditions.append(f"{_POSTGIS_PREDICATE[gq.georel]}(g.geom, {ref})")
        params.append(text)
    return (
        "EXISTS (SELECT 1 FROM entity_geo g WHERE g.entity = e.pk AND g.attr = %s AND "
        + " AND ".join(conditions)
        + ")",
        params,
    )


def register_sqlite_functions(conn: sqlite3.Connection) -> None:
    """Register ``stadsnav_geo(georel, query GeoJSON, maxDistance, minDistance, row GeoJSON)``.

    The reference geometry is parsed and prepared once per connection and query text.
    """
    cache = QueryShapeCache()

    def stadsnav_geo(
        georel: str,
        query_text: str,
        max_distance: float | None,
        min_distance: float | None,
        row_text: str,
    ) -> int:
        try:
            query_shape = cache.get(query_text)
            if georel == "near" and query_shape.geom_type == "Point":
                # Point to point is most of the work: no shapely object needed.
                value = orjson.loads(row_text)
                if value.get("type") == "Point":
                    lon, lat = value["coordinates"][:2]
                    return int(
                        points_near(
                            lon, lat, query_shape.x, query_shape.y, max_distance, min_distance
                        )
                    )
            row_shape = shape_from_text(row_text)
            if row_shape.is_empty:
                return 0
            return int(relation_holds(georel, max_distance, min_distance, row_shape, query_shape))
        except (ShapelyError, ValueError, TypeError, KeyError, AttributeError):
            return 0

    conn.create_function(SQLITE_FUNCTION, 5, stadsnav_geo, deterministic=True)
