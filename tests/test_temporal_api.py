"""The temporal API (clauses 5.6.11 – 5.6.16, 5.7.3, 5.7.4) on both backends, with answers
checked against values computed here independently (statistics, plain datetime arithmetic)."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from stadsnav.api.app import create_app
from stadsnav.settings import Settings
from tests.helpers import assert_problem

T = "/ngsi-ld/v1/temporal/entities"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
SENSOR = "urn:ngsi-ld:Sensor:s1"
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def short(moment: datetime) -> str:
    text = iso(moment)
    return text[:-8] + "Z" if text.endswith(".000000Z") else text


def readings(seed: int, count: int) -> list[tuple[datetime, float]]:
    """Irregular readings over about two days, some sharing a value."""
    rng = random.Random(seed)
    moments = sorted({T0 + timedelta(seconds=rng.randrange(0, 2 * 86400)) for _ in range(count)})
    return [(m, round(rng.choice([rng.uniform(-5, 30), 7.0]), 3)) for m in moments]


def temporal_entity(entity_id: str, values: list[tuple[datetime, Any]], **extra: Any) -> Any:
    return {
        "id": entity_id,
        "type": "Sensor",
        "temperature": [{"type": "Property", "value": v, "observedAt": iso(m)} for m, v in values],
        **extra,
    }


@pytest.fixture
async def small_pages(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose server returns at most 5 instances per attribute."""
    app = create_app(settings.model_copy(update={"temporal_max_instances": 5}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://stadsnav.test") as http:
            yield http


def expected_aggregates(
    values: list[tuple[datetime, float]], origin: datetime, step: timedelta
) -> dict[str, list[list[Any]]]:
    buckets: dict[datetime, list[float]] = {}
    for moment, value in values:
        start = origin + step * math.floor((moment - origin) / step)
        buckets.setdefault(start, []).append(value)
    out: dict[str, list[list[Any]]] = {m: [] for m in METHODS}
    for start in sorted(buckets):
        group = buckets[start]
        span = [short(start), short(start + step)]
        out["totalCount"].append([len(group), *span])
        out["distinctCount"].append([len(set(group)), *span])
        out["sum"].append([math.fsum(group), *span])
        out["avg"].append([statistics.fmean(group), *span])
        out["min"].append([min(group), *span])
        out["max"].append([max(group), *span])
        out["stddev"].append([statistics.stdev(group) if len(group) > 1 else 0.0, *span])
        out["sumsq"].append([math.fsum(v * v for v in group), *span])
    return out


METHODS = ["totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq"]


def assert_close(got: list[list[Any]], want: list[list[Any]]) -> None:
    assert [g[1:] for g in got] == [w[1:] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g[0] == pytest.approx(w[0], rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("period", ["PT6H", "PT1H", "P1D"])
async def test_aggregated_values_match_statistics_computed_here(
    client: httpx.AsyncClient, period: str
) -> None:
    values = readings(1, 80)
    assert (await client.post(T, json=temporal_entity(SENSOR, values))).status_code == 201
    start, end = T0 + timedelta(hours=3), T0 + timedelta(hours=40)
    response = await client.get(
        T,
        params={
            "type": "Sensor",
            "timerel": "between",
            "timeAt": iso(start),
            "endTimeAt": iso(end),
            "options": "aggregatedValues",
            "aggrMethods": ",".join(METHODS),
            "aggrPeriodDuration": period,
        },
    )
    assert response.status_code == 200, response.text
    [body] = response.json()
    step = {"PT6H": timedelta(hours=6), "PT1H": timedelta(hours=1), "P1D": timedelta(days=1)}
    inside = [(m, v) for m, v in values if start <= m < end]
    want = expected_aggregates(inside, start, step[period])
    got = body["temperature"]
    assert got["type"] == "Property"
    for method in METHODS:
        assert_close(got[method], want[method])


async def test_aggregation_over_calendar_months_and_the_whole_range(
    client: httpx.AsyncClient,
) -> None:
    # One reading on the 15th of each month of 2025, the value being the month's number.
    values = [(datetime(2025, m, 15, 12, tzinfo=UTC), float(m)) for m in range(1, 13)]
    await client.post(T, json=temporal_entity(SENSOR, values))
    query = {"timerel": "before", "timeAt": "2026-01-01T00:00:00Z", "options": "aggregatedValues"}
    quarterly = await client.get(
        f"{T}/{SENSOR}", params={**query, "aggrMethods": "sum,max", "aggrPeriodDuration": "P3M"}
    )
    assert quarterly.status_code == 200, quarterly.text
    sums = quarterly.json()["temperature"]["sum"]
    assert sums == [
        [float(sum(range(q * 3 + 1, q * 3 + 4))), f"2025-{q * 3 + 1:02d}-01T00:00:00Z", nxt]
        for q, nxt in enumerate(
            [
                "2025-04-01T00:00:00Z",
                "2025-07-01T00:00:00Z",
                "2025-10-01T00:00:00Z",
                "2026-01-01T00:00:00Z",
            ]
        )
    ]
    whole = await client.get(f"{T}/{SENSOR}", params={**query, "aggrMethods": "avg,totalCount"})
    body = whole.json()["temperature"]
    assert body["avg"] == [[6.5, "2025-01-15T12:00:00Z", "2026-01-01T00:00:00Z"]]
    assert body["totalCount"] == [[12, "2025-01-15T12:00:00Z", "2026-01-01T00:00:00Z"]]


async def test_min_and_max_of_text_values_and_counts_of_any_value(
    client: httpx.AsyncClient,
) -> None:
    states = ["ok", "full", "ok", "broken", "ok"]
    entity = {
        "id": SENSOR,
        "type": "Sensor",
        "status": [
            {"type": "Property", "value": s, "observedAt": iso(T0 + timedelta(minutes=i))}
            for i, s in enumerate(states)
        ],
    }
    await client.post(T, json=entity)
    response = await client.get(
        f"{T}/{SENSOR}",
        params={"options": "aggregatedValues", "aggrMethods": "min,max,distinctCount,avg"},
    )
    body = response.json()["status"]
    span = [short(T0), short(T0 + timedelta(minutes=4))]
    assert body["min"] == [[min(states), *span]]
    assert body["max"] == [[max(states), *span]]
    assert body["distinctCount"] == [[len(set(states)), *span]]
    assert body["avg"] == []


async def test_temporal_representation_timerel_lastn_and_temporal_values(
    client: httpx.AsyncClient,
) -> None:
    values = readings(2, 30)
    await client.post(T, json=temporal_entity(SENSOR, values))
    after = values[10][0]
    response = await client.get(f"{T}/{SENSOR}", params={"timerel": "after", "timeAt": iso(after)})
    assert response.status_code == 200
    shown = response.json()["temperature"]
    assert [i["value"] for i in shown] == [v for _, v in values[10:]]
    assert all(i["instanceId"].startswith("urn:ngsi-ld:") for i in shown)
    before = await client.get(
        f"{T}/{SENSOR}", params={"timerel": "before", "timeAt": iso(after), "lastN": "3"}
    )
    assert [i["value"] for i in before.json()["temperature"]] == [v for _, v in values[7:10]]
    simple = await client.get(f"{T}/{SENSOR}", params={"options": "temporalValues", "lastN": "2"})
    assert simple.json()["temperature"] == {
        "type": "Property",
        "values": [[v, short(m)] for m, v in values[-2:]],
    }


async def test_query_filters_by_type_id_q_and_pages_entities(client: httpx.AsyncClient) -> None:
    for n in range(5):
        entity = temporal_entity(f"urn:ngsi-ld:Sensor:{n}", readings(n, 3))
        await client.post(T, json=entity)
    other = {**temporal_entity("urn:ngsi-ld:Other:1", readings(9, 3)), "type": "Other"}
    await client.post(T, json=other)
    # The current state q filters on: only Sensor:3 is hot now.
    await client.post(
        "/ngsi-ld/v1/entities", json={"id": "urn:ngsi-ld:Sensor:3", "type": "Sensor", "hot": 1}
    )
    base = {"timerel": "after", "timeAt": "2000-01-01T00:00:00Z"}
    page = await client.get(T, params={**base, "type": "Sensor", "limit": "2", "count": "true"})
    assert [e["id"] for e in page.json()] == ["urn:ngsi-ld:Sensor:0", "urn:ngsi-ld:Sensor:1"]
    assert page.headers["NGSILD-Results-Count"] == "5"
    assert 'rel="next"' in page.headers["Link"]
    second = await client.get(T, params={**base, "type": "Sensor", "limit": "2", "offset": "4"})
    assert [e["id"] for e in second.json()] == ["urn:ngsi-ld:Sensor:4"]
    hot = await client.get(T, params={**base, "q": "hot==1"})
    assert [e["id"] for e in hot.json()] == ["urn:ngsi-ld:Sensor:3"]
    ids = await client.get(T, params={**base, "id": "urn:ngsi-ld:Other:1,urn:ngsi-ld:Sensor:2"})
    assert [e["id"] for e in ids.json()] == ["urn:ngsi-ld:Other:1", "urn:ngsi-ld:Sensor:2"]
    posted = await client.post(
        "/ngsi-ld/v1/temporal/entityOperations/query",
        json={"type": "Query", "entities": [{"type": "Other"}], "temporalQ": base},
    )
    assert [e["id"] for e in posted.json()] == ["urn:ngsi-ld:Other:1"]


async def test_long_histories_come_in_pages_with_a_content_range(
    small_pages: httpx.AsyncClient,
) -> None:
    client = small_pages
    values = [(T0 + timedelta(minutes=i), float(i)) for i in range(12)]
    await client.post(T, json=temporal_entity(SENSOR, values))
    seen: list[float] = []
    start, end = iso(T0), iso(T0 + timedelta(days=1))
    while True:
        response = await client.get(
            f"{T}/{SENSOR}", params={"timerel": "between", "timeAt": start, "endTimeAt": end}
        )
        page = [i["value"] for i in response.json().get("temperature", [])]
        seen += page
        if response.status_code == 200:
            break
        assert response.status_code == 206
        unit, _, rest = response.headers["Content-Range"].partition(" ")
        assert unit == "date-time"
        assert rest.endswith("/*")
        first, following = rest[:-2].split("Z-")
        assert first + "Z" == short(datetime.fromisoformat(start))
        start = following  # the next page starts where this one ends
        assert len(page) == 5
    assert seen == [v for _, v in values]
    newest = await client.get(f"{T}/{SENSOR}", params={"lastN": "8"})
    assert newest.status_code == 206
    assert [i["value"] for i in newest.json()["temperature"]] == [v for _, v in values[-5:]]
    assert newest.headers["Content-Range"].endswith("/8")


async def test_every_temporal_write_operation(client: httpx.AsyncClient) -> None:
    first = [(T0, 1.0), (T0 + timedelta(hours=1), 2.0)]
    created = await client.post(T, json=temporal_entity(SENSOR, first))
    assert created.status_code == 201
    assert created.headers["Location"] == f"{T}/{SENSOR}"
    again = await client.post(T, json=temporal_entity(SENSOR, [(T0 + timedelta(hours=2), 3.0)]))
    assert again.status_code == 204
    added = await client.post(
        f"{T}/{SENSOR}/attrs",
        json={"humidity": {"type": "Property", "value": 40, "observedAt": iso(T0)}},
    )
    assert added.status_code == 204
    body = (await client.get(f"{T}/{SENSOR}")).json()
    assert [i["value"] for i in body["temperature"]] == [1.0, 2.0, 3.0]
    assert body["humidity"][0]["value"] == 40
    instance = body["temperature"][1]["instanceId"]
    patched = await client.patch(
        f"{T}/{SENSOR}/attrs/temperature/{instance}",
        json={"temperature": {"type": "Property", "value": 2.5}},
    )
    assert patched.status_code == 204, patched.text
    body = (await client.get(f"{T}/{SENSOR}")).json()
    assert [i["value"] for i in body["temperature"]] == [1.0, 2.5, 3.0]
    assert body["temperature"][1]["instanceId"] == instance
    # The instance alone, without the attribute around it, is taken too.
    bare = await client.patch(
        f"{T}/{SENSOR}/attrs/temperature/{instance}", json={"type": "Property", "value": 2.6}
    )
    assert bare.status_code == 204, bare.text
    body = (await client.get(f"{T}/{SENSOR}")).json()
    assert [i["value"] for i in body["temperature"]] == [1.0, 2.6, 3.0]
    removed = await client.delete(f"{T}/{SENSOR}/attrs/temperature/{instance}")
    assert removed.status_code == 204
    gone = await client.delete(f"{T}/{SENSOR}/attrs/temperature/{instance}")
    assert_problem(gone, 404, "ResourceNotFound")
    body = (await client.get(f"{T}/{SENSOR}")).json()
    assert [i["value"] for i in body["temperature"]] == [1.0, 3.0]
    assert (await client.delete(f"{T}/{SENSOR}/attrs/humidity")).status_code == 204
    assert "humidity" not in (await client.get(f"{T}/{SENSOR}")).json()
    assert_problem(await client.delete(f"{T}/{SENSOR}/attrs/humidity"), 404, "ResourceNotFound")
    assert (await client.delete(f"{T}/{SENSOR}")).status_code == 204
    assert_problem(await client.get(f"{T}/{SENSOR}"), 404, "ResourceNotFound")
    missing = await client.post(f"{T}/{SENSOR}/attrs", json={"humidity": {"value": 1}})
    assert_problem(missing, 404, "ResourceNotFound")


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({"type": "Sensor"}, "BadRequestData"),  # no timerel
        ({"type": "Sensor", "timerel": "whenever", "timeAt": "2026-01-01T00:00:00Z"}, None),
        ({"type": "Sensor", "timerel": "after"}, None),  # no timeAt
        ({"type": "Sensor", "timerel": "between", "timeAt": "2026-01-01T00:00:00Z"}, None),
        ({"type": "Sensor", "timerel": "after", "timeAt": "yesterday"}, None),
        (
            {
                "type": "Sensor",
                "timerel": "after",
                "timeAt": "2026-01-01T00:00:00Z",
                "options": "aggregatedValues",
                "aggrMethods": "avg",
                "aggrPeriodDuration": "1 hour",
            },
            None,
        ),
        (
            {
                "type": "Sensor",
                "timerel": "after",
                "timeAt": "2026-01-01T00:00:00Z",
                "options": "aggregatedValues",
                "aggrMethods": "median",
            },
            None,
        ),
        (
            {"type": "Sensor", "timerel": "after", "timeAt": "2026-01-01T00:00:00Z", "lastN": "0"},
            None,
        ),
        (
            {"type": "Sensor", "timerel": "after", "timeAt": "2026-01-01T00:00:00Z", "x": "1"},
            "InvalidRequest",
        ),
        # A query selects by something: type, attrs, id, q, geo or scope (clause 5.7.3).
        ({"timerel": "after", "timeAt": "2026-01-01T00:00:00Z"}, None),
    ],
)
async def test_bad_temporal_queries_are_problems(
    client: httpx.AsyncClient, query: dict[str, str], problem: str | None
) -> None:
    await client.post(T, json=temporal_entity(SENSOR, readings(3, 3)))
    assert_problem(await client.get(T, params=query), 400, problem or "BadRequestData")


async def test_history_written_by_device_data_and_api_writes_is_queryable(
    client: httpx.AsyncClient,
) -> None:
    """Entities created and updated through the core API show up in the temporal API."""
    entity = {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": {"type": "Property", "value": 1, "observedAt": iso(T0)},
    }
    await client.post("/ngsi-ld/v1/entities", json=entity)
    later = T0 + timedelta(hours=1)
    await client.patch(
        f"/ngsi-ld/v1/entities/{SENSOR}/attrs",
        json={"temperature": {"type": "Property", "value": 2, "observedAt": iso(later)}},
    )
    body = (await client.get(f"{T}/{SENSOR}", params={"options": "temporalValues"})).json()
    assert body["temperature"]["values"] == [[1, short(T0)], [2, short(T0 + timedelta(hours=1))]]


async def test_aggregated_periods_come_in_pages_with_a_content_range(
    small_pages: httpx.AsyncClient,
) -> None:
    """At most temporal_max_instances (5) periods per attribute an answer; the rest follow
    from where the Content-Range ends, the periods aligned as in one answer."""
    client = small_pages
    first = T0 + timedelta(days=3)  # long after timeAt: no empty pages before the data
    values = {
        sensor: [(first + timedelta(minutes=20 * i + n), float(i * (n + 1))) for i in range(37)]
        for n, sensor in enumerate([SENSOR, "urn:ngsi-ld:Sensor:s2"])
    }
    for sensor, readings_ in values.items():
        await client.post(T, json=temporal_entity(sensor, readings_))
    start, end = T0, T0 + timedelta(days=10)
    query = {
        "type": "Sensor",
        "timerel": "between",
        "endTimeAt": iso(end),
        "options": "aggregatedValues",
        "aggrMethods": "avg,totalCount,max",
        "aggrPeriodDuration": "PT1H",
    }
    got: dict[str, dict[str, list[list[Any]]]] = {
        s: {"avg": [], "totalCount": [], "max": []} for s in values
    }
    at, pages = start, 0
    while True:
        response = await client.get(T, params={**query, "timeAt": iso(at)})
        pages += 1
        for entity in response.json():
            for method, triples in entity["temperature"].items():
                if method != "type":
                    got[entity["id"]][method] += triples
                    assert len(triples) <= 5
        if response.status_code == 200:
            assert "Content-Range" not in response.headers
            break
        assert response.status_code == 206, response.text
        unit, _, rest = response.headers["Content-Range"].partition(" ")
        assert unit == "date-time"
        assert rest.endswith("/*")
        begin, following = rest[:-2].split("Z-")
        assert begin + "Z" == short(at)
        at = datetime.fromisoformat(following)
    # 37 readings 20 minutes apart: 13 hours, so 3 pages of at most 5 hours.
    assert pages == 3
    for sensor, readings_ in values.items():
        want = expected_aggregates(readings_, start, timedelta(hours=1))
        for method in ("avg", "totalCount", "max"):
            assert_close(got[sensor][method], want[method])


async def test_aggregated_pages_of_an_open_range_and_calendar_months(
    small_pages: httpx.AsyncClient,
) -> None:
    client = small_pages
    values = [
        (datetime(2024, m, 10, tzinfo=UTC) + timedelta(days=31 * k), 1.0)
        for k in range(8)
        for m in (1,)
    ]
    await client.post(T, json=temporal_entity(SENSOR, values))
    query = {
        "options": "aggregatedValues",
        "aggrMethods": "totalCount",
        "aggrPeriodDuration": "P1M",
    }
    first = await client.get(f"{T}/{SENSOR}", params=query)
    assert first.status_code == 206
    assert first.headers["Content-Range"] == "date-time 2024-01-01T00:00:00Z-2024-06-01T00:00:00Z/*"
    counts = first.json()["temperature"]["totalCount"]
    assert [c[1] for c in counts] == [f"2024-{m:02d}-01T00:00:00Z" for m in range(1, 6)]
    rest = await client.get(
        f"{T}/{SENSOR}", params={**query, "timerel": "after", "timeAt": "2024-06-01T00:00:00Z"}
    )
    assert rest.status_code == 200
    counts += rest.json()["temperature"]["totalCount"]
    assert sum(c[0] for c in counts) == len(values)
    assert counts[-1][1:] == ["2024-08-01T00:00:00Z", "2024-09-01T00:00:00Z"]


async def test_last_n_of_every_attribute_and_dataset(client: httpx.AsyncClient) -> None:
    moments = [T0 + timedelta(minutes=i) for i in range(10)]
    entity = {
        "id": SENSOR,
        "type": "Sensor",
        "temperature": [
            {"type": "Property", "value": i, "observedAt": iso(m)} for i, m in enumerate(moments)
        ]
        + [
            {"type": "Property", "value": 100 + i, "observedAt": iso(m), "datasetId": "urn:d:b"}
            for i, m in enumerate(moments[:4])
        ],
        "humidity": [
            {"type": "Property", "value": 50 + i, "observedAt": iso(moments[i])} for i in range(3)
        ],
    }
    await client.post(T, json=entity)
    body = (await client.get(f"{T}/{SENSOR}", params={"lastN": "2"})).json()
    assert [i["value"] for i in body["humidity"]] == [51, 52]
    # lastN counts the instances of an attribute, every datasetId together: the newest two.
    assert [i["value"] for i in body["temperature"]] == [8, 9]
    old = await client.get(
        f"{T}/{SENSOR}",
        params={
            "lastN": "3",
            "timerel": "before",
            "timeAt": iso(moments[4]),
            "attrs": "temperature",
        },
    )
    shown = old.json()["temperature"]
    assert sorted(i["value"] for i in shown) == [3, 102, 103]


async def test_retrieving_attributes_an_entity_never_had_is_not_found(
    client: httpx.AsyncClient,
) -> None:
    await client.post(T, json=temporal_entity(SENSOR, readings(3, 3)))
    found = await client.get(f"{T}/{SENSOR}", params={"attrs": "temperature"})
    assert found.status_code == 200, found.text
    assert_problem(
        await client.get(f"{T}/{SENSOR}", params={"attrs": "noSuchAttribute"}),
        404,
        "ResourceNotFound",
    )


async def test_pick_and_omit_shape_temporal_answers(client: httpx.AsyncClient) -> None:
    await client.post(T, json=temporal_entity(SENSOR, readings(3, 3)))
    picked = (await client.get(f"{T}/{SENSOR}", params={"pick": "id,temperature"})).json()
    assert set(picked) == {"id", "temperature"}
    omitted = (await client.get(f"{T}/{SENSOR}", params={"omit": "temperature"})).json()
    assert "temperature" not in omitted
    assert omitted["id"] == SENSOR
    listed = await client.get(
        T,
        params={
            "type": "Sensor",
            "timerel": "after",
            "timeAt": "2000-01-01T00:00:00Z",
            "pick": "temperature",
        },
    )
    assert [set(e) for e in listed.json()] == [{"temperature"}]
    assert_problem(
        await client.get(f"{T}/{SENSOR}", params={"pick": "noSuchAttribute"}),
        404,
        "ResourceNotFound",
    )
    assert_problem(
        await client.get(f"{T}/{SENSOR}", params={"pick": "id", "omit": "type"}),
        400,
        "BadRequestData",
    )
    assert_problem(
        await client.get(f"{T}/{SENSOR}", params={"pick": "id", "attrs": "temperature"}),
        400,
        "BadRequestData",
    )
