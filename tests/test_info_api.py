"""/types and /attributes describe what is stored."""

from __future__ import annotations

import httpx

from tests.helpers import assert_problem, bin_entity, create


async def test_types_list_and_details(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:w:1"))
    await create(client, {"id": "urn:s:1", "type": "Streetlight", "powerState": "on"})
    listed = (await client.get("/ngsi-ld/v1/types")).json()
    assert listed["type"] == "EntityTypeList"
    assert listed["typeList"] == ["Streetlight", "WasteContainer"]
    detailed = (await client.get("/ngsi-ld/v1/types", params={"details": "true"})).json()
    waste = next(t for t in detailed if t["typeName"] == "WasteContainer")
    assert waste["type"] == "EntityType"
    assert set(waste["attributeNames"]) == {"fillingLevel", "status", "location", "refDevice"}
    info = (await client.get("/ngsi-ld/v1/types/WasteContainer")).json()
    assert info["entityCount"] == 1
    kinds = {a["attributeName"]: a["attributeTypes"] for a in info["attributeDetails"]}
    assert kinds["location"] == ["GeoProperty"]
    assert kinds["refDevice"] == ["Relationship"]
    assert_problem(await client.get("/ngsi-ld/v1/types/Nothing"), 404, "ResourceNotFound")


async def test_attributes_list_and_details(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:w:1"))
    await create(client, bin_entity("urn:w:2"))
    listed = (await client.get("/ngsi-ld/v1/attributes")).json()
    assert listed["type"] == "AttributeList"
    assert set(listed["attributeList"]) == {"fillingLevel", "status", "location", "refDevice"}
    info = (await client.get("/ngsi-ld/v1/attributes/fillingLevel")).json()
    assert info["attributeCount"] == 2
    assert info["attributeTypes"] == ["Property"]
    assert info["typeNames"] == ["WasteContainer"]
    assert_problem(await client.get("/ngsi-ld/v1/attributes/nothing"), 404, "ResourceNotFound")
