"""The temporal parsers (property-based), history retention, restarts, and migration 6 keeping
the history written before it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stadsnav.api.app import create_app
from stadsnav.ngsild.errors import BadRequestData
from stadsnav.ngsild.names import format_datetime
from stadsnav.ngsild.temporal import (
    Duration,
    HistoryScan,
    TimeQuery,
    bucket,
    parse_duration,
    parse_time_query,
)
from stadsnav.settings import Settings
from stadsnav.store.base import HistoryRow
from stadsnav.store.opening import open_store
from stadsnav.temporal import Temporal, retention_by_type

VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
TEMPERATURE = VOCAB + "temperature"
NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)


@given(
    st.integers(0, 99),
    st.integers(0, 30),
    st.integers(0, 9),
    st.integers(0, 400),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
)
def test_durations_parse_to_months_and_seconds(
    years: int, months: int, weeks: int, days: int, hours: int, minutes: int, seconds: int
) -> None:
    date = f"{years}Y{months}M{weeks}W{days}D"
    text = f"P{date}T{hours}H{minutes}M{seconds}S"
    parsed = parse_duration(text)
    assert parsed.months == years * 12 + months
    assert parsed.seconds == ((weeks * 7 + days) * 24 + hours) * 3600 + minutes * 60 + seconds
    assert parse_duration(f"P{days}D") == Duration(0, days * 86400)


@given(st.text(max_size=20))
def test_anything_else_is_not_a_duration(text: str) -> None:
    import re

    valid = re.fullmatch(
        r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?!$)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?", text
    )
    if valid or text == "0":
        parse_duration(text)
    else:
        with pytest.raises(BadRequestData):
            parse_duration(text)


moments = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(moments, moments, st.sampled_from(["before", "after", "between", "sometime", None]))
def test_timerel_parses_and_matches_as_clause_4_11_says(
    first: datetime, second: datetime, timerel: str | None
) -> None:
    start, end = format_datetime(first), format_datetime(second)
    if timerel not in ("before", "after", "between", None) or (
        timerel == "between" and end <= start
    ):
        with pytest.raises(BadRequestData):
            parse_time_query(timerel, start, end, None, required=True)
        return
    if timerel is None:
        with pytest.raises(BadRequestData):
            parse_time_query(None, None, None, None, required=True)
        assert parse_time_query(None, None, None, None, required=False).matches(start)
        return
    query = parse_time_query(
        timerel, start, end if timerel == "between" else None, None, required=True
    )
    probe = format_datetime(first + timedelta(microseconds=1))
    assert query.matches(probe) == ((timerel == "after") or (timerel == "between" and probe < end))
    assert query.matches(start) == (timerel != "before")


@given(moments, st.integers(0, 48), st.integers(0, 3))
def test_a_moment_falls_in_the_period_that_holds_it(
    moment: datetime, hours: int, months: int
) -> None:
    if hours == 0 and months == 0:
        return
    period = Duration(months, hours * 3600)
    origin = "1970-01-01T00:00:00.000000Z"
    start, end = bucket(format_datetime(moment), origin, period)
    assert datetime.fromisoformat(start) <= moment < datetime.fromisoformat(end)
    # Periods tile time: the next one starts where this one ends.
    assert bucket(end, origin, period)[0] == end


def rows(entity_id: str, kind: str, days_ago: list[int]) -> list[HistoryRow]:
    out = []
    for n, days in enumerate(days_ago):
        at = format_datetime(NOW - timedelta(days=days))
        instance = {
            "type": "Property",
            "value": n,
            "observedAt": at,
            "createdAt": at,
            "modifiedAt": at,
        }
        out.append(HistoryRow(entity_id, TEMPERATURE, None, at, instance, VOCAB + kind))
    return out


async def test_retention_deletes_history_past_its_type_s_duration(database_url: str) -> None:
    store: Any = open_store(Settings(database=database_url))
    await store.open()
    try:
        await store.add_history("", rows("urn:a:bin", "Bin", [1000, 400, 10, 1]))
        await store.add_history("", rows("urn:a:air", "Air", [1000, 400, 10, 1]))
        await store.add_history("", rows("urn:a:x", "Other", [1000, 400, 10, 1]))
        temporal = Temporal(store, 1000)
        retention = retention_by_type({"Bin": "P30D", "Air": "P2Y", "*": "P1Y"})
        deleted = await temporal.expire(retention, NOW, chunk=1)
        assert deleted == 2 + 1 + 2
        left = {
            e: [r.instance["value"] for r in await store.history("", e)]
            for e in ("urn:a:bin", "urn:a:air", "urn:a:x")
        }
        assert left == {"urn:a:bin": [2, 3], "urn:a:air": [1, 2, 3], "urn:a:x": [2, 3]}
    finally:
        await store.close()


def test_a_bad_retention_setting_is_refused() -> None:
    with pytest.raises(BadRequestData):
        retention_by_type({"Bin": "two years"})
    with pytest.raises(BadRequestData):
        retention_by_type({"Bin": "P0D"})


async def test_the_server_sweeps_expired_history_in_the_background(settings: Settings) -> None:
    configured = settings.model_copy(
        update={"history_retention": {"Sensor": "P1D"}, "history_retention_interval": 0.1}
    )
    app = create_app(configured)
    old = format_datetime(datetime.now(UTC) - timedelta(days=3))
    recent = format_datetime(datetime.now(UTC) - timedelta(hours=1))
    entity = {
        "id": "urn:a:s",
        "type": "Sensor",
        "temperature": [
            {"type": "Property", "value": 1, "observedAt": old},
            {"type": "Property", "value": 2, "observedAt": recent},
        ],
    }
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (
                await client.post("/ngsi-ld/v1/temporal/entities", json=entity)
            ).status_code == 201
            for _ in range(50):
                body = (await client.get("/ngsi-ld/v1/temporal/entities/urn:a:s")).json()
                if len(body["temperature"]) == 1:
                    break
                await asyncio.sleep(0.1)
            assert [i["value"] for i in body["temperature"]] == [2]


async def test_history_survives_a_restart(database_url: str) -> None:
    settings = Settings(database=database_url)
    store: Any = open_store(settings)
    await store.open()
    await store.add_history("", rows("urn:a:1", "Bin", [3, 2, 1]))
    await store.close()
    store = open_store(settings)
    await store.open()
    try:
        scan = HistoryScan(time=TimeQuery("after", format_datetime(NOW - timedelta(days=2))))
        found = await store.history_instances("", scan, ["urn:a:1"], 10, newest=False)
        assert [r.instance["value"] for r in found] == [1, 2]
        assert len({r.instance_id for r in found}) == 2
        assert (await store.history_entities("", HistoryScan(), 10, 0, True)) == (
            [("urn:a:1", VOCAB + "Bin")],
            1,
        )
    finally:
        await store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_migration_6_keeps_the_history_written_before_it(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stadsnav.store.migrations import migration_files

    if backend == "sqlite":
        from stadsnav.store import sqlite as module

        url = f"sqlite:///{tmp_path}/old.db"
    else:
        from stadsnav.store import postgres as module

        url = request.getfixturevalue("pg_database") + "_m6"
        request.addfinalizer(lambda: _drop(url))
    old = [m for m in migration_files(backend) if m[0] < 6]
    monkeypatch.setattr(module, "migration_files", lambda _backend: old)
    store: Any = open_store(Settings(database=url))
    await store.open()
    # What ingestion wrote before migration 6 (the old insert, by hand).
    instance = {"type": "Property", "value": 0.5, "observedAt": "2025-11-23T08:00:00.000000Z"}
    sql = (
        "INSERT INTO history (tenant, entity_id, attr, dataset_id, observed_at, instance) "
        "VALUES ('', 'urn:a:1', '{a}', '', '2025-11-23T08:00:00.000000Z', '{i}')"
    ).format(a=TEMPERATURE, i=__import__("json").dumps(instance))
    await store.insert("", _entity())
    if backend == "sqlite":
        await store._write(lambda conn: conn.execute(sql))
    else:
        async with store.pool.connection() as conn:
            await conn.execute(sql)
    await store.close()
    monkeypatch.undo()
    store = open_store(Settings(database=url))
    await store.open()
    try:
        [row] = await store.history("", "urn:a:1")
        assert (row.observed_at, row.instance) == ("2025-11-23T08:00:00.000000Z", instance)
        scan = HistoryScan(types=frozenset({VOCAB + "Bin"}))
        assert (await store.history_entities("", scan, 10, 0, False))[0] == [
            ("urn:a:1", VOCAB + "Bin")
        ]
        [found] = await store.history_instances("", HistoryScan(), ["urn:a:1"], 5, newest=True)
        assert found.instance_id.startswith("urn:ngsi-ld:Instance:")
    finally:
        await store.close()


def _entity() -> Any:
    from stadsnav.ngsild.entity import Entity

    return Entity(
        "urn:a:1",
        [VOCAB + "Bin"],
        {},
        None,
        "2025-01-01T00:00:00.000000Z",
        "2025-01-01T00:00:00.000000Z",
    )


def _drop(url: str) -> None:
    import psycopg

    from tests.conftest import PG_ADMIN

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
