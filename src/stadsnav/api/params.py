"""URL query parameters turned into the broker's frozen query and representation objects."""

from __future__ import annotations

import re

from starlette.datastructures import QueryParams

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.errors import (
    BadRequestData,
    InvalidRequest,
    OperationNotSupported,
    TooManyResults,
)
from stadsnav.ngsild.geoquery import parse_geoquery
from stadsnav.ngsild.join import MAX_LEVEL, Join, check_projection
from stadsnav.ngsild.names import check_uri
from stadsnav.ngsild.projection import (
    WHOLE,
    Projection,
    attribute_iri,
    only_attributes,
    parse_omit,
    parse_pick,
)
from stadsnav.ngsild.qlang import parse_q
from stadsnav.ngsild.query import EntityQuery, parse_scope_query, parse_type_expression
from stadsnav.ngsild.render import Format, Representation
from stadsnav.settings import Settings

_OPTIONS = frozenset(
    {
        "keyValues",
        "simplified",
        "concise",
        "normalized",
        "sysAttrs",
        "noOverwrite",
        "replace",
        "update",
        "count",
    }
)
_FORMATS: dict[str, Format] = {
    "keyValues": "keyValues",
    "simplified": "keyValues",
    "concise": "concise",
    "normalized": "normalized",
}


_REPRESENTATION = {
    "options", "format", "attrs", "pick", "omit", "lang", "geometryProperty", "datasetId",
    "join", "joinLevel", "containedBy",
}  # fmt: skip
# The URL parameters each kind of request understands (clause 6.3.20: others are refused).
ENTITY_QUERY = _REPRESENTATION | {
    "id", "type", "idPattern", "q", "georel", "geometry", "coordinates", "geoproperty",
    "scopeQ", "limit", "offset", "count", "local",
}  # fmt: skip
ENTITY_RETRIEVE = _REPRESENTATION | {"type", "local"}
ENTITY_WRITE = {"options", "type", "local"}
ATTRIBUTE_DELETE = {"datasetId", "deleteAll", "type", "local"}
BATCH = {"options", "local"}
PURGE = ENTITY_QUERY
DETAILS = {"details", "limit", "offset", "local"}
CONTEXTS = {"details", "kind"}
# Parameters of the spec that stadsnav does not implement yet (docs/api.md).
_NOT_YET = {"csf", "entityMap", "orderBy"}


def check_known(params: QueryParams, allowed: set[str]) -> None:
    for key in params:
        if key in allowed:
            continue
        if key in _NOT_YET:
            raise OperationNotSupported(f"The parameter {key!r} is not supported yet")
        raise InvalidRequest(f"Unknown URL parameter {key!r:.100}")


def flag(params: QueryParams, name: str) -> bool:
    """A true/false URL parameter (false when absent)."""
    value = params.get(name, "false").lower()
    if value not in ("true", "false"):
        raise BadRequestData(f"{name} must be true or false")
    return value == "true"


def options(params: QueryParams) -> set[str]:
    found: set[str] = set()
    for raw in params.getlist("options"):
        for option in raw.split(","):
            option = option.strip()
            if not option:
                continue
            if option not in _OPTIONS:
                raise InvalidRequest(f"Unknown option {option!r:.100}")
            found.add(option)
    return found


def join(params: QueryParams, rep: Representation) -> Join | None:
    """Linked entity retrieval (clause 4.5.23): `join` (flat, inline, @none), `joinLevel` and
    `containedBy`, which mean nothing without a join and are then only checked."""
    kind = params.get("join")
    if kind not in (None, "flat", "inline", "@none"):
        raise BadRequestData("join must be flat, inline or @none")
    level = integer(params, "joinLevel", 1)
    if not 1 <= level <= MAX_LEVEL:
        raise BadRequestData(f"joinLevel must be between 1 and {MAX_LEVEL}")
    contained_by = _names(params, "containedBy") or []
    for entity_id in contained_by:
        check_uri(entity_id, "An id in containedBy")
    linked = None
    if kind in ("flat", "inline"):
        linked = Join(inline=kind == "inline", level=level, contained_by=frozenset(contained_by))
    check_projection(rep, linked)
    return linked


def _names(params: QueryParams, key: str) -> list[str] | None:
    values = params.getlist(key)
    if not values:
        return None
    names = [n.strip() for raw in values for n in raw.split(",")]
    if not all(names):
        raise BadRequestData(f"{key} has an empty name: {','.join(values)!r:.200}")
    if any("{" in n or "}" in n for n in names):
        raise BadRequestData(f"{key} takes plain names; only pick and omit nest with {{...}}")
    return names


def _projection_text(params: QueryParams, key: str) -> str | None:
    values = params.getlist(key)
    return ",".join(values) if values else None


def pick_or_omit(params: QueryParams, ctx: Context) -> Projection | None:
    """The projection `pick` or `omit` asks for (clause 4.21); None when neither is given.
    They exclude each other and `attrs` (BadRequestData)."""
    pick = _projection_text(params, "pick")
    omit = _projection_text(params, "omit")
    if pick is None and omit is None:
        return None
    if "attrs" in params:
        raise BadRequestData("attrs cannot be combined with pick or omit")
    if pick is not None and omit is not None:
        raise BadRequestData("pick and omit cannot be used together")
    return parse_pick(pick, ctx) if pick is not None else parse_omit(str(omit), ctx)


def representation(params: QueryParams, ctx: Context) -> Representation:
    opts = options(params)
    formats = {_FORMATS[o] for o in opts if o in _FORMATS}
    fmt = params.get("format")
    if fmt is not None:
        if fmt not in _FORMATS:
            raise InvalidRequest(f"Unknown format {fmt!r:.100}")
        formats = {_FORMATS[fmt]}
    if len(formats) > 1:
        raise BadRequestData("Only one of keyValues, concise and normalized may be asked for")
    attrs_names = _names(params, "attrs")
    projection = pick_or_omit(params, ctx)
    if projection is None:
        projection = WHOLE if attrs_names is None else only_attributes(attrs_names, ctx)
    lang = params.get("lang")
    datasets = _names(params, "datasetId")
    if datasets is not None:
        for dataset in datasets:
            if dataset != "@none":
                check_uri(dataset, "datasetId")
    return Representation(
        dataset_ids=None if datasets is None else frozenset(datasets),
        format=formats.pop() if formats else "normalized",
        sys_attrs="sysAttrs" in opts,
        projection=projection,
        attributes_only=attrs_names is not None,
        lang=lang,
        geometry_property=ctx.expand(params.get("geometryProperty", "location")),
    )


def entity_query(
    params: QueryParams, ctx: Context, settings: Settings, *, require_filter: bool = True
) -> EntityQuery:
    """Build the query of GET /entities (clause 5.7.2) and friends."""
    ids = _names(params, "id")
    if ids is not None:
        for entity_id in ids:
            check_uri(entity_id, "Entity id")
    id_pattern = params.get("idPattern")
    if id_pattern is not None:
        _check_pattern(id_pattern)
    type_text = params.get("type")
    types = parse_type_expression(type_text, ctx) if type_text is not None else None
    attrs_names = _names(params, "attrs")
    q_text = params.get("q")
    q = parse_q(q_text, ctx) if q_text is not None else None
    geo = parse_geoquery(
        params.get("georel"),
        params.get("geometry"),
        params.get("coordinates"),
        params.get("geoproperty"),
        ctx,
    )
    scope_text = params.get("scopeQ")
    scope = parse_scope_query(scope_text) if scope_text else None
    local = params.get("local")
    if (
        require_filter
        and not any(x is not None for x in (ids, id_pattern, types, attrs_names, q, geo, scope))
        and local is None
    ):
        raise BadRequestData(
            "A query needs at least one of id, idPattern, type, attrs, q, geoQ or scopeQ"
        )
    limit = integer(params, "limit", settings.query_default_limit)
    offset = integer(params, "offset", 0)
    if limit > settings.query_max_limit:
        raise TooManyResults(f"limit may be at most {settings.query_max_limit}")
    attr_filter = None
    if attrs_names is not None and "pick" not in params:
        attr_filter = tuple(attribute_iri(n, ctx) for n in attrs_names)
    return EntityQuery(
        ids=tuple(ids) if ids is not None else None,
        id_pattern=id_pattern,
        types=types,
        attrs=attr_filter,
        q=q,
        geo=geo,
        scope=scope,
        limit=limit,
        offset=offset,
        count=flag(params, "count") or "count" in options(params),
    )


def integer(params: QueryParams, key: str, default: int, most: int | None = None) -> int:
    """A non-negative whole-number parameter (at most `most`), or its default when absent."""
    raw = params.get(key)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 9 or (most is not None and int(raw) > most):
        limit = "" if most is None else f" up to {most}"
        raise BadRequestData(f"{key} must be a non-negative integer{limit}")
    return int(raw)


def _check_pattern(pattern: str) -> None:
    if len(pattern) > 1024:
        raise BadRequestData("idPattern is too long")
    try:
        re.compile(pattern)
    except re.error as error:
        raise BadRequestData(f"idPattern is not a valid regular expression: {error}") from None
