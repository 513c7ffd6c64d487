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
    """LdContextMetadata (clause 5.13.3.5)."""
    created = format_datetime(datetime.fromtimestamp(stored.created_at, UTC))
    return {
        "URL": stored.url,
        "localId": stored.id,
        "kind": stored.kind,
        "timestamp": created,
        # Earlier drafts and the conformance suite name the creation time createdAt.
        "createdAt": created,
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
    found = svc.contexts.listing(kind)
    body = (
        [_describe(c) for c in found]
        if params.flag(request.query_params, "details")
        else [c.url for c in found]
    )
    return respond(body, JSON, None)


async def add_context(request: Request) -> Response:
    svc = services(request)
    document = await read_json(request, svc.settings.max_body_bytes, {JSON, JSONLD})
    stored = await svc.contexts.add_hosted(document, str(request.base_url))
    return Response(status_code=201, headers={"Location": f"{BASE}/{stored.id}"})


async def get_context(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, {"details"})
    media = accepted(request, (JSON, JSONLD))
    stored = svc.contexts.find(request.path_params["context_id"])
    if params.flag(request.query_params, "details"):
        return respond(_describe(stored), JSON, None)
    return Response(orjson.dumps(stored.document), media_type=media)


async def delete_context(request: Request) -> Response:
    svc = services(request)
    params.check_known(request.query_params, {"reload"})
    reload = params.flag(request.query_params, "reload")
    await svc.contexts.delete(request.path_params["context_id"], reload=reload)
    return Response(status_code=204)


routes = [
    Route(BASE, list_contexts, methods=["GET"]),
    Route(BASE, add_context, methods=["POST"]),
    # A context is addressed by its local id or by its (URL-encoded) URL, which holds slashes.
    Route(f"{BASE}/{{context_id:path}}", get_context, methods=["GET"]),
    Route(f"{BASE}/{{context_id:path}}", delete_context, methods=["DELETE"]),
]
