"""Errors rendered as RFC 7807 ProblemDetails (clause 5.5.2), in one place."""

from __future__ import annotations

import logging

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from stadsnav.ngsild.errors import (
    ERRORS_BASE,
    InternalError,
    InvalidRequest,
    NgsiLdError,
    ResourceNotFound,
)

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("stadsnav.api")

# Framework-level HTTP errors (no route, wrong method) and the NGSI-LD problem type they carry.
_HTTP_STATUS_PROBLEMS: dict[int, type[NgsiLdError]] = {
    404: ResourceNotFound,
    405: InvalidRequest,
}


def problem_response(error: NgsiLdError) -> Response:
    body = {
        "type": error.type_uri,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    return Response(orjson.dumps(body), status_code=error.status, media_type=PROBLEM_JSON)


async def handle_ngsild_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NgsiLdError)
    return problem_response(exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = _HTTP_STATUS_PROBLEMS.get(exc.status_code, InvalidRequest)
    error = kind(str(exc.detail))
    error.status = exc.status_code
    response = problem_response(error)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("Unhandled error on %s %s", request.method, request.url.path)
    return problem_response(InternalError("The server failed to handle the request"))


__all__ = ["ERRORS_BASE", "PROBLEM_JSON", "problem_response"]
