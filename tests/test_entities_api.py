"""The entities resource, on both backends, as an NGSI-LD client sees it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import (
    CORE,
    JSONLD,
    assert_problem,
    bin_entity,
    create,
    link,
)

E = "/ngsi-ld/v1/entities"


async def test_create_then_retrieve_returns_the_entity_in_normalized_form(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(E, json=bin_entity("urn:ngsi-ld:WasteContainer:1"))
    assert response.status_code == 201
    assert response.headers["location"] == f"{E}/urn:ngsi-ld:WasteContainer:1"
    got = await client.get(f"{E}/urn:ngsi-ld:WasteContainer:1")
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("application/json")
    assert CORE in got.headers["link"]
    body = got.json()
    assert body["id"] == "urn:ngsi-ld:WasteContainer:1"
    assert body["type"] == "WasteContainer"
    assert body["fillingLevel"] == {
        "type": "Property",
        "value": 0.42,
        "unitCode": "P1",
        "observedAt": "2026-11-01T08:00:00Z",
    }
    assert body["location"]["type"] == "GeoProperty"
    assert body["location"]["value"] == {"type": "Point", "coordinates": [18.07, 59.33]}
    assert body["refDevice"] == {"type": "Relationship", "object": "urn:ngsi-ld:Device:d1"}


async def test_creating_the_same_id_twice_is_409_already_exists(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:1"))
    again = await client.post(E, json=bin_entity("urn:x:1"))
    assert_problem(again, 409, "AlreadyExists")


async def test_retrieve_unknown_entity_is_404_resource_not_found(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"{E}/urn:x:nope"), 404, "ResourceNotFound")


async def test_retrieve_with_invalid_id_is_400(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"{E}/not a uri"), 400, "BadRequestData")


async def test_keyvalues_and_concise_representations(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:1"))
    kv = (await client.get(f"{E}/urn:x:1", params={"options": "keyValues"})).json()
    assert kv["fillingLevel"] == 0.42
    assert kv["refDevice"] == "urn:ngsi-ld:Device:d1"
    assert kv["location"] == {"type": "Point", "coordinates": [18.07, 59.33]}
    concise = (await client.get(f"{E}/urn:x:1", params={"format": "concise"})).json()
    assert concise["fillingLevel"] == {
        "value": 0.42,
        "unitCode": "P1",
        "observedAt": "2026-11-01T08:00:00Z",
    }
    assert concise["refDevice"] == {"object": "urn:ngsi-ld:Device:d1"}
    assert concise["status"] == "ok"


async def test_sysattrs_adds_created_and_modified_at(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:1"))
    body = (await client.get(f"{E}/urn:x:1", params={"options": "sysAttrs"})).json()
    assert body["createdAt"].endswith("Z")
    assert body["modifiedAt"] >= body["createdAt"]
    assert "createdAt" in body["fillingLevel"]


async def test_pick_and_omit_project_attributes(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:1"))
    picked = (await client.get(f"{E}/urn:x:1", params={"pick": "id,fillingLevel"})).json()
    assert set(picked) == {"id", "fillingLevel"}
    omitted = (await client.get(f"{E}/urn:x:1", params={"omit": "location,status"})).json()
    assert "location" not in omitted
    assert "status" not in omitted
    assert "fillingLevel" in omitted
    attrs = (await client.get(f"{E}/urn:x:1", params={"attrs": "status"})).json()
    assert set(attrs) == {"id", "type", "status"}


async def test_concise_input_is_accepted_and_stored_normalized(client: httpx.AsyncClient) -> None:
    await create(
        client,
        {
            "id": "urn:x:c",
            "type": "Thing",
            "temperature": 21.5,
            "humidity": {"value": 40, "unitCode": "P1"},
            "owner": {"object": "urn:x:owner"},
            "location": {"type": "Point", "coordinates": [18.0, 59.0]},
        },
    )
    body = (await client.get(f"{E}/urn:x:c")).json()
    assert body["temperature"] == {"type": "Property", "value": 21.5}
    with_sys = (await client.get(f"{E}/urn:x:c", params={"options": "sysAttrs"})).json()
    assert with_sys["temperature"]["createdAt"] == with_sys["createdAt"]
    assert body["humidity"] == {"type": "Property", "value": 40, "unitCode": "P1"}
    assert body["owner"] == {"type": "Relationship", "object": "urn:x:owner"}
    assert body["location"]["type"] == "GeoProperty"


async def test_user_context_from_link_header_expands_and_compacts_terms(
    client: httpx.AsyncClient, context_server: str
) -> None:
    user_context = f"{context_server}/city.jsonld"
    entity = {"id": "urn:x:ctx", "type": "Bin", "level": {"type": "Property", "value": 3}}
    created = await client.post(E, json=entity, headers={"Link": link(user_context)})
    assert created.status_code == 201
    # Without the user context, the terms come back as full IRIs.
    plain = (await client.get(f"{E}/urn:x:ctx")).json()
    assert plain["type"] == "https://example.org/city#Bin"
    assert plain["https://example.org/city#level"]["value"] == 3
    with_ctx = await client.get(f"{E}/urn:x:ctx", headers={"Link": link(user_context)})
    assert with_ctx.json()["type"] == "Bin"
    assert with_ctx.json()["level"]["value"] == 3
    assert user_context in with_ctx.headers["link"]


async def test_jsonld_body_context_and_jsonld_response(client: httpx.AsyncClient) -> None:
    entity = {
        "id": "urn:x:ld",
        "type": "Bin",
        "level": {"type": "Property", "value": 7},
        "@context": [{"Bin": "https://example.org/city#Bin"}, CORE],
    }
    created = await client.post(E, json=entity, headers={"Content-Type": JSONLD})
    assert created.status_code == 201
    got = await client.get(f"{E}/urn:x:ld", headers={"Accept": JSONLD})
    assert got.headers["content-type"].startswith(JSONLD)
    assert got.json()["@context"] == CORE
    assert got.json()["type"] == "https://example.org/city#Bin"
    assert "link" not in got.headers


async def test_geojson_representation(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:g"))
    got = await client.get(f"{E}/urn:x:g", headers={"Accept": "application/geo+json"})
    assert got.headers["content-type"].startswith("application/geo+json")
    feature = got.json()
    assert feature["type"] == "Feature"
    assert feature["geometry"] == {"type": "Point", "coordinates": [18.07, 59.33]}
    assert feature["properties"]["fillingLevel"]["value"] == 0.42
    listed = await client.get(
        E, params={"type": "WasteContainer"}, headers={"Accept": "application/geo+json"}
    )
    assert listed.json()["type"] == "FeatureCollection"
    assert [f["id"] for f in listed.json()["features"]] == ["urn:x:g"]


async def test_unacceptable_accept_is_406(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:1"))
    response = await client.get(f"{E}/urn:x:1", headers={"Accept": "text/html"})
    assert_problem(response, 406, "InvalidRequest")


async def test_replace_entity_keeps_created_at_and_replaces_everything_else(
    client: httpx.AsyncClient,
) -> None:
    await create(client, bin_entity("urn:x:1"))
    before = (await client.get(f"{E}/urn:x:1", params={"options": "sysAttrs"})).json()
    response = await client.put(
        f"{E}/urn:x:1",
        json={"type": "WasteContainer", "status": {"type": "Property", "value": "full"}},
    )
    assert response.status_code == 204
    after = (await client.get(f"{E}/urn:x:1", params={"options": "sysAttrs"})).json()
    assert after["createdAt"] == before["createdAt"]
    assert after["status"]["value"] == "full"
    assert "fillingLevel" not in after


async def test_merge_patch_adds_merges_and_deletes_with_null(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:1"))
    response = await client.patch(
        f"{E}/urn:x:1",
        json={
            "fillingLevel": {"value": 0.9},
            "status": "urn:ngsi-ld:null",
            "temperature": {"type": "Property", "value": 4},
        },
    )
    assert response.status_code == 204
    body = (await client.get(f"{E}/urn:x:1")).json()
    assert body["fillingLevel"]["value"] == 0.9
    assert body["fillingLevel"]["unitCode"] == "P1"
    assert "status" not in body
    assert body["temperature"]["value"] == 4


async def test_append_attributes_with_and_without_overwrite(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:1"))
    appended = await client.post(
        f"{E}/urn:x:1/attrs", json={"temperature": {"type": "Property", "value": 5}}
    )
    assert appended.status_code == 204
    kept = await client.post(
        f"{E}/urn:x:1/attrs",
        params={"options": "noOverwrite"},
        json={"status": {"type": "Property", "value": "new"}},
    )
    assert kept.status_code == 207
    # UpdateResult names attributes by their fully qualified names (clause 6.3.6).
    assert kept.json()["notUpdated"][0]["attributeName"] == "https://uri.etsi.org/ngsi-ld/status"
    body = (await client.get(f"{E}/urn:x:1")).json()
    assert body["temperature"]["value"] == 5
    assert body["status"]["value"] == "ok"


async def test_update_attributes_reports_missing_ones_with_207(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:1"))
    response = await client.patch(
        f"{E}/urn:x:1/attrs",
        json={
            "status": {"type": "Property", "value": "full"},
            "ghost": {"type": "Property", "value": 1},
        },
    )
    assert response.status_code == 207
    assert response.json()["updated"] == ["https://uri.etsi.org/ngsi-ld/status"]
    assert (
        response.json()["notUpdated"][0]["attributeName"]
        == "https://uri.etsi.org/ngsi-ld/default-context/ghost"
    )
    body = (await client.get(f"{E}/urn:x:1")).json()
    assert body["status"]["value"] == "full"
    assert "ghost" not in body


async def test_partial_attribute_update_merges_into_the_instance(
    client: httpx.AsyncClient,
) -> None:
    await create(client, bin_entity("urn:x:1"))
    response = await client.patch(f"{E}/urn:x:1/attrs/fillingLevel", json={"value": 0.75})
    assert response.status_code == 204
    body = (await client.get(f"{E}/urn:x:1")).json()
    assert body["fillingLevel"]["value"] == 0.75
    assert body["fillingLevel"]["unitCode"] == "P1"
    missing = await client.patch(f"{E}/urn:x:1/attrs/ghost", json={"value": 1})
    assert_problem(missing, 404, "ResourceNotFound")


async def test_replace_attribute(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:1"))
    response = await client.put(
        f"{E}/urn:x:1/attrs/fillingLevel", json={"type": "Property", "value": 0.1}
    )
    assert response.status_code == 204
    body = (await client.get(f"{E}/urn:x:1")).json()
    assert body["fillingLevel"] == {"type": "Property", "value": 0.1}


async def test_delete_attribute_and_entity(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:1"))
    assert (await client.delete(f"{E}/urn:x:1/attrs/status")).status_code == 204
    assert "status" not in (await client.get(f"{E}/urn:x:1")).json()
    assert_problem(await client.delete(f"{E}/urn:x:1/attrs/status"), 404, "ResourceNotFound")
    assert (await client.delete(f"{E}/urn:x:1")).status_code == 204
    assert_problem(await client.get(f"{E}/urn:x:1"), 404, "ResourceNotFound")
    assert_problem(await client.delete(f"{E}/urn:x:1"), 404, "ResourceNotFound")


async def test_multi_attribute_instances_by_dataset_id(client: httpx.AsyncClient) -> None:
    await create(
        client,
        {
            "id": "urn:x:m",
            "type": "Sensor",
            "temperature": [
                {"type": "Property", "value": 20},
                {"type": "Property", "value": 21, "datasetId": "urn:ds:b"},
            ],
        },
    )
    body = (await client.get(f"{E}/urn:x:m")).json()
    assert isinstance(body["temperature"], list)
    assert {i.get("datasetId") for i in body["temperature"]} == {None, "urn:ds:b"}
    deleted = await client.delete(
        f"{E}/urn:x:m/attrs/temperature", params={"datasetId": "urn:ds:b"}
    )
    assert deleted.status_code == 204
    body = (await client.get(f"{E}/urn:x:m")).json()
    assert body["temperature"] == {"type": "Property", "value": 20}


async def test_all_attribute_types_round_trip(client: httpx.AsyncClient) -> None:
    entity: dict[str, Any] = {
        "id": "urn:x:t",
        "type": "Thing",
        "name": {"type": "LanguageProperty", "languageMap": {"sv": "Soptunna", "en": "Bin"}},
        "category": {"type": "VocabProperty", "vocab": "waste"},
        "readings": {"type": "ListProperty", "valueList": [1, 2, 3]},
        "parts": {"type": "ListRelationship", "objectList": [{"object": "urn:x:p1"}]},
        "config": {"type": "JsonProperty", "json": {"any": {"nested": ["json"]}}},
    }
    await create(client, entity)
    body = (await client.get(f"{E}/urn:x:t")).json()
    assert body["name"]["languageMap"] == {"sv": "Soptunna", "en": "Bin"}
    assert body["category"] == {"type": "VocabProperty", "vocab": "waste"}
    assert body["readings"]["valueList"] == [1, 2, 3]
    assert body["parts"]["objectList"] == [{"object": "urn:x:p1"}]
    assert body["config"]["json"] == {"any": {"nested": ["json"]}}
    sv = (await client.get(f"{E}/urn:x:t", params={"lang": "sv"})).json()
    assert sv["name"] == {"type": "Property", "value": "Soptunna", "lang": "sv"}


@pytest.mark.parametrize(
    ("attribute", "why"),
    [
        ({"type": "Property"}, "no value"),
        ({"type": "Relationship", "object": "not a uri"}, "object not a URI"),
        ({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [500, 0]}}, "bad geo"),
        ({"type": "LanguageProperty", "languageMap": "x"}, "languageMap not an object"),
        ({"type": "ListProperty", "valueList": 3}, "valueList not a list"),
        ({"type": "JsonProperty", "json": 3}, "json not an object"),
        ({"type": "Property", "value": 1, "observedAt": "yesterday"}, "bad observedAt"),
        ({"type": "Nonsense", "value": 1}, "unknown attribute type"),
        ({"type": "Property", "value": None}, "null value"),
    ],
)
async def test_invalid_attributes_are_rejected_and_nothing_is_stored(
    client: httpx.AsyncClient, attribute: dict[str, Any], why: str
) -> None:
    response = await client.post(E, json={"id": "urn:x:bad", "type": "T", "a": attribute})
    assert_problem(response, 400, "BadRequestData")
    assert_problem(await client.get(f"{E}/urn:x:bad"), 404, "ResourceNotFound")


async def test_transient_entity_disappears_when_expires_at_passes(
    client: httpx.AsyncClient,
) -> None:
    await create(client, {**bin_entity("urn:x:old"), "expiresAt": "2020-01-01T00:00:00Z"})
    await create(client, {**bin_entity("urn:x:new"), "expiresAt": "2099-01-01T00:00:00Z"})
    assert_problem(await client.get(f"{E}/urn:x:old"), 404, "ResourceNotFound")
    kept = (await client.get(f"{E}/urn:x:new")).json()
    assert kept["expiresAt"] == "2099-01-01T00:00:00.000000Z"


@pytest.mark.parametrize(
    "null",
    [
        {"type": "LanguageProperty", "languageMap": {"@none": "urn:ngsi-ld:null"}},
        {"type": "VocabProperty", "vocab": "urn:ngsi-ld:null"},
        {"type": "ListProperty", "valueList": ["urn:ngsi-ld:null"]},
        {"type": "ListRelationship", "objectList": [{"object": "urn:ngsi-ld:null"}]},
        {"type": "JsonProperty", "json": "urn:ngsi-ld:null"},
        {"type": "Relationship", "object": "urn:ngsi-ld:null"},
    ],
)
async def test_merge_with_the_null_of_each_attribute_type_deletes_it(
    client: httpx.AsyncClient, null: dict[str, Any]
) -> None:
    await create(
        client,
        {
            "id": "urn:x:n",
            "type": "T",
            "a": {"type": "Property", "value": 1},
            "b": {"type": "Property", "value": 2},
        },
    )
    assert (await client.patch(f"{E}/urn:x:n", json={"a": null})).status_code == 204
    body = (await client.get(f"{E}/urn:x:n")).json()
    assert "a" not in body
    assert body["b"]["value"] == 2


async def test_update_and_append_add_types_and_scopes(client: httpx.AsyncClient) -> None:
    await create(client, {**bin_entity("urn:x:s"), "scope": "/Stockholm"})
    patched = await client.patch(
        f"{E}/urn:x:s/attrs",
        json={"type": "Asset", "status": {"type": "Property", "value": "x"}, "scope": "/Kista"},
    )
    assert patched.status_code == 204
    body = (await client.get(f"{E}/urn:x:s")).json()
    assert body["type"] == ["WasteContainer", "Asset"]
    assert body["scope"] == "/Kista"
    kept = await client.post(
        f"{E}/urn:x:s/attrs", params={"options": "noOverwrite"}, json={"scope": "/Solna"}
    )
    assert kept.status_code == 204
    assert (await client.get(f"{E}/urn:x:s")).json()["scope"] == ["/Kista", "/Solna"]


async def test_replace_changes_type_and_scope_even_without_attributes(
    client: httpx.AsyncClient,
) -> None:
    await create(client, {"id": "urn:x:r", "type": "A", "scope": "/a"})
    response = await client.put(f"{E}/urn:x:r", json={"type": "B", "scope": "/b"})
    assert response.status_code == 204
    body = (await client.get(f"{E}/urn:x:r")).json()
    assert (body["type"], body["scope"]) == ("B", "/b")


async def test_projection_that_leaves_nothing_is_404(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:p"))
    for params in ({"attrs": "ghost"}, {"pick": "ghost"}):
        response = await client.get(f"{E}/urn:x:p", params=params)
        assert_problem(response, 404, "ResourceNotFound")
    everything = "id,type,fillingLevel,status,location,refDevice"
    assert_problem(
        await client.get(f"{E}/urn:x:p", params={"omit": everything}), 404, "ResourceNotFound"
    )


async def test_geojson_carries_the_context_in_the_body(client: httpx.AsyncClient) -> None:
    await create(client, bin_entity("urn:x:g"))
    got = await client.get(f"{E}/urn:x:g", headers={"Accept": "application/geo+json"})
    assert got.json()["@context"] == CORE


async def test_partial_update_with_only_sub_attributes_keeps_the_value(
    client: httpx.AsyncClient,
) -> None:
    await create(client, bin_entity("urn:x:u"))
    response = await client.patch(
        f"{E}/urn:x:u/attrs/refDevice",
        json={"providedBy": {"type": "Relationship", "object": "urn:x:vendor"}},
    )
    assert response.status_code == 204
    ref = (await client.get(f"{E}/urn:x:u")).json()["refDevice"]
    assert ref["type"] == "Relationship"
    assert ref["object"] == "urn:ngsi-ld:Device:d1"
    assert ref["providedBy"] == {"type": "Relationship", "object": "urn:x:vendor"}
    turned = await client.patch(
        f"{E}/urn:x:u/attrs/fillingLevel", json={"type": "Relationship", "object": "urn:x:y"}
    )
    assert_problem(turned, 400, "BadRequestData")


async def test_dataset_id_selects_attribute_instances(client: httpx.AsyncClient) -> None:
    await create(
        client,
        {
            "id": "urn:x:d",
            "type": "Sensor",
            "name": [
                {"type": "Property", "value": "default"},
                {"type": "Property", "value": "svenska", "datasetId": "urn:ds:sv"},
            ],
            "other": {"type": "Property", "value": 1},
        },
    )
    sv = (await client.get(f"{E}/urn:x:d", params={"datasetId": "urn:ds:sv"})).json()
    assert sv["name"] == {"type": "Property", "value": "svenska", "datasetId": "urn:ds:sv"}
    assert "other" not in sv
    default = (await client.get(f"{E}/urn:x:d", params={"datasetId": "@none"})).json()
    assert default["name"] == {"type": "Property", "value": "default"}
    assert default["other"]["value"] == 1
    listed = await client.get(E, params={"type": "Sensor", "datasetId": "urn:ds:sv"})
    assert listed.json()[0]["name"]["value"] == "svenska"
    assert_problem(
        await client.get(f"{E}/urn:x:d", params={"datasetId": "not a uri"}), 400, "BadRequestData"
    )


async def test_join_flat_and_inline_bring_linked_entities(client: httpx.AsyncClient) -> None:
    await create(
        client,
        {
            "id": "urn:j:device",
            "type": "Device",
            "battery": 0.9,
            "owner": {"type": "Relationship", "object": "urn:j:board"},
        },
    )
    await create(client, {"id": "urn:j:board", "type": "Organisation", "name": "Trafiknämnden"})
    await create(
        client,
        {
            "id": "urn:j:bin",
            "type": "WasteContainer",
            "fillingLevel": 0.5,
            "refDevice": {"type": "Relationship", "object": "urn:j:device"},
        },
    )
    flat = (await client.get(f"{E}/urn:j:bin", params={"join": "flat"})).json()
    assert [e["id"] for e in flat] == ["urn:j:bin", "urn:j:device"]
    deep = (await client.get(f"{E}/urn:j:bin", params={"join": "flat", "joinLevel": "2"})).json()
    assert [e["id"] for e in deep] == ["urn:j:bin", "urn:j:device", "urn:j:board"]
    inline = (
        await client.get(f"{E}/urn:j:bin", params={"join": "inline", "joinLevel": "2"})
    ).json()
    device = inline["refDevice"]["entity"]
    assert device["battery"]["value"] == 0.9
    assert device["owner"]["entity"]["name"]["value"] == "Trafiknämnden"
    kv = (
        await client.get(f"{E}/urn:j:bin", params={"join": "inline", "options": "keyValues"})
    ).json()
    assert kv["refDevice"]["battery"] == 0.9
    queried = await client.get(E, params={"type": "WasteContainer", "join": "flat"})
    assert [e["id"] for e in queried.json()] == ["urn:j:bin", "urn:j:device"]
    bad = await client.get(f"{E}/urn:j:bin", params={"join": "sideways"})
    assert_problem(bad, 400, "BadRequestData")


async def _city_graph(client: httpx.AsyncClient) -> None:
    """A building located in a city that lies in a country (the ETSI suite's join graph)."""
    await create(
        client,
        {
            "id": "urn:g:country",
            "type": "Country",
            "name": "Sverige",
            "description": "A kingdom in northern Europe",
        },
    )
    await create(
        client,
        {
            "id": "urn:g:city",
            "type": "City",
            "name": "Stockholm",
            "description": "The capital",
            "isInCountry": {"type": "Relationship", "object": "urn:g:country"},
        },
    )
    await create(
        client,
        {
            "id": "urn:g:hall",
            "type": "Building",
            "name": "Stadshuset",
            "location": {
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [18.05, 59.33]},
            },
            "locatedAt": {"type": "Relationship", "object": "urn:g:city"},
        },
    )


async def test_nested_pick_projects_linked_entities_inline_and_flat(
    client: httpx.AsyncClient,
) -> None:
    await _city_graph(client)
    pick = {"pick": "id,locatedAt{id,name}", "joinLevel": "2"}
    inline = (await client.get(f"{E}/urn:g:hall", params={**pick, "join": "inline"})).json()
    assert inline == {
        "id": "urn:g:hall",
        "locatedAt": {
            "type": "Relationship",
            "object": "urn:g:city",
            "entity": {"id": "urn:g:city", "name": {"type": "Property", "value": "Stockholm"}},
        },
    }
    # The city's projection leaves out isInCountry, so the join goes no further.
    flat = (await client.get(f"{E}/urn:g:hall", params={**pick, "join": "flat"})).json()
    assert flat == [
        {"id": "urn:g:hall", "locatedAt": {"type": "Relationship", "object": "urn:g:city"}},
        {"id": "urn:g:city", "name": {"type": "Property", "value": "Stockholm"}},
    ]
    deeper = {"pick": "id,locatedAt{name,isInCountry{id,description}}", "joinLevel": "2"}
    flat = (await client.get(f"{E}/urn:g:hall", params={**deeper, "join": "flat"})).json()
    assert [set(e) for e in flat] == [
        {"id", "locatedAt"},
        {"name", "isInCountry"},
        {"id", "description"},
    ]
    inline = (await client.get(f"{E}/urn:g:hall", params={**deeper, "join": "inline"})).json()
    country = inline["locatedAt"]["entity"]["isInCountry"]["entity"]
    assert country == {
        "id": "urn:g:country",
        "description": {"type": "Property", "value": "A kingdom in northern Europe"},
    }


async def test_nested_omit_removes_members_of_linked_entities_and_keeps_the_relationship(
    client: httpx.AsyncClient,
) -> None:
    await _city_graph(client)
    omit = {"omit": "type,location,locatedAt{name,isInCountry{description}}", "joinLevel": "2"}
    flat = (await client.get(f"{E}/urn:g:hall", params={**omit, "join": "flat"})).json()
    assert [e["id"] for e in flat] == ["urn:g:hall", "urn:g:city", "urn:g:country"]
    hall, city, country = flat
    assert set(hall) == {"id", "name", "locatedAt"}
    assert set(city) == {"id", "type", "description", "isInCountry"}
    assert set(country) == {"id", "type", "name"}
    # A top-level omit applies to the entity asked for, not to what it links to.
    only_top = (
        await client.get(f"{E}/urn:g:hall", params={"omit": "name", "join": "inline"})
    ).json()
    assert "name" not in only_top
    assert only_top["locatedAt"]["entity"]["name"]["value"] == "Stockholm"


async def test_join_follows_only_the_relationships_a_projection_shows(
    client: httpx.AsyncClient,
) -> None:
    await _city_graph(client)
    for projection in ({"pick": "id,name"}, {"omit": "locatedAt"}):
        flat = await client.get(f"{E}/urn:g:hall", params={**projection, "join": "flat"})
        assert [e["id"] for e in flat.json()] == ["urn:g:hall"]
        listed = await client.get(E, params={**projection, "type": "Building", "join": "inline"})
        assert "locatedAt" not in listed.json()[0]


async def test_nested_projection_in_every_representation(client: httpx.AsyncClient) -> None:
    await _city_graph(client)
    pick = {"pick": "name,locatedAt{name}", "join": "inline"}
    kv = (await client.get(f"{E}/urn:g:hall", params={**pick, "options": "keyValues"})).json()
    assert kv == {"name": "Stadshuset", "locatedAt": {"name": "Stockholm"}}
    concise = (await client.get(f"{E}/urn:g:hall", params={**pick, "format": "concise"})).json()
    assert concise == {
        "name": "Stadshuset",
        "locatedAt": {"object": "urn:g:city", "entity": {"name": "Stockholm"}},
    }
    geo = {"Accept": "application/geo+json"}
    feature = (await client.get(f"{E}/urn:g:hall", params=pick, headers=geo)).json()
    assert feature["type"] == "Feature"
    assert feature["geometry"] == {"type": "Point", "coordinates": [18.05, 59.33]}
    assert feature["properties"]["locatedAt"]["entity"] == {
        "name": {"type": "Property", "value": "Stockholm"}
    }
    flat = {"pick": "id,location,locatedAt{id,name}", "join": "flat"}
    collection = (await client.get(f"{E}/urn:g:hall", params=flat, headers=geo)).json()
    assert collection["type"] == "FeatureCollection"
    assert [f["id"] for f in collection["features"]] == ["urn:g:hall", "urn:g:city"]
    assert collection["features"][1]["properties"] == {
        "name": {"type": "Property", "value": "Stockholm"}
    }


async def test_nested_projection_needs_a_join_that_reaches_as_deep(
    client: httpx.AsyncClient,
) -> None:
    await _city_graph(client)
    two_deep = "locatedAt{isInCountry{name}}"
    for params in (
        {"pick": "locatedAt{name}"},
        {"omit": "locatedAt{name}", "join": "@none"},
        {"pick": two_deep, "join": "flat"},
        {"omit": two_deep, "join": "inline", "joinLevel": "1"},
        {"pick": "id,locatedAt{name", "join": "flat"},
        {"pick": "id,locatedAt{}", "join": "flat"},
        {"pick": "id{name}", "join": "flat"},
    ):
        response = await client.get(f"{E}/urn:g:hall", params=params)
        assert_problem(response, 400, "BadRequestData")
    listed = await client.get(E, params={"type": "Building", "pick": "locatedAt{name}"})
    assert_problem(listed, 400, "BadRequestData")
    fine = await client.get(
        f"{E}/urn:g:hall", params={"pick": two_deep, "join": "flat", "joinLevel": "2"}
    )
    assert fine.status_code == 200


async def test_contained_by_entities_are_neither_fetched_nor_shown_again(
    client: httpx.AsyncClient,
) -> None:
    await _city_graph(client)
    seen = {"containedBy": "urn:g:city,urn:x:elsewhere", "joinLevel": "2"}
    flat = (await client.get(f"{E}/urn:g:hall", params={**seen, "join": "flat"})).json()
    assert [e["id"] for e in flat] == ["urn:g:hall"]
    inline = (await client.get(f"{E}/urn:g:hall", params={**seen, "join": "inline"})).json()
    assert inline["locatedAt"] == {"type": "Relationship", "object": "urn:g:city"}
    deeper = {"containedBy": "urn:g:country", "joinLevel": "2", "join": "flat"}
    listed = (await client.get(E, params={**deeper, "type": "Building"})).json()
    assert [e["id"] for e in listed] == ["urn:g:hall", "urn:g:city"]
    # The entity asked for is shown even when the client has met it before.
    itself = await client.get(f"{E}/urn:g:hall", params={"containedBy": "urn:g:hall"})
    assert itself.json()["id"] == "urn:g:hall"
    bad = await client.get(f"{E}/urn:g:hall", params={"containedBy": "not a uri", "join": "flat"})
    assert_problem(bad, 400, "BadRequestData")


async def test_inline_join_ends_a_cycle_before_repeating_an_entity(
    client: httpx.AsyncClient,
) -> None:
    for me, other in (("urn:c:a", "urn:c:b"), ("urn:c:b", "urn:c:a")):
        await create(
            client,
            {"id": me, "type": "Node", "next": {"type": "Relationship", "object": other}},
        )
    inline = (await client.get(f"{E}/urn:c:a", params={"join": "inline", "joinLevel": "5"})).json()
    b = inline["next"]["entity"]
    assert b["id"] == "urn:c:b"
    assert b["next"] == {"type": "Relationship", "object": "urn:c:a"}
    flat = (await client.get(f"{E}/urn:c:a", params={"join": "flat", "joinLevel": "5"})).json()
    assert [e["id"] for e in flat] == ["urn:c:a", "urn:c:b"]


async def test_flat_join_shows_an_entity_reached_twice_once_with_all_that_was_asked(
    client: httpx.AsyncClient,
) -> None:
    await create(
        client,
        {"id": "urn:o:board", "type": "Organisation", "name": "Trafiknämnden", "phone": "08-1"},
    )
    await create(
        client,
        {
            "id": "urn:o:bin",
            "type": "WasteContainer",
            "owner": {"type": "Relationship", "object": "urn:o:board"},
            "operator": {"type": "Relationship", "object": "urn:o:board"},
        },
    )
    params = {"pick": "owner{name},operator{phone}", "join": "flat"}
    bin_, board = (await client.get(f"{E}/urn:o:bin", params=params)).json()
    assert set(bin_) == {"owner", "operator"}
    assert board == {
        "name": {"type": "Property", "value": "Trafiknämnden"},
        "phone": {"type": "Property", "value": "08-1"},
    }
    inline = (await client.get(f"{E}/urn:o:bin", params={**params, "join": "inline"})).json()
    assert set(inline["owner"]["entity"]) == {"name"}
    assert set(inline["operator"]["entity"]) == {"phone"}


async def test_json_null_is_refused_and_scope_can_be_deleted(client: httpx.AsyncClient) -> None:
    await create(client, {**bin_entity("urn:x:z"), "scope": "/Kista"})
    refused = await client.patch(f"{E}/urn:x:z", json={"status": None})
    assert_problem(refused, 400, "BadRequestData")
    assert (await client.get(f"{E}/urn:x:z")).json()["status"]["value"] == "ok"
    assert (await client.delete(f"{E}/urn:x:z/attrs/scope")).status_code == 204
    assert "scope" not in (await client.get(f"{E}/urn:x:z")).json()
    assert_problem(await client.delete(f"{E}/urn:x:z/attrs/scope"), 404, "ResourceNotFound")
    assert_problem(await client.put(f"{E}", json={"type": "T"}), 400, "BadRequestData")


async def test_observed_at_keeps_sub_second_precision(client: httpx.AsyncClient) -> None:
    entity = bin_entity("urn:x:t")
    entity["fillingLevel"]["observedAt"] = "2026-11-01T10:00:00.250+02:00"
    await create(client, entity)
    body = (await client.get(f"{E}/urn:x:t")).json()
    assert body["fillingLevel"]["observedAt"] == "2026-11-01T08:00:00.250000Z"
