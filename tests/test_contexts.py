"""@context handling: remote contexts over real HTTP, caching, failures, /jsonldContexts."""

from __future__ import annotations

import time
from urllib.parse import quote

import httpx

from tests.conftest import _ContextHandler
from tests.helpers import CORE, JSONLD, USER_CONTEXT_DOCUMENT, assert_problem, create, link

E = "/ngsi-ld/v1/entities"
C = "/ngsi-ld/v1/jsonldContexts"


async def test_remote_context_is_fetched_once_and_cached(
    client: httpx.AsyncClient, context_server: str
) -> None:
    url = f"{context_server}/city.jsonld"
    before = _ContextHandler.hits
    for n in range(3):
        entity = {"id": f"urn:c:{n}", "type": "Bin", "level": 1}
        await create(client, entity, headers={"Link": link(url)})
    assert _ContextHandler.hits - before == 1
    listed = (await client.get(C, params={"details": "true"})).json()
    cached = next(c for c in listed if c["URL"] == url)
    assert cached["kind"] == "Cached"
    assert cached["numberOfHits"] >= 1
    by_url = await client.get(f"{C}/{quote(url, safe='')}")
    assert by_url.json() == USER_CONTEXT_DOCUMENT
    assert (
        await client.delete(f"{C}/{quote(url, safe='')}", params={"reload": "true"})
    ).status_code == 204
    assert _ContextHandler.hits - before == 2


async def test_unreachable_context_is_503_ld_context_not_available(
    client: httpx.AsyncClient, context_server: str
) -> None:
    missing = await client.post(
        E,
        json={"id": "urn:c:1", "type": "Bin"},
        headers={"Link": link(f"{context_server}/missing.jsonld")},
    )
    assert_problem(missing, 503, "LdContextNotAvailable")
    closed = await client.post(
        E, json={"id": "urn:c:1", "type": "Bin"}, headers={"Link": link("http://127.0.0.1:9/x")}
    )
    assert_problem(closed, 503, "LdContextNotAvailable")
    assert_problem(await client.get(f"{E}/urn:c:1"), 404, "ResourceNotFound")


async def test_slow_context_times_out_instead_of_hanging(
    client: httpx.AsyncClient, context_server: str, settings: object
) -> None:
    started = time.monotonic()
    response = await client.get(
        f"{E}/urn:c:1", headers={"Link": link(f"{context_server}/slow.jsonld")}
    )
    assert_problem(response, 503, "LdContextNotAvailable")
    assert time.monotonic() - started < 3


async def test_oversized_context_is_refused(client: httpx.AsyncClient, context_server: str) -> None:
    response = await client.get(
        f"{E}/urn:c:1", headers={"Link": link(f"{context_server}/huge.jsonld")}
    )
    assert_problem(response, 503, "LdContextNotAvailable")


async def test_every_core_context_version_resolves_without_network(
    client: httpx.AsyncClient,
) -> None:
    for version in ("1.6", "1.7", "1.8", "1.9"):
        url = f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v{version}.jsonld"
        entity = {"id": f"urn:v:{version}", "type": "T", "p": 1}
        await create(client, entity, headers={"Link": link(url)})
        got = await client.get(f"{E}/urn:v:{version}", headers={"Link": link(url)})
        assert got.json()["p"] == {"type": "Property", "value": 1}


async def test_hosted_context_can_be_added_used_listed_and_deleted(
    client: httpx.AsyncClient,
) -> None:
    document = {"@context": {"Tree": "https://example.org/park#Tree"}}
    added = await client.post(C, json=document)
    assert added.status_code == 201
    location = added.headers["location"]
    served = await client.get(location)
    assert served.json() == document
    hosted_url = f"http://stadsnav.test{location}"
    await create(client, {"id": "urn:t:1", "type": "Tree"}, headers={"Link": link(hosted_url)})
    stored = (await client.get(f"{E}/urn:t:1")).json()
    assert stored["type"] == "https://example.org/park#Tree"
    assert hosted_url in (await client.get(C)).json()
    assert_problem(await client.delete(location, params={"reload": "true"}), 400, "BadRequestData")
    assert (await client.delete(location)).status_code == 204
    assert_problem(await client.get(location), 404, "ResourceNotFound")


async def test_the_core_context_is_listed_and_cannot_be_deleted(
    client: httpx.AsyncClient,
) -> None:
    assert CORE in (await client.get(C)).json()
    served = await client.get(f"{C}/{quote(CORE, safe='')}")
    assert served.headers["content-type"].startswith("application/json")
    assert "@context" in served.json()
    assert_problem(await client.delete(f"{C}/{quote(CORE, safe='')}"), 400, "BadRequestData")


async def test_json_body_with_context_member_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(E, json={"id": "urn:x:1", "type": "T", "@context": CORE})
    assert_problem(response, 400, "BadRequestData")


async def test_jsonld_body_without_context_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post(
        E, content=b'{"id": "urn:x:1", "type": "T"}', headers={"Content-Type": JSONLD}
    )
    assert_problem(response, 400, "BadRequestData")


async def test_contexts_on_private_networks_are_not_fetched_by_default(
    context_server: str, database_url: str
) -> None:
    from stadsnav.api.app import create_app
    from stadsnav.settings import Settings

    app = create_app(Settings(database=database_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            before = _ContextHandler.hits
            response = await http.get(
                f"{E}/urn:c:1", headers={"Link": link(f"{context_server}/city.jsonld")}
            )
            assert_problem(response, 503, "LdContextNotAvailable")
            assert _ContextHandler.hits == before


async def test_malformed_context_url_is_503_not_a_crash(client: httpx.AsyncClient) -> None:
    garbled = "http://127.0.0.1:8087http://127.0.0.1:8087/context.jsonld"
    response = await client.post(
        E, json={"id": "urn:c:1", "type": "Bin"}, headers={"Link": link(garbled)}
    )
    assert_problem(response, 503, "LdContextNotAvailable")


async def test_hosted_contexts_survive_a_restart(settings: object) -> None:
    from stadsnav.api.app import create_app
    from stadsnav.settings import Settings

    assert isinstance(settings, Settings)
    document = {"@context": {"Bench": "https://example.org/park#Bench"}}
    first = create_app(settings)
    async with first.router.lifespan_context(first):
        transport = httpx.ASGITransport(app=first)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            location = (await http.post(C, json=document)).headers["location"]
    second = create_app(settings)
    async with second.router.lifespan_context(second):
        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get(location)).json() == document
            await create(
                http,
                {"id": "urn:b:1", "type": "Bench"},
                headers={"Link": link(f"http://t{location}")},
            )
            stored = (await http.get(f"{E}/urn:b:1")).json()
            assert stored["type"] == "https://example.org/park#Bench"
            assert (await http.delete(location)).status_code == 204
    third = create_app(settings)
    async with third.router.lifespan_context(third):
        transport = httpx.ASGITransport(app=third)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert_problem(await http.get(location), 404, "ResourceNotFound")
