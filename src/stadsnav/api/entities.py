"""Routes of the entities resource (clause 6.4 – 6.7): /entities and their attributes."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stadsnav.api import params
from stadsnav.api.negotiation import GEOJSON, JSON, JSONLD, accepted, read_body, respond, tenant_of
from stadsnav.api.services import services
from stadsnav.broker import Broker
from stadsnav.ngsild.context import Context
from stadsnav.ngsild.entity import Entity
from stadsnav.ngsild.errors import BadRequestData, ResourceNotFound
from stadsnav.ngsild.join import Join, Shown, render_flat, render_inline, wanted
from stadsnav.ngsild.render import Representation, geojson_feature, render_entity
from stadsnav.ngsild.update import UpdateOutcome

BASE = "/ngsi-ld/v1"


async def create_entity(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.ENTITY_WRITE)
    body = await read_body(request, svc.settings.max_body_bytes)
    ctx = await svc.context(body.context)
    entity_id = await svc.broker.create(tenant_of(request), body.payload, ctx)
    return Response(
        status_code=201, headers={"Location": f"{BASE}/entities/{quote(entity_id, safe=':')}"}
    )


async def query_entities(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.ENTITY_QUERY)
    media = accepted(request, (JSON, JSONLD, GEOJSON))
    ctx, reference = await svc.request_context(request)
    query = params.entity_query(request.query_params, ctx, svc.settings)
    rep = params.representation(request.query_params, ctx)
    join = params.join(request.query_params, rep)
    entities, total = await svc.broker.query(tenant_of(request), query)
    headers = page_links(request, query.limit, query.offset, len(entities), total)
    entities = [e for e in entities if rep.keeps_any(e)]
    if total is not None:
        headers["NGSILD-Results-Count"] = str(total)
    shown = await rendered(svc.broker, tenant_of(request), entities, ctx, rep, join)
    return respond(listed(shown, rep, media), media, reference, headers=headers)


async def purge_entities(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.PURGE)
    ctx, _ = await svc.request_context(request)
    query = params.entity_query(request.query_params, ctx, svc.settings)
    await svc.broker.purge(tenant_of(request), query)
    return Response(status_code=204)


async def retrieve_entity(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.ENTITY_RETRIEVE)
    media = accepted(request, (JSON, JSONLD, GEOJSON))
    ctx, reference = await svc.request_context(request)
    rep = params.representation(request.query_params, ctx)
    join = params.join(request.query_params, rep)
    entity = await svc.broker.retrieve(tenant_of(request), request.path_params["entity_id"])
    if not rep.keeps_any(entity):
        raise ResourceNotFound(f"Entity {entity.id} has none of the attributes asked for")
    shown = await rendered(svc.broker, tenant_of(request), [entity], ctx, rep, join)
    if join is not None and not join.inline:
        # A flat join answers with an array (a FeatureCollection) even for one entity.
        return respond(listed(shown, rep, media), media, reference)
    body = shown[0][1]
    if media == GEOJSON:
        return respond(geojson_feature(entity, body, rep), media, reference)
    return respond(body, media, reference)


async def replace_entity(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.ENTITY_WRITE)
    body = await read_body(request, svc.settings.max_body_bytes)
    ctx = await svc.context(body.context)
    await svc.broker.replace(
        tenant_of(request), request.path_params["entity_id"], body.payload, ctx
    )
    return Response(status_code=204)


async def merge_entity(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.ENTITY_WRITE)
    body = await read_body(request, svc.settings.max_body_bytes, patch=True)
    ctx = await svc.context(body.context)
    await svc.broker.merge(tenant_of(request), request.path_params["entity_id"], body.payload, ctx)
    return Response(status_code=204)


async def delete_entity(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.ENTITY_WRITE)
    await svc.broker.delete(tenant_of(request), request.path_params["entity_id"])
    return Response(status_code=204)


async def append_attrs(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.ENTITY_WRITE)
    body = await read_body(request, svc.settings.max_body_bytes)
    ctx = await svc.context(body.context)
    overwrite = "noOverwrite" not in params.options(request.query_params)
    outcome = await svc.broker.append_attrs(
        tenant_of(request),
        request.path_params["entity_id"],
        body.payload,
        ctx,
        overwrite=overwrite,
    )
    return _outcome(outcome)


async def update_attrs(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.ENTITY_WRITE)
    body = await read_body(request, svc.settings.max_body_bytes, patch=True)
    ctx = await svc.context(body.context)
    outcome = await svc.broker.update_attrs(
        tenant_of(request), request.path_params["entity_id"], body.payload, ctx
    )
    return _outcome(outcome)


async def update_attribute(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.ENTITY_WRITE)
    body = await read_body(request, svc.settings.max_body_bytes, patch=True)
    ctx = await svc.context(body.context)
    payload = body.payload
    if isinstance(payload, dict):
        payload = {k: v for k, v in payload.items() if k != "@context"}
    await svc.broker.update_attribute(
        tenant_of(request),
        request.path_params["entity_id"],
        request.path_params["attr"],
        payload,
        ctx,
    )
    return Response(status_code=204)


async def replace_attribute(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.ENTITY_WRITE)
    body = await read_body(request, svc.settings.max_body_bytes)
    ctx = await svc.context(body.context)
    payload = body.payload
    if isinstance(payload, dict):
        payload = {k: v for k, v in payload.items() if k != "@context"}
    await svc.broker.replace_attribute(
        tenant_of(request),
        request.path_params["entity_id"],
        request.path_params["attr"],
        payload,
        ctx,
    )
    return Response(status_code=204)


async def delete_attribute(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.ATTRIBUTE_DELETE)
    ctx, _ = await svc.request_context(request)
    delete_all = params.flag(request.query_params, "deleteAll")
    await svc.broker.delete_attribute(
        tenant_of(request),
        request.path_params["entity_id"],
        request.path_params["attr"],
        ctx,
        dataset_id=request.query_params.get("datasetId"),
        delete_all=delete_all,
    )
    return Response(status_code=204)


async def rendered(
    broker: Broker,
    tenant: str,
    entities: list[Entity],
    ctx: Context,
    rep: Representation,
    join: Join | None,
) -> Shown:
    """The entities as the response shows them, each with its rendered body: with a join,
    what their Relationships link to inline, or flat after them."""
    if join is None:
        return [(e, render_entity(e, ctx, rep)) for e in entities]
    known = await broker.linked(tenant, entities, join.level, wanted(entities, rep, join))
    if join.inline:
        return [(e, render_inline(e, ctx, rep, known, join)) for e in entities]
    return render_flat(entities, ctx, rep, known, join)


def listed(shown: Shown, rep: Representation, media: str) -> Any:
    """Several rendered entities as a JSON array or a GeoJSON FeatureCollection."""
    if media == GEOJSON:
        features = [geojson_feature(entity, body, rep) for entity, body in shown]
        return {"type": "FeatureCollection", "features": features}
    return [body for _, body in shown]


def page_links(
    request: Request, limit: int, offset: int, returned: int, total: int | None
) -> dict[str, str]:
    """Link headers to the previous and next pages (clause 6.3.10)."""
    links = []
    if offset > 0 and limit > 0:
        links.append(_page(request, max(offset - limit, 0), limit, "prev"))
    more = total > offset + limit if total is not None else returned == limit
    if limit > 0 and more:
        links.append(_page(request, offset + limit, limit, "next"))
    return {"Link": ", ".join(links)} if links else {}


def _page(request: Request, offset: int, limit: int, rel: str) -> str:
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("offset", "limit")]
    query += [("limit", str(limit)), ("offset", str(offset))]
    return f'<{request.url.path}?{urlencode(query)}>; rel="{rel}"'


def _outcome(outcome: UpdateOutcome) -> Response:
    """UpdateResult (5.2.18): attribute names as fully qualified names (clause 6.3.6)."""
    if not outcome.not_updated:
        return Response(status_code=204)
    return respond(
        {
            "updated": outcome.updated,
            "notUpdated": [
                {"attributeName": name, "reason": reason} for name, reason in outcome.not_updated
            ],
        },
        JSON,
        None,
        status=207,
    )


async def entity_id_missing(request: Request) -> Response:
    raise BadRequestData("The entity id is missing from the path: /entities/{entityId}")


routes = [
    Route(f"{BASE}/entities", entity_id_missing, methods=["PUT", "PATCH"]),
    Route(f"{BASE}/entities", create_entity, methods=["POST"]),
    Route(f"{BASE}/entities", query_entities, methods=["GET"]),
    Route(f"{BASE}/entities", purge_entities, methods=["DELETE"]),
    Route(
        f"{BASE}/entities/{{entity_id:path}}/attrs/{{attr}}", update_attribute, methods=["PATCH"]
    ),
    Route(f"{BASE}/entities/{{entity_id:path}}/attrs/{{attr}}", replace_attribute, methods=["PUT"]),
    Route(
        f"{BASE}/entities/{{entity_id:path}}/attrs/{{attr}}", delete_attribute, methods=["DELETE"]
    ),
    Route(f"{BASE}/entities/{{entity_id:path}}/attrs", append_attrs, methods=["POST"]),
    Route(f"{BASE}/entities/{{entity_id:path}}/attrs", update_attrs, methods=["PATCH"]),
    Route(f"{BASE}/entities/{{entity_id:path}}", retrieve_entity, methods=["GET"]),
    Route(f"{BASE}/entities/{{entity_id:path}}", replace_entity, methods=["PUT"]),
    Route(f"{BASE}/entities/{{entity_id:path}}", merge_entity, methods=["PATCH"]),
    Route(f"{BASE}/entities/{{entity_id:path}}", delete_entity, methods=["DELETE"]),
]
