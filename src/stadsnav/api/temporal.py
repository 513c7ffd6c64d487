"""Routes of the temporal API (clauses 6.18 – 6.22, 6.24): /temporal/entities and their
attributes and instances, and /temporal/entityOperations/query."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stadsnav.api import params
from stadsnav.api.batch import _query_items
from stadsnav.api.entities import page_links
from stadsnav.api.negotiation import JSON, JSONLD, accepted, read_body, respond, tenant_of
from stadsnav.api.services import Services, services
from stadsnav.ngsild.context import Context
from stadsnav.ngsild.errors import BadRequestData, InvalidRequest, OperationNotSupported
from stadsnav.ngsild.names import check_uri
from stadsnav.ngsild.projection import WHOLE
from stadsnav.ngsild.render import Representation
from stadsnav.ngsild.temporal import (
    Aggregation,
    Format,
    HistoryScan,
    parse_aggr_methods,
    parse_duration,
    parse_time_query,
    single_type_names,
)
from stadsnav.temporal import Temporal, TemporalRequest, TemporalResult

BASE = "/ngsi-ld/v1/temporal"

_TEMPORAL = {
    "timerel", "timeAt", "endTimeAt", "timeproperty", "lastN", "aggrMethods",
    "aggrPeriodDuration", "options", "format", "lang", "datasetId", "attrs", "local", "pick",
    "omit",
}  # fmt: skip
RETRIEVE = _TEMPORAL | {"type"}
QUERY = _TEMPORAL | {
    "id", "type", "idPattern", "q", "georel", "geometry", "coordinates", "geoproperty",
    "scopeQ", "limit", "offset", "count",
}  # fmt: skip
POST_QUERY = {"limit", "offset", "count", "options", "format", "lastN", "aggrMethods",
              "aggrPeriodDuration", "local"}  # fmt: skip
WRITE = {"local"}
ATTRIBUTE_DELETE = {"datasetId", "deleteAll", "local"}
_OPTIONS = {"temporalValues", "aggregatedValues", "sysAttrs", "count", "normalized", "concise"}
_NOT_YET = {"csf"}


def _temporal(request: Request) -> Temporal:
    svc = services(request)
    found: Temporal | None = getattr(request.app.state, "temporal", None)
    if found is None:
        found = Temporal(svc.broker.store, svc.settings.temporal_max_instances)
        request.app.state.temporal = found
    return found


def _check(query: QueryParams, allowed: set[str]) -> None:
    for key in query:
        if key in _NOT_YET:
            raise OperationNotSupported(f"The parameter {key!r} is not supported on temporal yet")
    params.check_known(query, allowed)


def _format(query: QueryParams) -> tuple[Format, set[str]]:
    found: set[str] = set()
    for raw in query.getlist("options"):
        for option in raw.split(","):
            option = option.strip()
            if option and option not in _OPTIONS:
                raise InvalidRequest(f"Unknown option {option!r:.100}")
            if option:
                found.add(option)
    formats = found & {"temporalValues", "aggregatedValues", "normalized", "concise"}
    fmt = query.get("format")
    if fmt is not None:
        if fmt not in ("temporalValues", "aggregatedValues", "normalized", "concise"):
            raise InvalidRequest(f"Unknown format {fmt!r:.100}")
        formats = {fmt}
    if len(formats) > 1:
        raise BadRequestData("Only one temporal representation may be asked for")
    chosen: Any = formats.pop() if formats else "normalized"
    return chosen, found


def temporal_request(
    query: QueryParams, ctx: Context, svc: Services, *, many: bool
) -> TemporalRequest:
    """The parameters of Query (5.7.4) or Retrieve (5.7.3) Temporal Evolution."""
    fmt, opts = _format(query)
    time = parse_time_query(
        query.get("timerel"),
        query.get("timeAt"),
        query.get("endTimeAt"),
        query.get("timeproperty"),
        required=many,
    )
    core = QueryParams(
        [(k, v) for k, v in query.multi_items() if k not in ("options", "format", "count")]
    )
    # A query (not a retrieval by id) selects by something, as in the core API (clause 5.7.3).
    base = params.entity_query(core, ctx, svc.settings, require_filter=many)
    last_n = None
    if "lastN" in query:
        last_n = params.integer(query, "lastN", 0)
        if last_n < 1:
            raise BadRequestData("lastN must be a positive integer")
    aggregation = None
    if fmt == "aggregatedValues":
        period = parse_duration(query.get("aggrPeriodDuration", "0"))
        aggregation = Aggregation(parse_aggr_methods(query.get("aggrMethods")), period)
    elif "aggrMethods" in query or "aggrPeriodDuration" in query:
        raise BadRequestData("aggrMethods and aggrPeriodDuration need aggregatedValues")
    datasets = None
    if "datasetId" in query:
        datasets = frozenset(
            d.strip() for raw in query.getlist("datasetId") for d in raw.split(",")
        )
        for dataset in datasets:
            if dataset != "@none":
                check_uri(dataset, "datasetId")
    scan = HistoryScan(
        time=time,
        ids=base.ids,
        id_pattern=base.id_pattern,
        types=single_type_names(base.types) if base.types is not None else None,
        attrs=base.attrs,
        datasets=datasets,
    )
    has_filter = base.q is not None or base.geo is not None or base.scope is not None
    projection = params.pick_or_omit(query, ctx) or WHOLE
    return TemporalRequest(
        scan=scan,
        fmt=fmt,
        rep=Representation(
            format="concise" if fmt == "concise" else "normalized",
            sys_attrs="sysAttrs" in opts,
            lang=query.get("lang"),
            projection=projection,
        ),
        filter=base if has_filter else None,
        last_n=last_n,
        aggregation=aggregation,
        limit=base.limit,
        offset=base.offset,
        count=params.flag(query, "count") or "count" in opts,
    )


def _answer(
    result: TemporalResult,
    media: str,
    reference: Any,
    headers: dict[str, str] | None = None,
    *,
    single: bool = False,
) -> Response:
    extra = dict(headers or {})
    if result.total is not None:
        extra["NGSILD-Results-Count"] = str(result.total)
    status = 200
    if result.content_range is not None:
        extra["Content-Range"] = result.content_range
        status = 206
    body: Any = result.entities[0] if single else result.entities
    return respond(body, media, reference, status=status, headers=extra)


async def query_temporal(request: Request) -> Response:
    svc = services(request)
    _check(request.query_params, QUERY)
    media = accepted(request, (JSON, JSONLD))
    ctx, reference = await svc.request_context(request)
    wanted = temporal_request(request.query_params, ctx, svc, many=True)
    result = await _temporal(request).query(tenant_of(request), wanted, ctx)
    headers = page_links(request, wanted.limit, wanted.offset, len(result.entities), result.total)
    return _answer(result, media, reference, headers)


async def query_temporal_post(request: Request) -> Response:
    """Query Temporal Evolution via POST (6.24): a Query with temporalQ in the body."""
    svc = services(request)
    _check(request.query_params, POST_QUERY)
    media = accepted(request, (JSON, JSONLD))
    body = await read_body(request, svc.settings.max_body_bytes)
    ctx = await svc.context(body.context)
    items = _query_items(body.payload)
    temporal = body.payload.get("temporalQ")
    if not isinstance(temporal, dict):
        raise BadRequestData("A temporal Query needs a temporalQ object")
    for key in ("timerel", "timeAt", "endTimeAt", "timeproperty"):
        if key in temporal:
            items.append((key, str(temporal[key])))
    if isinstance(body.payload.get("datasetId"), list):
        items.append(("datasetId", ",".join(str(d) for d in body.payload["datasetId"])))
    merged = QueryParams([*request.query_params.multi_items(), *items])
    wanted = temporal_request(merged, ctx, svc, many=True)
    result = await _temporal(request).query(tenant_of(request), wanted, ctx)
    return _answer(result, media, body.context)


async def retrieve_temporal(request: Request) -> Response:
    svc = services(request)
    _check(request.query_params, RETRIEVE)
    media = accepted(request, (JSON, JSONLD))
    ctx, reference = await svc.request_context(request)
    wanted = temporal_request(request.query_params, ctx, svc, many=False)
    entity_id = request.path_params["entity_id"]
    result = await _temporal(request).retrieve(tenant_of(request), entity_id, wanted, ctx)
    return _answer(result, media, reference, single=True)


async def upsert_temporal(request: Request) -> Response:
    svc = services(request)
    _check(request.query_params, WRITE)
    body = await read_body(request, svc.settings.max_body_bytes)
    ctx = await svc.context(body.context)
    entity_id, created = await _temporal(request).upsert(tenant_of(request), body.payload, ctx)
    if not created:
        return Response(status_code=204)
    location = f"{BASE}/entities/{quote(entity_id, safe=':')}"
    return Response(status_code=201, headers={"Location": location})


async def add_attrs_temporal(request: Request) -> Response:
    svc = services(request)
    _check(request.query_params, WRITE)
    body = await read_body(request, svc.settings.max_body_bytes)
    ctx = await svc.context(body.context)
    await _temporal(request).add_attrs(
        tenant_of(request), request.path_params["entity_id"], body.payload, ctx
    )
    return Response(status_code=204)


async def delete_attr_temporal(request: Request) -> Response:
    svc = services(request)
    _check(request.query_params, ATTRIBUTE_DELETE)
    ctx, _ = await svc.request_context(request)
    await _temporal(request).delete_attr(
        tenant_of(request),
        request.path_params["entity_id"],
        request.path_params["attr"],
        ctx,
        dataset_id=request.query_params.get("datasetId"),
        delete_all=params.flag(request.query_params, "deleteAll"),
    )
    return Response(status_code=204)


async def update_instance_temporal(request: Request) -> Response:
    svc = services(request)
    _check(request.query_params, WRITE)
    body = await read_body(request, svc.settings.max_body_bytes, patch=True)
    ctx = await svc.context(body.context)
    await _temporal(request).change_instance(
        tenant_of(request),
        request.path_params["entity_id"],
        request.path_params["attr"],
        request.path_params["instance_id"],
        body.payload,
        ctx,
    )
    return Response(status_code=204)


async def delete_instance_temporal(request: Request) -> Response:
    svc = services(request)
    _check(request.query_params, WRITE)
    ctx, _ = await svc.request_context(request)
    await _temporal(request).change_instance(
        tenant_of(request),
        request.path_params["entity_id"],
        request.path_params["attr"],
        request.path_params["instance_id"],
        None,
        ctx,
    )
    return Response(status_code=204)


async def delete_temporal(request: Request) -> Response:
    _check(request.query_params, WRITE)
    await _temporal(request).delete(tenant_of(request), request.path_params["entity_id"])
    return Response(status_code=204)


_ENTITY = f"{BASE}/entities/{{entity_id:path}}"
routes = [
    Route(f"{BASE}/entities", query_temporal, methods=["GET"]),
    Route(f"{BASE}/entities", upsert_temporal, methods=["POST"]),
    Route("/ngsi-ld/v1/temporal/entityOperations/query", query_temporal_post, methods=["POST"]),
    Route(f"{_ENTITY}/attrs/{{attr}}/{{instance_id}}", update_instance_temporal, methods=["PATCH"]),
    Route(
        f"{_ENTITY}/attrs/{{attr}}/{{instance_id}}", delete_instance_temporal, methods=["DELETE"]
    ),
    Route(f"{_ENTITY}/attrs/{{attr}}", delete_attr_temporal, methods=["DELETE"]),
    Route(f"{_ENTITY}/attrs", add_attrs_temporal, methods=["POST"]),
    Route(_ENTITY, retrieve_temporal, methods=["GET"]),
    Route(_ENTITY, delete_temporal, methods=["DELETE"]),
]
