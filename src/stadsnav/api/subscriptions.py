"""Routes of the subscriptions resource (clause 5.8, 6.10 and 6.11): /subscriptions."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stadsnav.api import params
from stadsnav.api.entities import page_links
from stadsnav.api.negotiation import JSON, JSONLD, accepted, read_body, respond, tenant_of
from stadsnav.api.services import services
from stadsnav.ngsild.context import CORE_CONTEXT_URL
from stadsnav.ngsild.errors import TooManyResults
from stadsnav.notify.manager import Subscriptions

BASE = "/ngsi-ld/v1"
_WRITE = {"local"}
_LIST = {"limit", "offset", "count", "local", "options"}


def _operations(request: Request) -> Subscriptions:
    found = services(request).subscriptions
    assert found is not None, "the subscription service starts with the application"
    return found


async def create_subscription(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, _WRITE)
    body = await read_body(request, svc.settings.max_body_bytes)
    ctx = await svc.context(body.context)
    sub_id = await _operations(request).create(tenant_of(request), body.payload, body.context, ctx)
    return Response(
        status_code=201, headers={"Location": f"{BASE}/subscriptions/{quote(sub_id, safe=':')}"}
    )


async def query_subscriptions(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, _LIST)
    media = accepted(request, (JSON, JSONLD))
    limit = params.integer(request.query_params, "limit", svc.settings.query_default_limit)
    offset = params.integer(request.query_params, "offset", 0)
    if limit > svc.settings.query_max_limit:
        raise TooManyResults(f"limit may be at most {svc.settings.query_max_limit}")
    tenant = tenant_of(request)
    await svc.broker.check_tenant(tenant)
    shown, total = await _operations(request).query(
        tenant, limit, offset, sys_attrs="sysAttrs" in params.options(request.query_params)
    )
    headers = page_links(request, limit, offset, len(shown), total)
    if params.flag(request.query_params, "count"):
        headers["NGSILD-Results-Count"] = str(total)
    if media == JSONLD:
        # Each subscription carries the @context its names are in.
        bodies = [{**body, "@context": _embedded(context)} for body, context in shown]
        return Response(orjson.dumps(bodies), media_type=JSONLD, headers=headers)
    # One Link header names one @context: the subscriptions' own when they share one.
    contexts = {orjson.dumps(context) for _, context in shown}
    common = shown[0][1] if len(contexts) == 1 else None
    return respond([body for body, _ in shown], media, common, headers=headers)


async def retrieve_subscription(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, {"local", "options"})
    media = accepted(request, (JSON, JSONLD))
    tenant = tenant_of(request)
    await svc.broker.check_tenant(tenant)
    body, context = await _operations(request).retrieve(
        tenant,
        request.path_params["sub_id"],
        sys_attrs="sysAttrs" in params.options(request.query_params),
    )
    return respond(body, media, context)


async def update_subscription(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, _WRITE)
    body = await read_body(request, svc.settings.max_body_bytes, patch=True)
    ctx = None if body.context is None else await svc.context(body.context)
    tenant = tenant_of(request)
    await svc.broker.check_tenant(tenant)
    await _operations(request).update(
        tenant, request.path_params["sub_id"], body.payload, body.context, ctx
    )
    return Response(status_code=204)


async def delete_subscription(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, _WRITE)
    tenant = tenant_of(request)
    await svc.broker.check_tenant(tenant)
    await _operations(request).delete(tenant, request.path_params["sub_id"])
    return Response(status_code=204)


def _embedded(context: Any) -> Any:
    return context if context is not None else CORE_CONTEXT_URL


routes = [
    Route(f"{BASE}/subscriptions", create_subscription, methods=["POST"]),
    Route(f"{BASE}/subscriptions", query_subscriptions, methods=["GET"]),
    Route(f"{BASE}/subscriptions/{{sub_id:path}}", retrieve_subscription, methods=["GET"]),
    Route(f"{BASE}/subscriptions/{{sub_id:path}}", update_subscription, methods=["PATCH"]),
    Route(f"{BASE}/subscriptions/{{sub_id:path}}", delete_subscription, methods=["DELETE"]),
]
