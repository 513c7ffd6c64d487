"""Routes of batch entity operations (clause 6.14 – 6.19): /entityOperations/*."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stadsnav.api import params
from stadsnav.api.entities import listed, rendered
from stadsnav.api.negotiation import (
    GEOJSON,
    JSON,
    JSONLD,
    Body,
    accepted,
    is_jsonld,
    item_context,
    read_body,
    respond,
    tenant_of,
)
from stadsnav.api.services import Services, services
from stadsnav.broker import BatchResult
from stadsnav.ngsild.context import Context
from stadsnav.ngsild.errors import BadRequestData, NgsiLdError

BASE = "/ngsi-ld/v1/entityOperations"


async def _items(
    request: Request, svc: Services, *, patch: bool = False
) -> tuple[list[tuple[Any, Context]], BatchResult]:
    """The entities of a batch with their contexts; those whose @context fails are reported
    per entity (207) rather than failing the whole batch."""
    body = await read_body(request, svc.settings.max_body_bytes, patch=patch)
    entities = _array(body, svc)
    jsonld = is_jsonld(request)
    items: list[tuple[Any, Context]] = []
    failed = BatchResult()
    for entity in entities:
        try:
            ctx = await svc.context(item_context(entity, body, jsonld))
        except NgsiLdError as error:
            entity_id = entity.get("id") if isinstance(entity, dict) else None
            failed.errors.append((entity_id if isinstance(entity_id, str) else "", error))
            continue
        items.append((entity, ctx))
    return items, failed


def _with_failed(result: BatchResult, failed: BatchResult) -> BatchResult:
    result.errors[:0] = failed.errors
    return result


def _array(body: Body, svc: Services) -> list[Any]:
    if not isinstance(body.payload, list):
        raise BadRequestData("A batch operation takes a JSON array")
    if not body.payload:
        raise BadRequestData("A batch operation needs at least one item")
    if len(body.payload) > svc.settings.batch_max_entities:
        raise BadRequestData(
            f"A batch may carry at most {svc.settings.batch_max_entities} entities"
        )
    return body.payload


def _problem(error: NgsiLdError) -> dict[str, Any]:
    return {
        "type": error.type_uri,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }


def _partial(result: BatchResult) -> Response:
    return respond(
        {
            "success": result.success,
            "errors": [
                {"entityId": entity_id, "error": _problem(error)}
                for entity_id, error in result.errors
            ],
        },
        JSON,
        None,
        status=207,
    )


async def batch_create(request: Request) -> Response:
    svc = services(request)
    items, failed = await _items(request, svc)
    result = _with_failed(await svc.broker.batch_create(tenant_of(request), items), failed)
    if result.errors:
        return _partial(result)
    return respond(result.success, JSON, None, status=201)


async def batch_upsert(request: Request) -> Response:
    svc = services(request)
    opts = params.options(request.query_params)
    if "update" in opts and "replace" in opts:
        raise BadRequestData("options update and replace exclude each other")
    items, failed = await _items(request, svc)
    result, created = await svc.broker.batch_upsert(
        tenant_of(request), items, replace="update" not in opts
    )
    _with_failed(result, failed)
    if result.errors:
        return _partial(result)
    if created:
        return respond(created, JSON, None, status=201)
    return Response(status_code=204)


async def batch_update(request: Request) -> Response:
    svc = services(request)
    overwrite = "noOverwrite" not in params.options(request.query_params)
    items, failed = await _items(request, svc)
    result = await svc.broker.batch_update(tenant_of(request), items, overwrite=overwrite)
    _with_failed(result, failed)
    return _partial(result) if result.errors else Response(status_code=204)


async def batch_merge(request: Request) -> Response:
    svc = services(request)
    items, failed = await _items(request, svc, patch=True)
    result = _with_failed(await svc.broker.batch_merge(tenant_of(request), items), failed)
    return _partial(result) if result.errors else Response(status_code=204)


async def batch_delete(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.BATCH)
    body = await read_body(request, svc.settings.max_body_bytes)
    ids = _array(body, svc)
    result = await svc.broker.batch_delete(tenant_of(request), ids)
    return _partial(result) if result.errors else Response(status_code=204)


async def batch_query(request: Request) -> Response:
    """Query Entity via POST (clause 6.23): a Query object in the body, paging in the URL."""
    svc = services(request)
    params.check_known(request.query_params, params.ENTITY_QUERY)
    media = accepted(request, (JSON, JSONLD, GEOJSON))
    body = await read_body(request, svc.settings.max_body_bytes)
    ctx = await svc.context(body.context)
    merged = QueryParams([*request.query_params.multi_items(), *_query_items(body.payload)])
    query = params.entity_query(merged, ctx, svc.settings)
    rep = params.representation(merged, ctx)
    join = params.join(merged, rep)
    entities, total = await svc.broker.query(tenant_of(request), query)
    headers = {} if total is None else {"NGSILD-Results-Count": str(total)}
    shown = await rendered(svc.broker, tenant_of(request), entities, ctx, rep, join)
    return respond(listed(shown, rep, media), media, body.context, headers=headers)


def _query_items(payload: Any) -> list[tuple[str, str]]:
    """The members of a Query object as the equivalent URL parameters."""
    if not isinstance(payload, dict) or payload.get("type") != "Query":
        raise BadRequestData("The body must be a Query object (type Query)")
    items: list[tuple[str, str]] = []
    selectors = payload.get("entities", [])
    if not isinstance(selectors, list) or not all(isinstance(s, dict) for s in selectors):
        raise BadRequestData("entities must be an array of EntitySelector objects")
    ids = [s["id"] for s in selectors if "id" in s]
    types = [s["type"] for s in selectors if "type" in s]
    patterns = [s["idPattern"] for s in selectors if "idPattern" in s]
    if len(patterns) > 1 or (len(selectors) > 1 and patterns):
        raise BadRequestData("Only one entity selector may carry an idPattern")
    for key, values in (("id", ids), ("type", types), ("idPattern", patterns)):
        if not all(isinstance(v, str) for v in values):
            raise BadRequestData(f"Every {key} in entities must be a string")
    if ids:
        items.append(("id", ",".join(ids)))
    if types:
        items.append(("type", "|".join(f"({t})" for t in types)))
    if patterns:
        items.append(("idPattern", patterns[0]))
    for key in ("q", "scopeQ", "lang", "join"):
        if key in payload:
            if not isinstance(payload[key], str):
                raise BadRequestData(f"{key} must be a string")
            items.append((key, payload[key]))
    if "joinLevel" in payload:
        level = payload["joinLevel"]
        if isinstance(level, bool) or not isinstance(level, int):
            raise BadRequestData("joinLevel must be an integer")
        items.append(("joinLevel", str(level)))
    for key in ("attrs", "pick", "omit", "containedBy"):
        if key in payload:
            names = payload[key]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise BadRequestData(f"{key} must be an array of strings")
            items.append((key, ",".join(names)))
    geo = payload.get("geoQ")
    if geo is not None:
        if not isinstance(geo, dict):
            raise BadRequestData("geoQ must be an object")
        for key in ("georel", "geometry", "geoproperty"):
            if key in geo:
                items.append((key, str(geo[key])))
        if "coordinates" in geo:
            coordinates = geo["coordinates"]
            text = coordinates if isinstance(coordinates, str) else orjson.dumps(coordinates)
            items.append(("coordinates", text if isinstance(text, str) else text.decode()))
    return items


routes = [
    Route(f"{BASE}/query", batch_query, methods=["POST"]),
    Route(f"{BASE}/create", batch_create, methods=["POST"]),
    Route(f"{BASE}/upsert", batch_upsert, methods=["POST"]),
    Route(f"{BASE}/update", batch_update, methods=["POST"]),
    Route(f"{BASE}/merge", batch_merge, methods=["POST"]),
    Route(f"{BASE}/delete", batch_delete, methods=["POST"]),
]
