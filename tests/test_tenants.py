"""NGSILD-Tenant keeps tenants apart; reading an unknown tenant is 404 NonexistentTenant."""

from __future__ import annotations

import httpx

from tests.helpers import assert_problem, bin_entity, create

E = "/ngsi-ld/v1/entities"


async def test_unknown_tenant_on_read_is_nonexistent_tenant(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{E}/urn:x:1", headers={"NGSILD-Tenant": "solna"})
    assert_problem(response, 404, "NonexistentTenant")
    query = await client.get(E, params={"type": "T"}, headers={"NGSILD-Tenant": "solna"})
    assert_problem(query, 404, "NonexistentTenant")


async def test_a_create_makes_the_tenant_and_tenants_do_not_see_each_other(
    client: httpx.AsyncClient,
) -> None:
    solna = {"NGSILD-Tenant": "solna"}
    await create(client, bin_entity("urn:x:1", level=0.1), headers=solna)
    await create(client, bin_entity("urn:x:1", level=0.9))
    in_solna = (await client.get(f"{E}/urn:x:1", headers=solna)).json()
    in_default = (await client.get(f"{E}/urn:x:1")).json()
    assert in_solna["fillingLevel"]["value"] == 0.1
    assert in_default["fillingLevel"]["value"] == 0.9
    listed = (await client.get(E, params={"type": "WasteContainer"}, headers=solna)).json()
    assert len(listed) == 1
    assert (await client.delete(f"{E}/urn:x:1", headers=solna)).status_code == 204
    assert (await client.get(f"{E}/urn:x:1")).status_code == 200


async def test_invalid_tenant_name_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{E}/urn:x:1", headers={"NGSILD-Tenant": "a b'; drop"})
    assert_problem(response, 400, "BadRequestData")
