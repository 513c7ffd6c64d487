"""Routes describing what is stored (clause 6.25 – 6.28): /types and /attributes."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stadsnav.api import params
from stadsnav.api.negotiation import JSON, JSONLD, accepted, respond, tenant_of
from stadsnav.api.services import services
from stadsnav.ngsild.errors import ResourceNotFound
from stadsnav.ngsild.names import check_name

BASE = "/ngsi-ld/v1"


async def list_types(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.DETAILS)
    media = accepted(request, (JSON, JSONLD))
    ctx, reference = await svc.request_context(request)
    stats = await svc.broker.type_stats(tenant_of(request))
    body: Any
    if params.flag(request.query_params, "details"):
        body = [
            {
                "id": s.type,
                "type": "EntityType",
                "typeName": ctx.compact(s.type),
                "attributeNames": sorted(ctx.compact(a) for a in s.attrs),
            }
            for s in stats
        ]
    else:
        body = {
            "id": f"urn:ngsi-ld:EntityTypeList:{uuid.uuid4()}",
            "type": "EntityTypeList",
            "typeList": [ctx.compact(s.type) for s in stats],
        }
    return respond(body, media, reference)


async def type_info(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.DETAILS)
    media = accepted(request, (JSON, JSONLD))
    ctx, reference = await svc.request_context(request)
    iri = ctx.expand(check_name(request.path_params["type"], "Entity type"))
    stats = {s.type: s for s in await svc.broker.type_stats(tenant_of(request))}
    stat = stats.get(iri)
    if stat is None:
        raise ResourceNotFound(f"No entity of type {request.path_params['type']}")
    body = {
        "id": stat.type,
        "type": "EntityTypeInfo",
        "typeName": ctx.compact(stat.type),
        "entityCount": stat.count,
        "attributeDetails": [
            {
                "id": attr,
                "type": "Attribute",
                "attributeName": ctx.compact(attr),
                "attributeTypes": sorted(kinds),
            }
            for attr, kinds in sorted(stat.attrs.items())
        ],
    }
    return respond(body, media, reference)


async def list_attributes(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.DETAILS)
    media = accepted(request, (JSON, JSONLD))
    ctx, reference = await svc.request_context(request)
    stats = await svc.broker.attribute_stats(tenant_of(request))
    body: Any
    if params.flag(request.query_params, "details"):
        body = [
            {
                "id": s.attr,
                "type": "Attribute",
                "attributeName": ctx.compact(s.attr),
                "typeNames": sorted(ctx.compact(t) for t in s.types),
            }
            for s in stats
        ]
    else:
        body = {
            "id": f"urn:ngsi-ld:AttributeList:{uuid.uuid4()}",
            "type": "AttributeList",
            "attributeList": [ctx.compact(s.attr) for s in stats],
        }
    return respond(body, media, reference)


async def attribute_info(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.DETAILS)
    media = accepted(request, (JSON, JSONLD))
    ctx, reference = await svc.request_context(request)
    iri = ctx.expand(check_name(request.path_params["attr"], "Attribute name"))
    stats = {s.attr: s for s in await svc.broker.attribute_stats(tenant_of(request))}
    stat = stats.get(iri)
    if stat is None:
        raise ResourceNotFound(f"No attribute {request.path_params['attr']}")
    body = {
        "id": stat.attr,
        "type": "Attribute",
        "attributeName": ctx.compact(stat.attr),
        "attributeCount": stat.count,
        "attributeTypes": sorted(stat.kinds),
        "typeNames": sorted(ctx.compact(t) for t in stat.types),
    }
    return respond(body, media, reference)


routes = [
    Route(f"{BASE}/types", list_types, methods=["GET"]),
    Route(f"{BASE}/types/{{type:path}}", type_info, methods=["GET"]),
    Route(f"{BASE}/attributes", list_attributes, methods=["GET"]),
    Route(f"{BASE}/attributes/{{attr:path}}", attribute_info, methods=["GET"]),
]
