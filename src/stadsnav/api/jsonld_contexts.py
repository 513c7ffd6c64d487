"""Routes of the @context registry (clause 6.30 – 6.31): /jsonldContexts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stadsnav.api import params
from stadsnav.api.negotiation import JSON, JSONLD, accepted, read_json, respond
from stadsnav.api.services import services
from stadsnav.contexts import StoredContext
from stadsnav.ngsild.errors import BadRequestData
from stadsnav.ngsild.names import format_datetime

BASE = "/ngsi-ld/v1/jsonldContexts"
_KINDS = ("Hosted", "Cached", "ImplicitlyCreated")


def _describe(stored: StoredContext) -> dict[str, Any]:
    return {
        "id": stored.id,
        "url": stored.url,
        "kind": stored.kind,
        "createdAt": format_datetime(datetime.fromtimestamp(stored.created_at, UTC)),
        "lastUsage": format_datetime(datetime.fromtimestamp(stored.last_usage, UTC)),
        "numberOfHits": stored.uses,
    }


async def list_contexts(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, params.CONTEXTS)
    accepted(request, (JSON, JSONLD))
    kind = request.query_params.get("kind")
    if kind is not None and kind not in _KINDS:
        raise BadRequestData(f"kind must be one of {', '.join(_KINDS)}")
    details = request.query_params.get("details", "false")
    if details not in ("true", "false"):
        raise BadRequestData("details must be true or false")
    found = svc.contexts.listing(kind)
    body = [_describe(c) for c in found] if details == "true" else [c.url for c in found]
    return respond(body, JSON, None)


async def add_context(request: Request) -> Response:
    svc = services(request)
    document = await read_json(request, svc.settings.max_body_bytes, {JSON, JSONLD})
    stored = svc.contexts.add_hosted(document, str(request.base_url))
    return Response(status_code=201, headers={"Location": f"{BASE}/{stored.id}"})


async def get_context(request: Request) -> Response:
    svc = services(request)
    accepted(request, (JSON, JSONLD))
    stored = svc.contexts.find(request.path_params["context_id"])
    details = request.query_params.get("details", "false")
    if details == "true":
        return respond(_describe(stored), JSON, None)
    return Response(orjson.dumps(stored.document), media_type=JSONLD)


async def delete_context(request: Request) -> Response:
    svc = services(request)
    svc.contexts.delete(request.path_params["context_id"])
    return Response(status_code=204)


routes = [
    Route(BASE, list_contexts, methods=["GET"]),
    Route(BASE, add_context, methods=["POST"]),
    Route(f"{BASE}/{{context_id}}", get_context, methods=["GET"]),
    Route(f"{BASE}/{{context_id}}", delete_context, methods=["DELETE"]),
]
