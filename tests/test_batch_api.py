"""Batch entity operations (/entityOperations) with their per-entity results."""

from __future__ import annotations

import json

import httpx

from tests.helpers import assert_problem, bin_entity, create

OPS = "/ngsi-ld/v1/entityOperations"
E = "/ngsi-ld/v1/entities"


async def test_batch_create_all_good_is_201_with_ids(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{OPS}/create", json=[bin_entity("urn:b:1"), bin_entity("urn:b:2")]
    )
    assert response.status_code == 201
    assert response.json() == ["urn:b:1", "urn:b:2"]
    assert (await client.get(f"{E}/urn:b:2")).status_code == 200


async def test_batch_create_reports_each_failure_with_207(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:b:1"))
    response = await client.post(
        f"{OPS}/create",
        json=[bin_entity("urn:b:1"), bin_entity("urn:b:2"), {"id": "bad id", "type": "T"}],
    )
    assert response.status_code == 207
    body = response.json()
    assert body["success"] == ["urn:b:2"]
    errors = {e["entityId"]: e["error"] for e in body["errors"]}
    assert errors["urn:b:1"]["type"].endswith("AlreadyExists")
    assert errors["bad id"]["type"].endswith("BadRequestData")


async def test_batch_upsert_creates_then_replaces(client: httpx.AsyncClient) -> None:
    first = await client.post(f"{OPS}/upsert", json=[bin_entity("urn:b:1", level=0.1)])
    assert first.status_code == 201
    assert first.json() == ["urn:b:1"]
    created_at = (await client.get(f"{E}/urn:b:1", params={"options": "sysAttrs"})).json()[
        "createdAt"
    ]
    replacement = {
        "id": "urn:b:1",
        "type": "WasteContainer",
        "status": {"type": "Property", "value": "x"},
    }
    second = await client.post(f"{OPS}/upsert", json=[replacement])
    assert second.status_code == 204
    body = (await client.get(f"{E}/urn:b:1", params={"options": "sysAttrs"})).json()
    assert body["createdAt"] == created_at
    assert "fillingLevel" not in body
    assert body["status"]["value"] == "x"


async def test_batch_upsert_update_mode_keeps_other_attributes(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:b:1"))
    fragment = {
        "id": "urn:b:1",
        "type": "WasteContainer",
        "status": {"type": "Property", "value": "full"},
    }
    response = await client.post(
        f"{OPS}/upsert", params={"options": "update"}, json=[fragment, bin_entity("urn:b:new")]
    )
    assert response.status_code == 201
    assert response.json() == ["urn:b:new"]
    body = (await client.get(f"{E}/urn:b:1")).json()
    assert body["status"]["value"] == "full"
    assert body["fillingLevel"]["value"] == 0.42


async def test_batch_update_missing_entity_is_reported(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:b:1"))
    response = await client.post(
        f"{OPS}/update",
        json=[
            {
                "id": "urn:b:1",
                "type": "WasteContainer",
                "status": {"type": "Property", "value": "u"},
            },
            {
                "id": "urn:b:none",
                "type": "WasteContainer",
                "status": {"type": "Property", "value": "u"},
            },
        ],
    )
    assert response.status_code == 207
    assert response.json()["success"] == ["urn:b:1"]
    assert response.json()["errors"][0]["entityId"] == "urn:b:none"
    assert (await client.get(f"{E}/urn:b:1")).json()["status"]["value"] == "u"


async def test_batch_merge_and_delete(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:b:1"))
    await create(client, bin_entity("urn:b:2"))
    merged = await client.post(
        f"{OPS}/merge",
        json=[{"id": "urn:b:1", "type": "WasteContainer", "fillingLevel": {"value": 1.0}}],
    )
    assert merged.status_code == 204
    assert (await client.get(f"{E}/urn:b:1")).json()["fillingLevel"]["unitCode"] == "P1"
    deleted = await client.post(f"{OPS}/delete", json=["urn:b:1", "urn:b:2"])
    assert deleted.status_code == 204
    again = await client.post(f"{OPS}/delete", json=["urn:b:1"])
    assert again.status_code == 207
    assert again.json()["errors"][0]["error"]["type"].endswith("ResourceNotFound")


async def test_batch_needs_a_non_empty_array(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post(f"{OPS}/create", json={"id": "urn:x"}), 400, "BadRequestData")
    assert_problem(await client.post(f"{OPS}/create", json=[]), 400, "BadRequestData")


async def test_batch_of_a_thousand_entities(client: httpx.AsyncClient) -> None:
    batch = [bin_entity(f"urn:b:{i}", level=i / 1000) for i in range(1000)]
    response = await client.post(f"{OPS}/upsert", json=batch)
    assert response.status_code == 201
    assert len(response.json()) == 1000
    counted = await client.get(E, params={"type": "WasteContainer", "count": "true", "limit": "0"})
    assert counted.headers["NGSILD-Results-Count"] == "1000"


async def test_entities_with_a_bad_context_fail_alone(
    client: httpx.AsyncClient, context_server: str
) -> None:
    good = bin_entity("urn:b:good")
    with_context = {**bin_entity("urn:b:ctx"), "@context": "https://example.org/c.jsonld"}
    response = await client.post(f"{OPS}/create", json=[good, with_context])
    assert response.status_code == 207
    assert response.json()["success"] == ["urn:b:good"]
    assert response.json()["errors"][0]["entityId"] == "urn:b:ctx"
    unreachable = {**bin_entity("urn:b:far"), "@context": f"{context_server}/missing.jsonld"}
    jsonld = {**bin_entity("urn:b:ld"), "@context": f"{context_server}/city.jsonld"}
    response = await client.post(
        f"{OPS}/upsert",
        content=json.dumps([unreachable, jsonld]),
        headers={"Content-Type": "application/ld+json"},
    )
    assert response.status_code == 207
    assert response.json()["success"] == ["urn:b:ld"]
    errors = {e["entityId"]: e["error"]["type"] for e in response.json()["errors"]}
    assert errors["urn:b:far"].endswith("LdContextNotAvailable")
