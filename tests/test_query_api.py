"""GET /entities: filters, pagination and counting, on both backends."""

from __future__ import annotations

import httpx

from tests.helpers import bin_entity

E = "/ngsi-ld/v1/entities"
OPS = "/ngsi-ld/v1/entityOperations"


async def _fleet(client: httpx.AsyncClient) -> None:
    entities = [
        bin_entity("urn:ngsi-ld:WasteContainer:slussen", level=0.9, lon=18.0717, lat=59.3195),
        bin_entity("urn:ngsi-ld:WasteContainer:odenplan", level=0.3, lon=18.0490, lat=59.3430),
        bin_entity("urn:ngsi-ld:WasteContainer:kista", level=0.75, lon=17.9446, lat=59.4032),
        {
            "id": "urn:ngsi-ld:Streetlight:1",
            "type": "Streetlight",
            "powerState": {"type": "Property", "value": "on"},
            "location": {"type": "Point", "coordinates": [18.0720, 59.3200]},
        },
        {
            "id": "urn:ngsi-ld:Thing:multi",
            "type": ["WasteContainer", "Streetlight"],
            "status": {"type": "Property", "value": "broken"},
        },
    ]
    response = await client.post(f"{OPS}/create", json=entities)
    assert response.status_code == 201, response.text


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()]


async def test_query_by_type_is_ordered_by_id(client: httpx.AsyncClient) -> None:
    await _fleet(client)
    assert _ids(await client.get(E, params={"type": "WasteContainer"})) == [
        "urn:ngsi-ld:Thing:multi",
        "urn:ngsi-ld:WasteContainer:kista",
        "urn:ngsi-ld:WasteContainer:odenplan",
        "urn:ngsi-ld:WasteContainer:slussen",
    ]


async def test_type_expressions_and_or(client: httpx.AsyncClient) -> None:
    await _fleet(client)
    both = await client.get(E, params={"type": "WasteContainer;Streetlight"})
    assert _ids(both) == ["urn:ngsi-ld:Thing:multi"]
    either = await client.get(E, params={"type": "(Streetlight|Nothing)"})
    assert _ids(either) == ["urn:ngsi-ld:Streetlight:1", "urn:ngsi-ld:Thing:multi"]


async def test_query_by_id_list_and_id_pattern(client: httpx.AsyncClient) -> None:
    await _fleet(client)
    listed = await client.get(
        E, params={"id": "urn:ngsi-ld:WasteContainer:kista,urn:ngsi-ld:Streetlight:1"}
    )
    assert _ids(listed) == ["urn:ngsi-ld:Streetlight:1", "urn:ngsi-ld:WasteContainer:kista"]
    pattern = await client.get(E, params={"idPattern": "^urn:ngsi-ld:WasteContainer:(k|o).*"})
    assert _ids(pattern) == [
        "urn:ngsi-ld:WasteContainer:kista",
        "urn:ngsi-ld:WasteContainer:odenplan",
    ]


async def test_q_filter_on_values(client: httpx.AsyncClient) -> None:
    await _fleet(client)
    full = await client.get(E, params={"type": "WasteContainer", "q": "fillingLevel>0.5"})
    assert _ids(full) == ["urn:ngsi-ld:WasteContainer:kista", "urn:ngsi-ld:WasteContainer:slussen"]
    ranged = await client.get(E, params={"type": "WasteContainer", "q": "fillingLevel==0.2..0.8"})
    assert _ids(ranged) == [
        "urn:ngsi-ld:WasteContainer:kista",
        "urn:ngsi-ld:WasteContainer:odenplan",
    ]
    combined = await client.get(
        E, params={"q": '(fillingLevel<0.5|status=="broken");status!="nothing"'}
    )
    assert _ids(combined) == ["urn:ngsi-ld:Thing:multi", "urn:ngsi-ld:WasteContainer:odenplan"]
    unit = await client.get(E, params={"q": 'fillingLevel.unitCode=="P1";fillingLevel>=0.9'})
    assert _ids(unit) == ["urn:ngsi-ld:WasteContainer:slussen"]


async def test_attrs_filter_selects_entities_having_the_attribute(
    client: httpx.AsyncClient,
) -> None:
    await _fleet(client)
    response = await client.get(E, params={"attrs": "powerState"})
    assert _ids(response) == ["urn:ngsi-ld:Streetlight:1"]
    assert set(response.json()[0]) == {"id", "type", "powerState"}


async def test_geo_query_near_with_max_distance(client: httpx.AsyncClient) -> None:
    await _fleet(client)
    near_slussen = await client.get(
        E,
        params={
            "georel": "near;maxDistance==200",
            "geometry": "Point",
            "coordinates": "[18.0717,59.3195]",
        },
    )
    assert _ids(near_slussen) == ["urn:ngsi-ld:Streetlight:1", "urn:ngsi-ld:WasteContainer:slussen"]


async def test_type_q_and_geo_together(client: httpx.AsyncClient) -> None:
    await _fleet(client)
    inner_city = "[[[18.00,59.30],[18.10,59.30],[18.10,59.36],[18.00,59.36],[18.00,59.30]]]"
    response = await client.get(
        E,
        params={
            "type": "WasteContainer",
            "q": "fillingLevel>0.5",
            "georel": "within",
            "geometry": "Polygon",
            "coordinates": inner_city,
        },
    )
    assert _ids(response) == ["urn:ngsi-ld:WasteContainer:slussen"]


async def test_limit_offset_and_count(client: httpx.AsyncClient) -> None:
    await _fleet(client)
    page = await client.get(
        E, params={"type": "WasteContainer", "limit": "2", "offset": "1", "count": "true"}
    )
    assert _ids(page) == ["urn:ngsi-ld:WasteContainer:kista", "urn:ngsi-ld:WasteContainer:odenplan"]
    assert page.headers["NGSILD-Results-Count"] == "4"
    only_count = await client.get(E, params={"type": "Streetlight", "limit": "0", "count": "true"})
    assert only_count.json() == []
    assert only_count.headers["NGSILD-Results-Count"] == "2"


async def test_purge_deletes_matching_entities(client: httpx.AsyncClient) -> None:
    await _fleet(client)
    response = await client.delete(E, params={"type": "Streetlight"})
    assert response.status_code == 204
    assert _ids(await client.get(E, params={"type": "Streetlight"})) == []
    assert len(_ids(await client.get(E, params={"type": "WasteContainer"}))) == 3


async def test_post_query_takes_a_query_object(client: httpx.AsyncClient) -> None:
    await _fleet(client)
    response = await client.post(
        f"{OPS}/query",
        params={"count": "true"},
        json={
            "type": "Query",
            "entities": [{"type": "WasteContainer"}],
            "q": "fillingLevel>0.5",
            "geoQ": {
                "georel": "near;maxDistance==2000",
                "geometry": "Point",
                "coordinates": [18.0717, 59.3195],
            },
        },
    )
    assert _ids(response) == ["urn:ngsi-ld:WasteContainer:slussen"]
    assert response.headers["NGSILD-Results-Count"] == "1"


async def test_post_query_joins_and_projects_linked_entities(client: httpx.AsyncClient) -> None:
    await _fleet(client)
    device = {"id": "urn:ngsi-ld:Device:d1", "type": "Device", "battery": 0.8, "serial": "A1"}
    assert (await client.post(E, json=device)).status_code == 201
    query = {
        "type": "Query",
        "entities": [{"id": "urn:ngsi-ld:WasteContainer:kista"}],
        "pick": ["id", "refDevice{battery}"],
        "join": "flat",
        "joinLevel": 1,
    }
    response = await client.post(f"{OPS}/query", json=query)
    assert response.status_code == 200, response.text
    assert response.json() == [
        {
            "id": "urn:ngsi-ld:WasteContainer:kista",
            "refDevice": {"type": "Relationship", "object": "urn:ngsi-ld:Device:d1"},
        },
        {"battery": {"type": "Property", "value": 0.8}},
    ]
    seen = {**query, "containedBy": ["urn:ngsi-ld:Device:d1"]}
    assert _ids(await client.post(f"{OPS}/query", json=seen)) == [
        "urn:ngsi-ld:WasteContainer:kista"
    ]
    without_join = {k: v for k, v in query.items() if k not in ("join", "joinLevel")}
    inline = await client.post(f"{OPS}/query", params={"join": "inline"}, json=without_join)
    assert inline.json()[0]["refDevice"]["entity"] == {
        "battery": {"type": "Property", "value": 0.8}
    }
    refused = await client.post(f"{OPS}/query", json=without_join)
    assert refused.status_code == 400
    assert refused.json()["type"].endswith("BadRequestData")


async def test_pages_link_to_the_previous_and_next_page(client: httpx.AsyncClient) -> None:
    await _fleet(client)
    first = await client.get(E, params={"type": "WasteContainer", "limit": "2"})
    links = first.headers["link"]
    assert 'rel="next"' in links
    assert 'rel="prev"' not in links
    next_url = links.split('rel="next"')[0].rsplit("<", 1)[1].split(">")[0]
    second = await client.get(next_url)
    assert _ids(second) == [
        "urn:ngsi-ld:WasteContainer:odenplan",
        "urn:ngsi-ld:WasteContainer:slussen",
    ]
    assert 'rel="prev"' in second.headers["link"]
    assert "json-ld#context" in second.headers["link"]


async def test_scope_queries(client: httpx.AsyncClient) -> None:
    for n, scope in enumerate(["/Stockholm/Kista", "/Stockholm/Solna/Centrum", "/Göteborg"]):
        await client.post(E, json={"id": f"urn:s:{n}", "type": "Zone", "scope": scope})
    await client.post(
        E, json={"id": "urn:s:both", "type": "Zone", "scope": ["/Stockholm/Kista", "/Göteborg"]}
    )

    async def scoped(query: str) -> list[str]:
        return _ids(await client.get(E, params={"type": "Zone", "scopeQ": query}))

    assert await scoped("/Stockholm/Kista") == ["urn:s:0", "urn:s:both"]
    assert await scoped("/Stockholm/#") == ["urn:s:0", "urn:s:1", "urn:s:both"]
    assert await scoped("/Stockholm/+") == ["urn:s:0", "urn:s:both"]
    assert await scoped("/Stockholm/+/Centrum,/Göteborg") == ["urn:s:1", "urn:s:2", "urn:s:both"]
    assert await scoped("/Stockholm/Kista;/Göteborg") == ["urn:s:both"]
    assert await scoped("/#") == ["urn:s:0", "urn:s:1", "urn:s:2", "urn:s:both"]
    bad = await client.get(E, params={"type": "Zone", "scopeQ": "Stockholm"})
    assert bad.status_code == 400
