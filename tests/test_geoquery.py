"""Geo-query parameters (clause 4.10): parsing, bounding boxes, distances, Python evaluation."""

from __future__ import annotations

import contextlib
import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stadsnav.ngsild.context import Context, core_context
from stadsnav.ngsild.errors import BadRequestData, NgsiLdError
from stadsnav.ngsild.geoquery import (
    GeoQuery,
    bbox,
    geo_distance,
    geodesic_distance,
    haversine_distance,
    matches_geo,
    near_box,
    parse_geoquery,
)

LOCATION = "https://uri.etsi.org/ngsi-ld/location"
SLOTTET = [18.0716, 59.3268]
GAMLA_STAN = [[[18.064, 59.3215], [18.0775, 59.3215], [18.0775, 59.329], [18.064, 59.329]]]
GAMLA_STAN[0].append(GAMLA_STAN[0][0])


def parse(
    georel: str | None = "near;maxDistance==2000",
    geometry: str | None = "Point",
    coordinates: str | list[Any] | None = "[18.0686,59.3293]",
    geoproperty: str | None = None,
    ctx: Context | None = None,
) -> GeoQuery | None:
    return parse_geoquery(georel, geometry, coordinates, geoproperty, ctx or core_context())


# --- parsing -----------------------------------------------------------------------------------


def test_no_geoquery_at_all() -> None:
    assert parse(None, None, None) is None
    assert parse(None, None, None, "observationSpace") is None


def test_near_max_distance() -> None:
    gq = parse()
    assert gq == GeoQuery(
        georel="near",
        max_distance=2000.0,
        min_distance=None,
        geometry={"type": "Point", "coordinates": [18.0686, 59.3293]},
        geoproperty=LOCATION,
    )


def test_near_min_distance_and_both() -> None:
    gq = parse("near;minDistance==150.5")
    assert gq is not None
    assert (gq.max_distance, gq.min_distance) == (None, 150.5)
    both = parse("near;minDistance==10;maxDistance==20")
    assert both is not None
    assert (both.max_distance, both.min_distance) == (20.0, 10.0)


@pytest.mark.parametrize(
    "georel", ["within", "contains", "intersects", "equals", "disjoint", "overlaps"]
)
def test_plain_relations(georel: str) -> None:
    gq = parse(georel, "Polygon", GAMLA_STAN)
    assert gq is not None
    assert gq.georel == georel
    assert gq.max_distance is None
    assert gq.min_distance is None
    assert gq.geometry == {"type": "Polygon", "coordinates": GAMLA_STAN}


@pytest.mark.parametrize(
    ("geometry", "coordinates"),
    [
        ("Point", "[18.06, 59.33]"),
        ("Point", "[18.06, 59.33, 12.5]"),
        ("MultiPoint", "[[18.06, 59.33], [18.07, 59.34]]"),
        ("LineString", "[[18.06, 59.33], [18.07, 59.34]]"),
        ("MultiLineString", "[[[18.06, 59.33], [18.07, 59.34]], [[18.0, 59.0], [18.1, 59.1]]]"),
        ("Polygon", "[[[18.0,59.0],[18.1,59.0],[18.1,59.1],[18.0,59.1],[18.0,59.0]]]"),
        ("MultiPolygon", "[[[[18.0,59.0],[18.1,59.0],[18.1,59.1],[18.0,59.1],[18.0,59.0]]]]"),
    ],
)
def test_every_geometry_type(geometry: str, coordinates: str) -> None:
    gq = parse("intersects", geometry, coordinates)
    assert gq is not None
    assert gq.geometry["type"] == geometry


def test_geoproperty_is_expanded() -> None:
    ctx = Context.build([{"area": "https://example.org/vocab#area"}])
    gq = parse(geoproperty="area", ctx=ctx)
    assert gq is not None
    assert gq.geoproperty == "https://example.org/vocab#area"
    core = parse(geoproperty="observationSpace")
    assert core is not None
    assert core.geoproperty == "https://uri.etsi.org/ngsi-ld/observationSpace"


def test_coordinates_as_list_like_a_subscription() -> None:
    gq = parse("near;maxDistance==10", "Point", [18.0, 59.0])
    assert gq is not None
    assert gq.geometry["coordinates"] == [18.0, 59.0]


def test_geometry_text_is_geojson() -> None:
    gq = parse()
    assert gq is not None
    assert gq.geometry_text == '{"type":"Point","coordinates":[18.0686,59.3293]}'


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates", "geoproperty"),
    [
        # Only some of the three mandatory parameters.
        ("near;maxDistance==10", None, None, None),
        (None, "Point", "[1,2]", None),
        ("within", "Point", None, None),
        (None, None, "[1,2]", None),
        # georel
        ("near", "Point", "[1,2]", None),
        ("near;", "Point", "[1,2]", None),
        ("near;maxDistance=10", "Point", "[1,2]", None),
        ("near;maxDistance==-10", "Point", "[1,2]", None),
        ("near;maxDistance==ten", "Point", "[1,2]", None),
        ("near;maxDistance==1e3", "Point", "[1,2]", None),
        ("near;maxDistance==10;maxDistance==20", "Point", "[1,2]", None),
        ("near;minDistance==30;maxDistance==20", "Point", "[1,2]", None),
        ("near;distance==10", "Point", "[1,2]", None),
        ("within;maxDistance==10", "Point", "[1,2]", None),
        ("touches", "Point", "[1,2]", None),
        ("WITHIN", "Point", "[1,2]", None),
        ("", "Point", "[1,2]", None),
        # geometry
        ("within", "point", "[1,2]", None),
        ("within", "Circle", "[1,2]", None),
        ("within", "GeometryCollection", "[]", None),
        ("within", "", "[1,2]", None),
        # coordinates
        ("within", "Point", "", None),
        ("within", "Point", "18.06,59.33", None),
        ("within", "Point", "[18.06]", None),
        ("within", "Point", "[18.06, 59.33", None),
        ("within", "Point", '{"a": 1}', None),
        ("within", "Point", "[200, 59]", None),
        ("within", "Point", "[18, 95]", None),
        ("within", "Point", "[NaN, 59]", None),
        ("within", "Point", "[Infinity, 59]", None),
        ("within", "Point", '["18", "59"]', None),
        ("within", "Point", "[true, false]", None),
        ("within", "Point", "[[18, 59]]", None),
        ("within", "LineString", "[[18, 59]]", None),
        ("within", "LineString", "[[18, 59], [18, 59]]", None),
        ("within", "Polygon", "[[[0,0],[1,0],[1,1],[0,1]]]", None),
        ("within", "Polygon", "[[[0,0],[1,1],[1,0],[0,1],[0,0]]]", None),
        ("within", "Polygon", "[[[0,0],[0,0],[0,0],[0,0]]]", None),
        ("within", "MultiPoint", "[]", None),
        ("within", "Point", "[" * 100_000 + "]" * 100_000, None),
        ("within", "Point", "[1" + "0" * 5000 + ", 2]", None),
        # geoproperty
        ("within", "Point", "[1,2]", ""),
        ("within", "Point", "[1,2]", "loc ation"),
        ("within", "Point", "[1,2]", "a;b"),
    ],
)
def test_invalid_parameters(
    georel: str | None, geometry: str | None, coordinates: str | None, geoproperty: str | None
) -> None:
    with pytest.raises(BadRequestData):
        parse(georel, geometry, coordinates, geoproperty)


_TEXT = st.one_of(
    st.none(),
    st.text(max_size=60),
    st.sampled_from(
        ["near;maxDistance==10", "near;minDistance==0", "within", "Point", "Polygon", "[1,2]"]
    ),
    st.builds(
        lambda parts: "near;" + ";".join(parts),
        st.lists(st.text(alphabet="maxDistnce=0123456789.-;", max_size=20), max_size=3),
    ),
)
_JSONISH = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(),
        st.text(max_size=5),
    ),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(
    georel=_TEXT,
    geometry=st.one_of(_TEXT, st.sampled_from(["Point", "LineString", "Polygon", "MultiPoint"])),
    coordinates=st.one_of(_TEXT, _JSONISH.map(str), st.lists(_JSONISH, max_size=5)),
    geoproperty=_TEXT,
)
def test_arbitrary_parameters_raise_only_ngsild_errors(
    georel: str | None,
    geometry: str | None,
    coordinates: str | list[object] | None,
    geoproperty: str | None,
) -> None:
    with contextlib.suppress(NgsiLdError):
        parse(georel, geometry, coordinates, geoproperty)


@settings(max_examples=200, deadline=None)
@given(
    georel=st.sampled_from(["within", "intersects", "near;maxDistance==100", "disjoint"]),
    geometry=st.sampled_from(["Point", "MultiPoint", "LineString", "Polygon", "MultiPolygon"]),
    coordinates=_JSONISH,
)
def test_arbitrary_coordinate_structures_raise_only_bad_request_data(
    georel: str, geometry: str, coordinates: object
) -> None:
    import json

    try:
        text = json.dumps(coordinates)
    except ValueError:
        return
    try:
        gq = parse(georel, geometry, text)
    except BadRequestData:
        return
    assert gq is not None
    # Whatever was accepted can be evaluated.
    matches_geo(gq, {"type": "Point", "coordinates": [18.0, 59.0]})


# --- bounding boxes and distances --------------------------------------------------------------


def test_bbox() -> None:
    assert bbox({"type": "Point", "coordinates": SLOTTET}) == (18.0716, 18.0716, 59.3268, 59.3268)
    assert bbox({"type": "Polygon", "coordinates": GAMLA_STAN}) == (
        18.064,
        18.0775,
        59.3215,
        59.329,
    )
    assert bbox({"type": "Point", "coordinates": [1.0, 2.0, 30.0]}) == (1.0, 1.0, 2.0, 2.0)
    with pytest.raises(BadRequestData):
        bbox({"type": "MultiPoint", "coordinates": []})


def test_geodesic_distance_matches_a_known_geodesic() -> None:
    # Vincenty's own example: Flinders Peak to Buninyong, 54 972.271 m on the ellipsoid.
    flinders = (144 + 25 / 60 + 29.52440 / 3600, -(37 + 57 / 60 + 3.72030 / 3600))
    buninyong = (143 + 55 / 60 + 35.38390 / 3600, -(37 + 39 / 60 + 10.15610 / 3600))
    assert geodesic_distance(*flinders, *buninyong) == pytest.approx(54972.271, abs=0.001)
    assert geodesic_distance(18.0, 59.0, 18.0, 59.0) == 0.0
    # Antipodes make Vincenty's iteration fail; the spherical distance is returned instead.
    assert geodesic_distance(0.0, 0.0, 180.0, 0.0) == pytest.approx(math.pi * 6371008.8, rel=0.01)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((18.0686, 59.3293), (18.0716, 59.3268)),
        ((18.0686, 59.3293), (17.6339, 59.8582)),
        ((18.0, 59.0), (18.0, 60.0)),
        ((179.9, 10.0), (-179.9, 10.0)),
        ((18.0, 89.9), (-162.0, 89.9)),
    ],
)
def test_geodesic_and_haversine_agree_within_half_a_percent(
    a: tuple[float, float], b: tuple[float, float]
) -> None:
    assert geodesic_distance(*a, *b) == pytest.approx(haversine_distance(*a, *b), rel=0.005)


def _densified_haversine(point: tuple[float, float], line: list[list[float]]) -> float:
    """The least haversine distance to many points along each edge's great circle."""

    def vector(lon: float, lat: float) -> tuple[float, float, float]:
        lam, phi = math.radians(lon), math.radians(lat)
        return (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))

    best = math.inf
    for start, end in itertools.pairwise(line):
        p, q = vector(*start), vector(*end)
        omega = math.acos(min(1.0, sum(a * b for a, b in zip(p, q, strict=True))))
        for i in range(2001):
            t = i / 2000
            wp, wq = math.sin((1 - t) * omega), math.sin(t * omega)
            x, y, z = ((wp * a + wq * b) / math.sin(omega) for a, b in zip(p, q, strict=True))
            lon, lat = math.degrees(math.atan2(y, x)), math.degrees(math.atan2(z, math.hypot(x, y)))
            best = min(best, haversine_distance(*point, lon, lat))
    return best


@pytest.mark.parametrize(
    "line",
    [
        [[18.0, 59.30], [18.1, 59.30]],
        [[18.06, 59.3370], [18.066, 59.33], [18.2, 59.31]],
        [[17.0, 59.0], [19.0, 60.5]],
    ],
)
def test_distance_to_a_line(line: list[list[float]]) -> None:
    import shapely

    point = (18.05, 59.345)
    expected = _densified_haversine(point, line)
    got = geo_distance(shapely.LineString(line), shapely.Point(point))
    assert got == pytest.approx(expected, rel=0.005)
    # Symmetric in its arguments.
    assert geo_distance(shapely.Point(point), shapely.LineString(line)) == pytest.approx(
        got, rel=1e-3
    )


def test_distance_is_zero_inside() -> None:
    import shapely

    assert geo_distance(shapely.Point(SLOTTET), shapely.Polygon(GAMLA_STAN[0])) == 0.0


@pytest.mark.parametrize("distance", [0.0, 10.0, 2000.0, 50_000.0, 1_000_000.0])
@pytest.mark.parametrize("latitude", [-70.0, 0.0, 59.33, 85.0])
def test_near_box_holds_every_point_at_that_distance(distance: float, latitude: float) -> None:
    lon = 18.0
    minx, maxx, miny, maxy = near_box((lon, lon, latitude, latitude), distance)
    for bearing in range(0, 360, 5):
        # A point at `distance` along this bearing, on the sphere (good to 0.5 %).
        delta = distance / 6371008.8 * 0.995
        phi1, lam1, theta = math.radians(latitude), math.radians(lon), math.radians(bearing)
        phi2 = math.asin(
            math.sin(phi1) * math.cos(delta) + math.cos(phi1) * math.sin(delta) * math.cos(theta)
        )
        lam2 = lam1 + math.atan2(
            math.sin(theta) * math.sin(delta) * math.cos(phi1),
            math.cos(delta) - math.sin(phi1) * math.sin(phi2),
        )
        x, y = (math.degrees(lam2) + 540.0) % 360.0 - 180.0, math.degrees(phi2)
        assert geodesic_distance(lon, latitude, x, y) <= distance
        assert minx <= x <= maxx
        assert miny <= y <= maxy


# --- evaluation --------------------------------------------------------------------------------


def test_matches_geo() -> None:
    slottet = {"type": "Point", "coordinates": SLOTTET}
    stadshuset = {"type": "Point", "coordinates": [18.0543, 59.3275]}
    gamla_stan = {"type": "Polygon", "coordinates": GAMLA_STAN}

    def check(georel: str, geometry: str, coordinates: object, value: dict[str, Any]) -> bool:
        gq = parse_geoquery(georel, geometry, str(coordinates), None, core_context())
        assert gq is not None
        return matches_geo(gq, value)

    assert check("within", "Polygon", GAMLA_STAN, slottet)
    assert not check("within", "Polygon", GAMLA_STAN, stadshuset)
    assert check("contains", "Point", SLOTTET, gamla_stan)
    assert not check("contains", "Point", [18.0543, 59.3275], gamla_stan)
    assert check("intersects", "Point", SLOTTET, gamla_stan)
    assert check("disjoint", "Point", [18.0543, 59.3275], gamla_stan)
    assert check("equals", "Point", SLOTTET, slottet)
    assert check("near;maxDistance==1000", "Point", [18.0543, 59.3275], slottet)
    assert not check("near;maxDistance==900", "Point", [18.0543, 59.3275], slottet)
    assert check("near;minDistance==900", "Point", [18.0543, 59.3275], slottet)
    assert check("near;maxDistance==600", "Point", [18.0543, 59.3275], gamla_stan)
    assert not check("near;maxDistance==500", "Point", [18.0543, 59.3275], gamla_stan)
    # An empty value never matches.
    assert not check("disjoint", "Point", SLOTTET, {"type": "MultiPoint", "coordinates": []})
