"""q compiled to SQL (store/qsql.py): SQLite and PostgreSQL select what matches_q says."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.errors import NgsiLdError
from stadsnav.ngsild.qlang import QExpr, matches_q, parse_q
from stadsnav.store.qsql import compile_q, register_sqlite_functions
from tests.test_qlang import Built, expressions

CTX = Context.build()
PG_URL = os.environ.get("STADSNAV_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
T = "2024-01-01T00:00:00.000000Z"


def A(name: str) -> str:
    return CTX.expand(name)


def inst(kind: str, key: str, value: Any, **extra: Any) -> dict[str, Any]:
    members = {A(k[4:]): v for k, v in extra.items() if k.startswith("sub_")}
    plain = {k: v for k, v in extra.items() if not k.startswith("sub_")}
    return {"type": kind, key: value, "createdAt": T, "modifiedAt": T, **plain, **members}


def prop(value: Any, **extra: Any) -> dict[str, Any]:
    return inst("Property", "value", value, **extra)


ENTITIES: dict[str, dict[str, list[dict[str, Any]]]] = {
    "urn:e:1": {
        A("temperature"): [
            prop(
                21.5,
                observedAt="2024-01-01T10:00:00.000000Z",
                unitCode="CEL",
                sub_accuracy=prop(0.5),
            )
        ],
        A("name"): [prop("Alpha")],
        A("status"): [prop("open")],
        A("tags"): [prop(["red", "green"])],
        A("controlledBy"): [inst("Relationship", "object", "urn:ngsi-ld:Device:1")],
        A("address"): [prop({"city": "Gent", "street": {"name": "Main"}})],
        A("flag"): [prop(True)],
        A("category"): [inst("VocabProperty", "vocab", A("commercial"))],
    },
    "urn:e:2": {
        A("temperature"): [
            prop(30, observedAt="2024-02-01T10:00:00.000000Z"),
            prop(10, datasetId="urn:ds:1"),
        ],
        A("name"): [prop("beta")],
        A("status"): [prop("closed")],
        A("tags"): [prop(["blue"])],
        A("controlledBy"): [inst("Relationship", "object", "urn:ngsi-ld:Device:2")],
        A("flag"): [prop(False)],
        A("label"): [
            inst("LanguageProperty", "languageMap", {"en": "Bridge", "nl": ["Brug", "Brugge"]})
        ],
        A("address"): [prop({"city": "Antwerpen"})],
        A("category"): [
            inst("VocabProperty", "vocab", [A("residential"), "https://example.org/vocab/park"])
        ],
    },
    "urn:e:3": {
        A("temperature"): [prop("hot")],
        A("name"): [prop("Gamma")],
        A("count"): [prop(5)],
        A("items"): [inst("ListProperty", "valueList", [1, 2, 3])],
        A("friends"): [inst("ListRelationship", "objectList", ["urn:a", "urn:b"])],
        A("config"): [inst("JsonProperty", "json", {"mode": "auto", "level": 3})],
        A("location"): [
            inst("GeoProperty", "value", {"type": "Point", "coordinates": [4.4, 51.2]})
        ],
        A("status"): [prop(["open", "closed"])],
    },
    "urn:e:4": {
        A("name"): [prop("delta")],
        A("status"): [prop("open")],
        A("humidity"): [prop(80, sub_accuracy=prop(2, observedAt=T))],
        A("count"): [prop("5")],
    },
    "urn:e:5": {
        A("name"): [prop("\u00c9p\u00e9e")],
        A("temperature"): [prop(1000.0)],
        A("label"): [inst("LanguageProperty", "languageMap", {"fr": "Pont"})],
    },
}

CASES: list[tuple[str, list[int]]] = [
    ("temperature", [1, 2, 3, 5]),
    ("!temperature", [4]),
    ("temperature>20", [1, 2, 5]),
    ("temperature<15", [2]),
    ("temperature==30", [2]),
    ("temperature==10", [2]),
    ("temperature!=30", [1, 2, 3, 5]),
    ("temperature==20..25", [1]),
    ("temperature!=20..25", [2, 3, 5]),
    ("temperature!=10..40", [3, 5]),
    ('temperature=="a".."z"', [3]),
    ("temperature==21.5,1000", [1, 5]),
    ("temperature>=1e3", [5]),
    ('temperature=="hot"', [3]),
    ('temperature>"a"', [3]),
    ('name=="Alpha"', [1]),
    ('name=="\u00c9p\u00e9e"', [5]),
    ("name~=^[A-Z]", [1, 3]),
    ("name~=(?i)^(alpha|beta)", [1, 2]),
    ("name!~=a$", [5]),
    ('name>"a"', [2, 4, 5]),
    ('name<="Gamma"', [1, 3]),
    ('status=="open"', [1, 3, 4]),
    ("status==open", [1, 3, 4]),
    ('status!="open"', [2]),
    ('tags=="red"', [1]),
    ('tags=="blue","green"', [1, 2]),
    ('tags!="blue","green"', []),
    ('controlledBy=="urn:ngsi-ld:Device:1"', [1]),
    ("controlledBy==urn:ngsi-ld:Device:2", [2]),
    ('address[city]=="Gent"', [1]),
    ('address[street][name]=="Main"', [1]),
    ('address[street.name]=="Main"', [1]),
    ('address[city]!="Gent"', [2]),
    ("address[city]", [1, 2]),
    ("address[street]", [1]),
    ("!address[street]", [2, 3, 4, 5]),
    ("flag==true", [1]),
    ("flag==false", [2]),
    ("flag!=true", [2]),
    ("flag==true,false", [1, 2]),
    ('label=="Brugge"', [2]),
    ('label[en]=="Bridge"', [2]),
    ('label[nl]=="Brug"', [2]),
    ("label~=^Br", [2]),
    ('label=="Pont"', [5]),
    ('label!="Pont"', [2]),
    ("category==commercial", [1]),
    ('category=="https://example.org/vocab/park"', [2]),
    ("category==residential", [2]),
    ("category!=commercial", [2]),
    ("category==commercial,residential", [1, 2]),
    ("items==2", [3]),
    ("items>2", [3]),
    ("items==7", []),
    ("items!=7", [3]),
    ('friends=="urn:b"', [3]),
    ('config[mode]=="auto"', [3]),
    ("config[level]>=3", [3]),
    ("count==5", [3]),
    ('count=="5"', [4]),
    ("count>4", [3]),
    ("temperature.observedAt>=2024-01-15T00:00:00Z", [2]),
    ("temperature.observedAt", [1, 2]),
    ("!temperature.observedAt", [3, 4, 5]),
    ('temperature.unitCode=="CEL"', [1]),
    ('temperature.datasetId=="urn:ds:1"', [2]),
    ("temperature.datasetId", [2]),
    ("temperature.createdAt==2024-01-01T00:00:00Z", [1, 2, 3, 5]),
    ("temperature.accuracy<1", [1]),
    ("temperature.accuracy", [1]),
    ("humidity.accuracy.observedAt", [4]),
    ("humidity.accuracy==2", [4]),
    ('temperature>20;status=="open"', [1]),
    ("temperature>20|humidity", [1, 2, 4, 5]),
    ('(name=="beta"|name=="Gamma");temperature', [2, 3]),
    ("location", [3]),
    ('location=="x"', []),
    ('location!="x"', [3]),
    ("nonexistent!=1", []),
    ("nonexistent", []),
    ("!nonexistent", [1, 2, 3, 4, 5]),
]

SCHEMA_SQLITE = """
CREATE TABLE entities (
    pk INTEGER PRIMARY KEY, tenant TEXT NOT NULL, id TEXT NOT NULL, types TEXT NOT NULL,
    scopes TEXT, doc TEXT NOT NULL, created_at TEXT NOT NULL, modified_at TEXT NOT NULL,
    expires_at TEXT, version INTEGER NOT NULL DEFAULT 1, UNIQUE (tenant, id))
"""
SCHEMA_POSTGRES = """
CREATE TABLE entities (
    pk BIGSERIAL PRIMARY KEY, tenant TEXT NOT NULL, id TEXT NOT NULL, types TEXT[] NOT NULL,
    scopes JSONB, doc JSONB NOT NULL, created_at TEXT NOT NULL, modified_at TEXT NOT NULL,
    expires_at TEXT, version INTEGER NOT NULL DEFAULT 1, UNIQUE (tenant, id))
"""

Select = Callable[[QExpr], list[str]]


@pytest.fixture(scope="module")
def sqlite_select() -> Iterator[Select]:
    conn = sqlite3.connect(":memory:")
    register_sqlite_functions(conn)
    conn.execute(SCHEMA_SQLITE)
    for entity_id, doc in ENTITIES.items():
        conn.execute(
            "INSERT INTO entities (tenant, id, types, doc, created_at, modified_at) "
            "VALUES ('', ?, '[]', ?, ?, ?)",
            (entity_id, json.dumps(doc), T, T),
        )

    def select(expr: QExpr) -> list[str]:
        sql, params = compile_q(expr, "sqlite")
        rows = conn.execute(f"SELECT id FROM entities AS e WHERE {sql} ORDER BY id", params)
        return [row[0] for row in rows]

    yield select
    conn.close()


@pytest.fixture(scope="module")
def postgres_select() -> Iterator[Select]:
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is unreachable at {PG_URL}: {exc}")
        pytest.skip(f"PostgreSQL is unreachable at {PG_URL}")
    name = f"stadsnav_test_{secrets.token_hex(6)}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        with psycopg.connect(PG_URL.rsplit("/", 1)[0] + "/" + name, autocommit=True) as conn:
            conn.execute(SCHEMA_POSTGRES)
            for entity_id, doc in ENTITIES.items():
                conn.execute(
                    "INSERT INTO entities (tenant, id, types, doc, created_at, modified_at) "
                    "VALUES ('', %s, '{}', %s::jsonb, %s, %s)",
                    (entity_id, json.dumps(doc), T, T),
                )

            def select(expr: QExpr) -> list[str]:
                sql, params = compile_q(expr, "postgres")
                rows = conn.execute(
                    f"SELECT id FROM entities AS e WHERE {sql} ORDER BY id",
                    params,
                )
                return [row[0] for row in rows]

            yield select
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def python_select(expr: QExpr) -> list[str]:
    return sorted(i for i, attrs in ENTITIES.items() if matches_q(expr, attrs))


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_sqlite(sqlite_select: Select, text: str, expected: list[int]) -> None:
    expr = parse_q(text, CTX)
    ids = [f"urn:e:{n}" for n in expected]
    assert python_select(expr) == ids
    assert sqlite_select(expr) == ids


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.postgres
def test_postgres(postgres_select: Select, text: str, expected: list[int]) -> None:
    expr = parse_q(text, CTX)
    assert postgres_select(expr) == [f"urn:e:{n}" for n in expected]


def test_placeholders() -> None:
    expr = parse_q('name=="50%";a==1..2|b~=x', CTX)
    sqlite_sql, sqlite_params = compile_q(expr, "sqlite")
    pg_sql, pg_params = compile_q(expr, "postgres")
    assert sqlite_sql.count("?") == len(sqlite_params)
    assert "%s" not in sqlite_sql
    assert pg_sql.count("%s") == len(pg_params)
    assert "?" not in pg_sql
    assert "%" not in pg_sql.replace("%s", "")
    assert "50%" in pg_params
    for sql in (sqlite_sql, pg_sql):
        assert "50%" not in sql
        assert "\x01" not in sql


def test_regexp_function_is_lenient() -> None:
    conn = sqlite3.connect(":memory:")
    register_sqlite_functions(conn)
    assert conn.execute("SELECT 'abc' REGEXP 'b', 'abc' REGEXP '^b', 1 REGEXP '1'").fetchone() == (
        1,
        0,
        0,
    )
    assert conn.execute("SELECT 'abc' REGEXP '('").fetchone() == (0,)


# Differential tests: generated expressions select on each backend what matches_q selects.


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_generated_sqlite_agrees_with_python(sqlite_select: Select, built: Built) -> None:
    _, expr = built
    assert sqlite_select(expr) == python_select(expr)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
@pytest.mark.postgres
def test_generated_postgres_agrees_with_python(postgres_select: Select, built: Built) -> None:
    _, expr = built
    assert postgres_select(expr) == python_select(expr)


@pytest.mark.parametrize("text", [case[0] for case in CASES])
def test_every_case_parses(text: str) -> None:
    try:
        parse_q(text, CTX)
    except NgsiLdError as exc:  # pragma: no cover - a broken case table
        pytest.fail(f"{text!r}: {exc.detail}")
