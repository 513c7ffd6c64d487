"""Every bad request gets the right ProblemDetails and changes nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import assert_problem, bin_entity, create

E = "/ngsi-ld/v1/entities"


async def test_bad_json_is_400_invalid_request(client: httpx.AsyncClient) -> None:
    response = await client.post(
        E, content=b'{"id": "urn:x:1", ', headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "InvalidRequest")


async def test_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(E, content=b"id=1", headers={"Content-Type": "text/plain"})
    assert_problem(response, 415, "InvalidRequest")


async def test_too_large_payload_is_413(client: httpx.AsyncClient) -> None:
    body = b'{"id": "urn:x:big", "type": "T", "p": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    response = await client.post(E, content=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 413, "InvalidRequest")


@pytest.mark.parametrize(
    "entity",
    [
        {"type": "T"},
        {"id": "no-scheme", "type": "T"},
        {"id": "urn:x:1"},
        {"id": "urn:x:1", "type": []},
        {"id": "urn:x:1", "type": "bad type"},
        {"id": "urn:x:1", "type": "type"},
        {"id": "urn:x:1", "type": "T", "@invalid": 1},
        {"id": "urn:x:1", "type": "T", "bad name": 1},
        {
            "id": "urn:x:1",
            "type": "T",
            "p": [
                {"type": "Property", "value": 1, "datasetId": "urn:d"},
                {"type": "Property", "value": 2, "datasetId": "urn:d"},
            ],
        },
    ],
)
async def test_invalid_entity_is_400_bad_request_data(
    client: httpx.AsyncClient, entity: object
) -> None:
    assert_problem(await client.post(E, json=entity), 400, "BadRequestData")


@pytest.mark.parametrize("payload", [[], "string", 3])
async def test_a_payload_that_is_not_an_object_is_400_invalid_request(
    client: httpx.AsyncClient, payload: object
) -> None:
    assert_problem(await client.post(E, json=payload), 400, "InvalidRequest")


async def test_unknown_route_and_method_are_problem_details(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/ngsi-ld/v1/nothing"), 404, "ResourceNotFound")
    response = await client.request("PUT", "/ngsi-ld/v1/types")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"type": "T", "limit": "-1"},
        {"type": "T", "limit": "abc"},
        {"type": "T", "count": "maybe"},
        {"type": "T", "idPattern": "(["},
        {"type": "(T"},
        {"type": "T", "georel": "near;maxDistance==10"},
        {"type": "T", "q": "a=="},
        {"id": "not a uri"},
    ],
)
async def test_bad_query_parameters_are_400(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    await create(client, bin_entity("urn:x:1"))
    assert_problem(await client.get(E, params=params), 400, "BadRequestData")


@pytest.mark.parametrize(
    "params",
    [{"type": "T", "options": "nonsense"}, {"type": "T", "format": "pretty"}],
)
async def test_unknown_options_and_formats_are_400_invalid_request(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    assert_problem(await client.get(E, params=params), 400, "InvalidRequest")


@pytest.mark.parametrize(
    "params",
    [
        {"attrs": "status", "pick": "status"},
        {"attrs": "status", "omit": "status"},
        {"pick": "id,,status"},
        {"pick": "refDevice{id}"},
        {"attrs": "id,type"},
    ],
)
async def test_invalid_projections_are_400(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    await create(client, bin_entity("urn:x:1"))
    assert_problem(await client.get(f"{E}/urn:x:1", params=params), 400, "BadRequestData")


async def test_limit_over_the_maximum_is_403_too_many_results(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:1"))
    response = await client.get(E, params={"type": "T", "limit": "100000"})
    assert_problem(response, 403, "TooManyResults")


async def test_failed_update_changes_nothing(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:1"))
    before = (await client.get(f"{E}/urn:x:1", params={"options": "sysAttrs"})).json()
    bad = await client.post(
        f"{E}/urn:x:1/attrs",
        json={"status": {"type": "Property", "value": "x"}, "broken": {"type": "Relationship"}},
    )
    assert_problem(bad, 400, "BadRequestData")
    after = (await client.get(f"{E}/urn:x:1", params={"options": "sysAttrs"})).json()
    assert after == before


async def test_unknown_url_parameters_are_400_invalid_request(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:1"))
    for path in (f"{E}/urn:x:1", "/ngsi-ld/v1/types", f"{E}?type=WasteContainer"):
        response = await client.get(path, params={"invalidParam": "x"})
        assert_problem(response, 400, "InvalidRequest")


async def test_spec_parameters_not_implemented_are_422(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:1"))
    response = await client.get(f"{E}/urn:x:1", params={"csf": "x"})
    assert_problem(response, 422, "OperationNotSupported")
