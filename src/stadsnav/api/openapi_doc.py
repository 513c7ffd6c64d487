"""The server's OpenAPI document: ETSI's NGSI-LD OAS, restricted to what stadsnav implements."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

PREFIX = "/ngsi-ld/v1"


@cache
def _etsi_document() -> dict[str, Any]:
    text = (
        resources.files("stadsnav.api")
        .joinpath("openapi", "ngsi-ld-api-v1.8.1.json")
        .read_text("utf-8")
    )
    document: dict[str, Any] = json.loads(text)
    return document


def build_document(routes: list[BaseRoute]) -> dict[str, Any]:
    """Keep only the operations some route serves, with the server URL of this deployment."""
    served: dict[str, set[str]] = {}
    for route in routes:
        if isinstance(route, Route) and route.path.startswith(PREFIX):
            path = route.path[len(PREFIX) :].replace(":path}", "}")
            served.setdefault(path, set()).update(m.lower() for m in route.methods or ())
    document = copy.deepcopy(_etsi_document())
    kept: dict[str, Any] = {}
    for path, operations in document["paths"].items():
        ours = _match(path, served)
        if ours is None:
            continue
        item = {k: v for k, v in operations.items() if k not in _METHODS or k in ours}
        if any(k in _METHODS for k in item):
            kept[path] = item
    document["paths"] = kept
    document["servers"] = [{"url": PREFIX}]
    return document


_METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}


def _match(spec_path: str, served: dict[str, set[str]]) -> set[str] | None:
    """ETSI names path parameters differently ({entityId} vs {entity_id}); compare shapes."""
    shape = _shape(spec_path)
    for path, methods in served.items():
        if _shape(path) == shape:
            return methods
    return None


def _shape(path: str) -> tuple[str, ...]:
    return tuple("{}" if part.startswith("{") else part for part in path.split("/"))


def openapi_route(routes: list[BaseRoute]) -> Route:
    built: list[dict[str, Any]] = []

    async def openapi(request: Request) -> Response:
        if not built:
            built.append(build_document(routes))
        return JSONResponse(built[0])

    return Route(f"{PREFIX}/openapi.json", openapi, methods=["GET"])
