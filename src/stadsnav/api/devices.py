"""Routes of the device registry (a platform API, not NGSI-LD; docs/devices.md).

Every route hands the request to a devices.registry.Registry, the same the command line uses;
errors are NGSI-LD problem types, rendered as ProblemDetails like everywhere else. Who made a
change is the organisation in the ``Stadsnav-Actor`` header, or the device's owner without one,
until access control names the caller.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stadsnav.api import params
from stadsnav.api.negotiation import GEOJSON, JSON, read_bytes, read_json, tenant_of
from stadsnav.api.services import services
from stadsnav.devices import importing
from stadsnav.devices.profiles import PROFILES
from stadsnav.devices.registration import device_query, parse_organisation
from stadsnav.devices.registry import Registry
from stadsnav.devices.views import conflict_json, device_json, event_json, profile_json
from stadsnav.ngsild.errors import ResourceNotFound, UnsupportedMediaType

BASE = "/devices"
ACTOR_HEADER = "Stadsnav-Actor"
CSV = "text/csv"
_DEFAULT_LIMIT = 100


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def _registry(request: Request) -> Registry:
    svc = services(request)
    return Registry(
        svc.broker, radius=svc.settings.devices_couse_radius, forget=svc.pipeline.forget_device
    )


def _actor(request: Request) -> str | None:
    raw = request.headers.get(ACTOR_HEADER)
    return None if raw is None else parse_organisation(raw, ACTOR_HEADER)


async def _body(request: Request) -> Any:
    return await read_json(request, services(request).settings.max_body_bytes, {JSON})


async def register(request: Request) -> Response:
    params.check_known(request.query_params, set())
    body = await _body(request)
    device = await _registry(request).register(tenant_of(request), body, _actor(request))
    return _json(device_json(device), 201)


async def list_devices(request: Request) -> Response:
    query = request.query_params
    params.check_known(query, {"owner", "state", "model", "property", "limit", "offset"})
    most = services(request).settings.query_max_limit
    found = await _registry(request).find(
        tenant_of(request),
        device_query(
            owner=query.get("owner"),
            state=query.get("state"),
            model=query.get("model"),
            controlled_property=query.get("property"),
            limit=params.integer(query, "limit", _DEFAULT_LIMIT, most),
            offset=params.integer(query, "offset", 0),
        ),
    )
    return _json([device_json(d) for d in found])


async def get_device(request: Request) -> Response:
    params.check_known(request.query_params, set())
    found = await _registry(request).get(tenant_of(request), request.path_params["key"])
    return _json(device_json(found.device, found.status))


async def change_device(request: Request) -> Response:
    params.check_known(request.query_params, set())
    body = await _body(request)
    device = await _registry(request).update(
        tenant_of(request), request.path_params["key"], body, _actor(request)
    )
    return _json(device_json(device))


async def transition(request: Request) -> Response:
    params.check_known(request.query_params, set())
    body = await _body(request)
    device = await _registry(request).transition(
        tenant_of(request), request.path_params["key"], body, _actor(request)
    )
    return _json(device_json(device))


async def history(request: Request) -> Response:
    params.check_known(request.query_params, set())
    events = await _registry(request).history(tenant_of(request), request.path_params["key"])
    return _json([event_json(e) for e in events])


async def check(request: Request) -> Response:
    """The co-use check: devices on site that already serve a planned device's purpose."""
    params.check_known(request.query_params, set())
    body = await _body(request)
    question, found = await _registry(request).check(tenant_of(request), body)
    return _json(
        {
            "controlledProperty": sorted(question.planned.properties),
            "location": list(question.planned.location),
            "radius": question.radius,
            "devices": [conflict_json(c) for c in found],
        }
    )


async def import_fleet(request: Request) -> Response:
    """Bulk import: a CSV or GeoJSON file in the body; `owner` and `state` fill empty cells."""
    query = request.query_params
    params.check_known(query, {"owner", "state"})
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in (CSV, GEOJSON, JSON):
        raise UnsupportedMediaType(
            f"An import is {CSV} or {GEOJSON} (or {JSON}), got {media or 'none'!r}"
        )
    svc = services(request)
    defaults = importing.Defaults(owner=query.get("owner"), state=query.get("state"))
    data = await read_bytes(request, svc.settings.max_body_bytes)
    rows = importing.read_file(data, "csv" if media == CSV else "geojson", defaults)
    report = await importing.import_rows(
        _registry(request), tenant_of(request), rows, actor=_actor(request)
    )
    return _json(report.as_json())


async def list_profiles(request: Request) -> Response:
    params.check_known(request.query_params, set())
    return _json([profile_json(p) for p in PROFILES.values()])


async def get_profile(request: Request) -> Response:
    params.check_known(request.query_params, set())
    model = request.path_params["model"]
    if model not in PROFILES:
        raise ResourceNotFound(f"No profile for device model {model!r:.60}")
    return _json(profile_json(PROFILES[model]))


routes = [
    Route(BASE, register, methods=["POST"]),
    Route(BASE, list_devices, methods=["GET"]),
    Route(f"{BASE}/check", check, methods=["POST"]),
    Route(f"{BASE}/import", import_fleet, methods=["POST"]),
    Route(f"{BASE}/profiles", list_profiles, methods=["GET"]),
    Route(f"{BASE}/profiles/{{model}}", get_profile, methods=["GET"]),
    Route(f"{BASE}/{{key}}", get_device, methods=["GET"]),
    Route(f"{BASE}/{{key}}", change_device, methods=["PATCH"]),
    Route(f"{BASE}/{{key}}/transitions", transition, methods=["POST"]),
    Route(f"{BASE}/{{key}}/history", history, methods=["GET"]),
]
