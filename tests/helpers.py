"""Shared test data and assertions."""

from __future__ import annotations

from typing import Any

import httpx

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
JSONLD = "application/ld+json"
# The user context the `context_server` fixture serves over real HTTP on loopback.
USER_CONTEXT_DOCUMENT = {
    "@context": {
        "city": "https://example.org/city#",
        "Bin": "city:Bin",
        "level": "city:level",
    }
}


def link(url: str) -> str:
    return f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def bin_entity(
    entity_id: str, level: float = 0.42, lon: float = 18.07, lat: float = 59.33
) -> dict[str, Any]:
    """A WasteContainer as a bin sensor's mapping would create it."""
    return {
        "id": entity_id,
        "type": "WasteContainer",
        "fillingLevel": {
            "type": "Property",
            "value": level,
            "unitCode": "P1",
            "observedAt": "2026-11-01T08:00:00Z",
        },
        "status": {"type": "Property", "value": "ok"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:d1"},
    }


async def create(client: httpx.AsyncClient, entity: dict[str, Any], **kwargs: Any) -> None:
    response = await client.post("/ngsi-ld/v1/entities", json=entity, **kwargs)
    assert response.status_code == 201, response.text


def assert_problem(response: httpx.Response, status: int, problem: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://uri.etsi.org/ngsi-ld/errors/{problem}"
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body
