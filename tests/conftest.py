"""Fixtures: every backend as a parameter, fresh data per test, an in-process HTTP client.

PostgreSQL tests use a database made for this run (stadsnav_test_<random>) and dropped after it.
Under CI=true a missing PostgreSQL server fails the run instead of skipping.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import hypothesis
import psycopg
import pytest

from stadsnav.api.app import create_app
from stadsnav.settings import Settings
from tests.helpers import USER_CONTEXT_DOCUMENT

# Real notification receivers (HTTP, MQTT) and the subscription tests' app fixture.
pytest_plugins = ["tests.notification_receivers"]

# In CI the property-based tests replay the same examples every run, so that a submission's
# result does not depend on what the generator happens to try; locally they explore freely.
hypothesis.settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI") == "true":
    hypothesis.settings.load_profile("ci")

PG_ADMIN = os.environ.get("STADSNAV_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgres"]
_TABLES_KEPT = {"schema_migrations", "spatial_ref_sys"}


def _pg_unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI: {reason}")
    pytest.skip(f"PostgreSQL not reachable: {reason}")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database for this test session, migrated once, dropped at the end."""
    name = f"stadsnav_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        _pg_unavailable(str(error))
    with admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        assert exists is None, f"{name} already exists"
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _clear_postgres(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        tables = [r[0] for r in rows if r[0] not in _TABLES_KEPT]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/stadsnav.db"
    url: str = request.getfixturevalue("pg_database")
    _clear_postgres(url)
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The tests' @context server runs on loopback, which production settings refuse to fetch.
    return Settings(
        database=database_url,
        expiry_interval=0.2,
        context_allow_private_networks=True,
        context_fetch_timeout=1.0,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://stadsnav.test") as http:
            yield http


class _ContextHandler(http.server.BaseHTTPRequestHandler):
    """Serves JSON-LD contexts like a vocabulary site would; /slow never answers in time."""

    def do_GET(self) -> None:
        if self.path == "/slow.jsonld":
            time.sleep(3)
        if self.path == "/city.jsonld":
            body = json.dumps(USER_CONTEXT_DOCUMENT).encode()
            # Counted before answering: the client may go on (and a test read the count) as
            # soon as the body is out, before this thread runs another line.
            type(self).hits += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/ld+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path == "/huge.jsonld":
            body = b'{"@context": {"x": "' + b"a" * 2_000_000 + b'"}}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return

    hits = 0


@pytest.fixture(scope="session")
def context_server() -> Iterator[str]:
    """A real HTTP server on loopback serving user @context documents."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ContextHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture
def live_server(settings: Settings) -> Iterator[str]:
    """stadsnav served by a real uvicorn on a loopback port, in a thread."""
    import socket

    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("stadsnav did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
