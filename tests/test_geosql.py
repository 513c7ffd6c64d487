"""Geo-queries compiled to SQL select the same entities on SQLite and PostgreSQL/PostGIS.

Every relation runs against a few Stockholm places on both backends; `near` is checked against
distances computed here independently (haversine along densified great circles), and
`matches_geo` must agree with the SQL.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from stadsnav.ngsild.context import core_context
from stadsnav.ngsild.geoquery import GeoQuery, bbox, matches_geo, parse_geoquery
from stadsnav.store.geosql import compile_geo, register_sqlite_functions
from stadsnav.store.migrations import migration_files

PG_ADMIN = os.environ.get("STADSNAV_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
LOCATION = "https://uri.etsi.org/ngsi-ld/location"
OBSERVATION_SPACE = "https://uri.etsi.org/ngsi-ld/observationSpace"
EARTH_RADIUS = 6371008.8


def _ring(*corners: tuple[float, float]) -> list[list[list[float]]]:
    points = [list(c) for c in corners]
    return [[*points, points[0]]]


GAMLA_STAN = _ring((18.064, 59.3215), (18.0775, 59.3215), (18.0775, 59.329), (18.064, 59.329))
# The same polygon with its ring starting at another corner: topologically equal.
GAMLA_STAN_ROTATED = _ring(
    (18.0775, 59.3215), (18.0775, 59.329), (18.064, 59.329), (18.064, 59.3215)
)
RIDDARHOLMEN = _ring((18.060, 59.323), (18.066, 59.323), (18.066, 59.327), (18.060, 59.327))
CENTRALEN = [18.0582, 59.3300]

# id -> {attribute IRI: GeoJSON}
PLACES: dict[str, dict[str, dict[str, Any]]] = {
    "slottet": {LOCATION: {"type": "Point", "coordinates": [18.0716, 59.3268]}},
    "stadshuset": {LOCATION: {"type": "Point", "coordinates": [18.0543, 59.3275]}},
    "globen": {LOCATION: {"type": "Point", "coordinates": [18.0831, 59.2935]}},
    "kaknas": {LOCATION: {"type": "Point", "coordinates": [18.1300, 59.3350, 30.0]}},
    "uppsala": {LOCATION: {"type": "Point", "coordinates": [17.6339, 59.8582]}},
    "gamlastan": {LOCATION: {"type": "Polygon", "coordinates": GAMLA_STAN}},
    "riddarholmen": {LOCATION: {"type": "Polygon", "coordinates": RIDDARHOLMEN}},
    "drottninggatan": {
        LOCATION: {"type": "LineString", "coordinates": [[18.0590, 59.3370], [18.0660, 59.3300]]}
    },
    "centralbron": {
        LOCATION: {"type": "LineString", "coordinates": [[18.0660, 59.3320], [18.0700, 59.3250]]}
    },
    "sensors": {
        LOCATION: {"type": "MultiPoint", "coordinates": [[18.0400, 59.3400], [18.0700, 59.3280]]}
    },
    # Only another GeoProperty, and no GeoProperty at all: never selected by a `location` query.
    "satellite": {OBSERVATION_SPACE: {"type": "Polygon", "coordinates": GAMLA_STAN}},
    "nowhere": {},
}


# --- the two backends --------------------------------------------------------------------------


class Backend:
    dialect: Any

    def select(self, gq: GeoQuery) -> set[str]:
        raise NotImplementedError


class SqliteBackend(Backend):
    dialect = "sqlite"

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:")
        register_sqlite_functions(self.conn)
        for _, sql in migration_files("sqlite"):
            self.conn.executescript(sql)

    def load(self, places: dict[str, dict[str, dict[str, Any]]]) -> None:
        for name, attrs in places.items():
            pk = self.conn.execute(
                "INSERT INTO entities (tenant, id, types, doc, created_at, modified_at) "
                "VALUES ('t', ?, '[]', '{}', '', '')",
                (name,),
            ).lastrowid
            for attr, value in attrs.items():
                gid = self.conn.execute(
                    "INSERT INTO entity_geo (entity, attr, geojson) VALUES (?, ?, ?)",
                    (pk, attr, json.dumps(value)),
                ).lastrowid
                self.conn.execute(
                    "INSERT INTO entity_geo_box (gid, minx, maxx, miny, maxy) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (gid, *bbox(value)),
                )

    def select(self, gq: GeoQuery) -> set[str]:
        sql, params = compile_geo(gq, "sqlite")
        rows = self.conn.execute(f"SELECT e.id FROM entities e WHERE ({sql})", params)
        return {row[0] for row in rows}


class PostgresBackend(Backend):
    dialect = "postgres"

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        for _, sql in migration_files("postgres"):
            self.conn.execute(sql)

    def load(self, places: dict[str, dict[str, dict[str, Any]]]) -> None:
        for name, attrs in places.items():
            row = self.conn.execute(
                "INSERT INTO entities (tenant, id, types, doc, created_at, modified_at) "
                "VALUES ('t', %s, '{}', '{}', '', '') RETURNING pk",
                (name,),
            ).fetchone()
            assert row is not None
            for attr, value in attrs.items():
                self.conn.execute(
                    "INSERT INTO entity_geo (entity, attr, geom) "
                    "VALUES (%s, %s, ST_Force2D(ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326)))",
                    (row[0], attr, json.dumps(value)),
                )
        self.conn.execute("ANALYZE")

    def select(self, gq: GeoQuery) -> set[str]:
        sql, params = compile_geo(gq, "postgres")
        rows = self.conn.execute(
            f"SELECT e.id FROM entities e WHERE ({sql})",
            params,
        )
        return {row[0] for row in rows}


def _pg_unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI: {reason}")
    pytest.skip(f"PostgreSQL not reachable: {reason}")


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    name = f"stadsnav_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        _pg_unavailable(str(error))
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def sqlite_backend() -> SqliteBackend:
    backend = SqliteBackend()
    backend.load(PLACES)
    return backend


@pytest.fixture(scope="module")
def postgres_backend(pg_url: str) -> Iterator[PostgresBackend]:
    backend = PostgresBackend(pg_url)
    backend.load(PLACES)
    yield backend
    backend.conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Backend:
    fixture: Backend = request.getfixturevalue(f"{request.param}_backend")
    return fixture


def geoquery(
    georel: str, geometry: str, coordinates: Any, geoproperty: str | None = None
) -> GeoQuery:
    gq = parse_geoquery(georel, geometry, json.dumps(coordinates), geoproperty, core_context())
    assert gq is not None
    return gq


def python_select(gq: GeoQuery, places: dict[str, dict[str, dict[str, Any]]]) -> set[str]:
    return {
        name
        for name, attrs in places.items()
        if gq.geoproperty in attrs and matches_geo(gq, attrs[gq.geoproperty])
    }


# --- the relations -----------------------------------------------------------------------------

CASES: list[tuple[str, str, Any, set[str]]] = [
    ("within", "Polygon", GAMLA_STAN, {"slottet", "gamlastan"}),
    (
        "within",
        "Polygon",
        _ring((17, 59), (19, 59), (19, 60), (17, 60)),
        set(PLACES) - {"satellite", "nowhere"},
    ),
    (
        "within",
        "Polygon",
        _ring((17, 59), (19, 59), (19, 59.5), (17, 59.5)),
        set(PLACES) - {"uppsala", "satellite", "nowhere"},
    ),
    ("contains", "Point", [18.0716, 59.3268], {"slottet", "gamlastan"}),
    ("contains", "Point", [18.0543, 59.3275], {"stadshuset"}),
    ("contains", "LineString", [[18.0700, 59.3230], [18.0700, 59.3280]], {"gamlastan"}),
    (
        "intersects",
        "Polygon",
        GAMLA_STAN,
        {"slottet", "gamlastan", "riddarholmen", "centralbron", "sensors"},
    ),
    ("intersects", "LineString", [[18.0550, 59.3350], [18.0700, 59.3350]], {"drottninggatan"}),
    ("intersects", "Point", [17.6339, 59.8582], {"uppsala"}),
    ("equals", "Polygon", GAMLA_STAN_ROTATED, {"gamlastan"}),
    ("equals", "Point", [18.1300, 59.3350], {"kaknas"}),
    ("equals", "Point", [18.1300, 59.3351], set()),
    (
        "disjoint",
        "Polygon",
        GAMLA_STAN,
        {"stadshuset", "globen", "kaknas", "uppsala", "drottninggatan"},
    ),
    ("overlaps", "Polygon", GAMLA_STAN, {"riddarholmen"}),
    ("overlaps", "MultiPoint", [[18.0700, 59.3280], [18.0, 59.0]], {"sensors"}),
]


@pytest.mark.parametrize(("georel", "geometry", "coordinates", "expected"), CASES)
def test_relation(
    backend: Backend, georel: str, geometry: str, coordinates: Any, expected: set[str]
) -> None:
    gq = geoquery(georel, geometry, coordinates)
    assert backend.select(gq) == expected
    assert python_select(gq, PLACES) == expected


def test_other_geoproperty(backend: Backend) -> None:
    gq = geoquery("intersects", "Point", [18.0716, 59.3268], "observationSpace")
    assert backend.select(gq) == {"satellite"}
    gq = geoquery("disjoint", "Point", [0.0, 0.0], "observationSpace")
    assert backend.select(gq) == {"satellite"}


# --- near, against independently computed distances --------------------------------------------


def _haversine(a: tuple[float, float], b: tuple[float, float]) -> float:
    (lon1, lat1), (lon2, lat2) = a, b
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS * math.asin(math.sqrt(h))


def _great_circle_points(
    start: list[float], end: list[float], steps: int
) -> list[tuple[float, float]]:
    def vector(lon: float, lat: float) -> tuple[float, float, float]:
        lam, phi = math.radians(lon), math.radians(lat)
        return (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))

    p, q = vector(start[0], start[1]), vector(end[0], end[1])
    omega = math.acos(min(1.0, sum(a * b for a, b in zip(p, q, strict=True))))
    if omega == 0:
        return [(start[0], start[1])]
    points = []
    for i in range(steps + 1):
        t = i / steps
        wp, wq = math.sin((1 - t) * omega), math.sin(t * omega)
        x, y, z = ((wp * a + wq * b) / math.sin(omega) for a, b in zip(p, q, strict=True))
        points.append(
            (math.degrees(math.atan2(y, x)), math.degrees(math.atan2(z, math.hypot(x, y))))
        )
    return points


def _inside(point: tuple[float, float], ring: list[list[float]]) -> bool:
    x, y = point
    inside = False
    for (x1, y1), (x2, y2) in itertools.pairwise(ring):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def independent_distance(point: tuple[float, float], value: dict[str, Any]) -> float:
    """Haversine distance from a point to a geometry, from points densely along its edges."""
    kind, coords = value["type"], value["coordinates"]
    if kind == "Point":
        return _haversine(point, (coords[0], coords[1]))
    if kind == "MultiPoint":
        return min(_haversine(point, (c[0], c[1])) for c in coords)
    lines = [coords] if kind == "LineString" else coords[0] if kind == "Polygon" else None
    assert lines is not None, kind
    if kind == "Polygon":
        if _inside(point, coords[0]):
            return 0.0
        lines = [coords[0]]
    return min(
        _haversine(point, p)
        for line in lines
        for start, end in itertools.pairwise(line)
        for p in _great_circle_points(start, end, 4000)
    )


def test_near_against_independent_distances(backend: Backend) -> None:
    located = {name: attrs[LOCATION] for name, attrs in PLACES.items() if LOCATION in attrs}
    distances = {
        name: independent_distance((CENTRALEN[0], CENTRALEN[1]), v) for name, v in located.items()
    }
    ordered = sorted(set(distances.values()))
    # Thresholds halfway between neighbouring distances, where no approximation can tip the scale.
    thresholds = [(a + b) / 2 for a, b in itertools.pairwise(ordered)]
    thresholds = [t for t in thresholds if min(abs(t - d) for d in ordered) > 0.01 * t]
    assert len(thresholds) >= 6
    for threshold in thresholds:
        near = geoquery(f"near;maxDistance=={threshold:.1f}", "Point", CENTRALEN)
        expected = {name for name, d in distances.items() if d <= threshold}
        assert backend.select(near) == expected, threshold
        assert python_select(near, PLACES) == expected, threshold
        far = geoquery(f"near;minDistance=={threshold:.1f}", "Point", CENTRALEN)
        assert backend.select(far) == set(located) - expected, threshold
        assert python_select(far, PLACES) == set(located) - expected, threshold
    band = geoquery(
        f"near;minDistance=={thresholds[1]:.1f};maxDistance=={thresholds[-2]:.1f}",
        "Point",
        CENTRALEN,
    )
    expected = {n for n, d in distances.items() if thresholds[1] <= d <= thresholds[-2]}
    assert backend.select(band) == expected


def test_near_a_polygon(backend: Backend) -> None:
    # From Gamla stan's edge: Stadshuset is ~550 m west of it, Slottet inside it.
    gq = geoquery("near;maxDistance==600", "Polygon", GAMLA_STAN)
    selected = backend.select(gq)
    assert {"slottet", "gamlastan", "stadshuset", "riddarholmen", "centralbron"} <= selected
    assert not selected & {"globen", "kaknas", "uppsala"}
    assert selected == python_select(gq, PLACES)


def test_near_zero_is_touching(backend: Backend) -> None:
    gq = geoquery("near;maxDistance==0", "Point", [18.0716, 59.3268])
    assert backend.select(gq) == {"slottet", "gamlastan"}


# --- randomised agreement of both backends and matches_geo -------------------------------------


def _random_places(rng: random.Random, count: int) -> dict[str, dict[str, dict[str, Any]]]:
    def point() -> list[float]:
        return [round(rng.uniform(17.9, 18.2), 5), round(rng.uniform(59.25, 59.40), 5)]

    places: dict[str, dict[str, dict[str, Any]]] = {}
    for i in range(count):
        kind = rng.choice(["Point", "Point", "LineString", "Polygon", "MultiPoint"])
        if kind == "Point":
            value: dict[str, Any] = {"type": "Point", "coordinates": point()}
        elif kind == "MultiPoint":
            value = {"type": "MultiPoint", "coordinates": [point() for _ in range(3)]}
        elif kind == "LineString":
            value = {"type": "LineString", "coordinates": [point() for _ in range(3)]}
        else:
            (x, y), w, h = point(), rng.uniform(0.002, 0.05), rng.uniform(0.001, 0.03)
            value = {
                "type": "Polygon",
                "coordinates": _ring((x, y), (x + w, y), (x + w, y + h), (x, y + h)),
            }
        places[f"r{i}"] = {LOCATION: value}
    return places


def test_random_agreement(pg_url: str) -> None:
    rng = random.Random(20240601)
    places = _random_places(rng, 300)
    lite = SqliteBackend()
    lite.load(places)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        schema = f"random_{uuid.uuid4().hex[:8]}"
        conn.execute(f'CREATE SCHEMA "{schema}"')
    pg = PostgresBackend(pg_url + f"?options=-csearch_path%3D{schema},public")
    try:
        pg.load(places)
        queries = [
            geoquery(
                rel, "Polygon", _ring((18.0, 59.3), (18.1, 59.3), (18.1, 59.35), (18.0, 59.35))
            )
            for rel in ["within", "contains", "intersects", "disjoint", "overlaps", "equals"]
        ]
        queries += [
            geoquery(rel, "LineString", [[17.95, 59.28], [18.15, 59.37]])
            for rel in ["intersects", "disjoint", "within"]
        ]
        for distance in (500, 2500, 7000):
            for side in ("maxDistance", "minDistance"):
                queries.append(geoquery(f"near;{side}=={distance}", "Point", [18.05, 59.33]))
        for gq in queries:
            expected = python_select(gq, places)
            got_lite, got_pg = lite.select(gq), pg.select(gq)
            if gq.georel == "near":
                # Allow disagreement only where a distance is within 0.5 % of the threshold.
                limit: float = gq.max_distance or gq.min_distance or 0.0
                for name in expected ^ got_pg:
                    measured = independent_distance((18.05, 59.33), places[name][LOCATION])
                    assert abs(measured - limit) < 0.005 * limit, (name, gq)
                got_pg = expected
            assert got_lite == expected, gq
            assert got_pg == expected, gq
            if gq.georel in ("intersects", "disjoint", "near", "overlaps"):
                assert expected, gq
    finally:
        pg.conn.close()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# --- the SQL itself ----------------------------------------------------------------------------


def test_postgres_placeholders_and_percent() -> None:
    gq = geoquery("near;maxDistance==100", "Point", [18.0, 59.0])
    sql, params = compile_geo(gq, "postgres")
    assert sql.count("%s") == len(params)
    assert "?" not in sql
    assert "%" not in sql.replace("%s", "")
    sql, params = compile_geo(gq, "sqlite")
    assert sql.count("?") == len(params)
    assert "%s" not in sql


def test_sqlite_uses_the_rtree(sqlite_backend: SqliteBackend) -> None:
    for georel in ("within", "near;maxDistance==100"):
        gq = geoquery(georel, "Point", [18.0, 59.0])
        sql, params = compile_geo(gq, "sqlite")
        plan = sqlite_backend.conn.execute(
            f"EXPLAIN QUERY PLAN SELECT e.id FROM entities e WHERE ({sql})", params
        ).fetchall()
        steps = [str(row[3]) for row in plan]
        # The R*Tree drives; entity_geo rows are fetched by gid only for the boxes found.
        rtree = next(i for i, s in enumerate(steps) if s.startswith("SCAN b VIRTUAL TABLE INDEX"))
        assert steps[rtree + 1] == "SEARCH g USING INTEGER PRIMARY KEY (rowid=?)", steps


def test_postgres_near_can_use_the_gist_index(postgres_backend: PostgresBackend) -> None:
    gq = geoquery("near;maxDistance==100", "Point", [18.0, 59.0])
    sql, params = compile_geo(gq, "postgres")
    conn = postgres_backend.conn
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = conn.execute(
            f"EXPLAIN SELECT e.id FROM entities e WHERE ({sql})",
            params,
        ).fetchall()
    assert any("entity_geo_geom" in row[0] for row in plan), plan


def test_sqlite_function_survives_bad_rows() -> None:
    conn = sqlite3.connect(":memory:")
    register_sqlite_functions(conn)
    query = '{"type":"Point","coordinates":[18,59]}'
    for row in ("not json", '{"type":"MultiPoint","coordinates":[]}'):
        value = conn.execute(
            "SELECT stadsnav_geo('disjoint', ?, NULL, NULL, ?)", (query, row)
        ).fetchone()
        assert value == (0,)
