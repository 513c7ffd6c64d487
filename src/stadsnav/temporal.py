"""The temporal operations (clauses 5.6.11 – 5.6.16, 5.7.3, 5.7.4) and history retention, on
top of a store: what the temporal API asks, translated into history scans and writes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.entity import (
    VALUE_KEY,
    Instance,
    expand_attribute_name,
    expand_instance,
    expand_types,
)
from stadsnav.ngsild.errors import BadRequestData, NonexistentTenant, ResourceNotFound
from stadsnav.ngsild.names import check_uri, format_datetime
from stadsnav.ngsild.projection import WHOLE
from stadsnav.ngsild.query import EntityQuery
from stadsnav.ngsild.render import Representation
from stadsnav.ngsild.temporal import (
    Aggregation,
    Duration,
    Format,
    HistoryInstance,
    HistoryScan,
    instance_time,
    parse_duration,
    render_aggregated,
    render_temporal,
)
from stadsnav.store.base import DEFAULT_TENANT, HistoryRow, Store

log = logging.getLogger("stadsnav")
# The most candidates a q, geo or scope filter hands to a history scan.
_MOST_CANDIDATES = 100_000


@dataclass(frozen=True)
class TemporalRequest:
    scan: HistoryScan
    fmt: Format = "normalized"
    rep: Representation = field(default_factory=Representation)
    # q, geo and scopeQ: matched on the entities as they are now.
    filter: EntityQuery | None = None
    last_n: int | None = None
    aggregation: Aggregation | None = None
    limit: int = 20
    offset: int = 0
    count: bool = False


@dataclass
class TemporalResult:
    entities: list[dict[str, Any]]
    total: int | None = None
    # When instances were left out: Content-Range (clause 6.3.10) of what is returned.
    content_range: str | None = None


class Temporal:
    def __init__(self, store: Store, max_instances: int) -> None:
        self.store = store
        self.max_instances = max_instances

    async def _check_tenant(self, tenant: str) -> None:
        if tenant != DEFAULT_TENANT and not await self.store.tenant_exists(tenant):
            raise NonexistentTenant(f"Tenant {tenant!r} does not exist")

    # -- reads -------------------------------------------------------------------------------

    async def query(self, tenant: str, request: TemporalRequest, ctx: Context) -> TemporalResult:
        await self._check_tenant(tenant)
        scan = request.scan
        if request.filter is not None:
            chosen = replace(request.filter, limit=_MOST_CANDIDATES, offset=0, count=False)
            candidates, _ = await self.store.query(tenant, chosen)
            scan = replace(scan, ids=tuple(e.id for e in candidates))
        page, total = await self.store.history_entities(
            tenant, scan, request.limit, request.offset, request.count
        )
        return await self._render(tenant, page, replace(request, scan=scan), ctx, total)

    async def retrieve(
        self, tenant: str, entity_id: str, request: TemporalRequest, ctx: Context
    ) -> TemporalResult:
        check_uri(entity_id, "Entity id")
        await self._check_tenant(tenant)
        kind = await self.store.history_type(tenant, entity_id)
        if kind is None:
            raise ResourceNotFound(f"Entity {entity_id} has no temporal representation")
        scan = replace(request.scan, ids=(entity_id,))
        found = await self._render(tenant, [(entity_id, kind)], replace(request, scan=scan), ctx)
        if not found.entities or (
            scan.attrs is not None and not _has_attributes(found.entities[0])
        ):
            # As with a core retrieval whose `attrs` or `pick` leave nothing of the entity.
            raise ResourceNotFound(f"Entity {entity_id} has no history of those attributes")
        return found

    async def _render(
        self,
        tenant: str,
        page: list[tuple[str, str]],
        request: TemporalRequest,
        ctx: Context,
        total: int | None = None,
    ) -> TemporalResult:
        ids = [i for i, _ in page]
        current = await self.store.get_many(tenant, ids) if ids else {}
        types = {i: current[i].types if i in current else ([t] if t else []) for i, t in page}
        if request.aggregation is not None:
            if not ids:
                return TemporalResult([], total)
            # At most max_instances periods per attribute (clause 6.3.10, as for instances):
            # beyond, the periods every attribute has whole, said as a Content-Range.
            aggregation = replace(request.aggregation, most_periods=self.max_instances)
            found = await self.store.history_aggregate(tenant, request.scan, ids, aggregation)
            grouped: dict[str, dict[str, dict[str | None, tuple[str, Any]]]] = {}
            for s in found.series:
                attrs = grouped.setdefault(s.entity_id, {})
                attrs.setdefault(s.attr, {})[s.dataset_id] = (s.kind, s.results)
            bodies = [render_aggregated(i, types[i], grouped.get(i, {}), ctx) for i in ids]
            content_range = None
            if found.content_range is not None:
                start, stop = found.content_range
                content_range = f"date-time {_short(start)}-{_short(stop)}/*"
            return TemporalResult(_projected(bodies, request.rep, ctx), total, content_range)
        rows, content_range = await self._instances(tenant, request, ids)
        by_entity: dict[str, list[HistoryInstance]] = {}
        for row in rows:
            by_entity.setdefault(row.entity_id, []).append(
                HistoryInstance(
                    row.attr, row.dataset_id, row.observed_at, row.instance_id, row.instance
                )
            )
        bodies = [
            render_temporal(
                i, types[i], by_entity.get(i, []), ctx, request.rep, request.fmt, request.scan.time
            )
            for i in ids
        ]
        return TemporalResult(_projected(bodies, request.rep, ctx), total, content_range)

    async def _instances(
        self, tenant: str, request: TemporalRequest, ids: list[str]
    ) -> tuple[list[HistoryRow], str | None]:
        """The instances of these entities, at most max_instances per attribute: when more are
        there, only a time range every attribute has whole is returned, and said as a
        Content-Range (ascending; newest first with lastN)."""
        if not ids:
            return [], None
        cap = self.max_instances
        newest = request.last_n is not None
        most = min(request.last_n, cap + 1) if request.last_n is not None else cap + 1
        rows = await self.store.history_instances(tenant, request.scan, ids, most, newest=newest)
        prop = request.scan.time.timeproperty
        series: dict[tuple[str, str], list[HistoryRow]] = {}
        for row in rows:
            series.setdefault((row.entity_id, row.attr), []).append(row)
        cut = [s for s in series.values() if len(s) > cap]
        if not cut:
            return rows, None
        time = request.scan.time

        def at(row: HistoryRow) -> str:
            return instance_time(row.instance, prop, row.observed_at)

        if newest:
            # Each cut series keeps its newest `cap`; what all keep whole starts at the latest
            # of their oldest kept instants.
            begin = max(at(s[1]) for s in cut)
            kept = [r for r in rows if at(r) >= begin]
            end = time.end_time_at if time.timerel == "between" else None
            if time.timerel == "before":
                end = time.time_at
            end = end or max(at(r) for r in kept)
            return kept, f"date-time {_short(end)}-{_short(begin)}/{request.last_n}"
        stop = min(at(s[cap]) for s in cut)
        kept = [r for r in rows if at(r) < stop]
        start = time.time_at if time.timerel in ("after", "between") else None
        start = start or min(at(r) for r in kept)
        return kept, f"date-time {_short(start)}-{_short(stop)}/*"

    # -- writes (5.6.11 – 5.6.16) -----------------------------------------------------------

    async def upsert(self, tenant: str, payload: Any, ctx: Context) -> tuple[str, bool]:
        """Create or Update Temporal Representation of an Entity (5.6.11): True if created."""
        if not isinstance(payload, dict):
            raise BadRequestData("The payload must be a JSON object")
        entity_id = check_uri(payload.get("id", payload.get("@id")), "Entity id")
        raw_type = payload.get("type", payload.get("@type"))
        if raw_type is None:
            raise BadRequestData("A temporal entity needs a 'type'")
        types = expand_types(raw_type, ctx)
        rows = _rows(entity_id, types[0], payload, ctx)
        created = await self.store.history_type(tenant, entity_id) is None
        await self.store.add_history(tenant, rows)
        return entity_id, created

    async def add_attrs(self, tenant: str, entity_id: str, payload: Any, ctx: Context) -> None:
        """Add Attributes to Temporal Representation of an Entity (5.6.12)."""
        check_uri(entity_id, "Entity id")
        if not isinstance(payload, dict):
            raise BadRequestData("The payload must be a JSON object")
        await self._check_tenant(tenant)
        kind = await self.store.history_type(tenant, entity_id)
        if kind is None:
            raise ResourceNotFound(f"Entity {entity_id} has no temporal representation")
        await self.store.add_history(tenant, _rows(entity_id, kind, payload, ctx))

    async def delete_attr(
        self,
        tenant: str,
        entity_id: str,
        attr: str,
        ctx: Context,
        *,
        dataset_id: str | None,
        delete_all: bool,
    ) -> None:
        """Delete Attribute from Temporal Representation of an Entity (5.6.13)."""
        check_uri(entity_id, "Entity id")
        if dataset_id is not None:
            check_uri(dataset_id, "datasetId")
        await self._check_tenant(tenant)
        iri = expand_attribute_name(attr, ctx)
        if not await self.store.delete_history(tenant, entity_id, iri, dataset_id, delete_all):
            raise ResourceNotFound(f"Attribute {attr} has no temporal representation")

    async def change_instance(
        self,
        tenant: str,
        entity_id: str,
        attr: str,
        instance_id: str,
        payload: Any,
        ctx: Context,
    ) -> None:
        """Partial Update Attribute instance (5.6.14), or delete it (5.6.15) without payload."""
        check_uri(entity_id, "Entity id")
        check_uri(instance_id, "Instance id")
        await self._check_tenant(tenant)
        iri = expand_attribute_name(attr, ctx)
        change = None
        if payload is not None:
            fresh = _instance_patch(attr, iri, payload, ctx)

            def change(stored: Instance) -> Instance:
                if fresh.get("type", stored["type"]) != stored["type"]:
                    stored.pop(VALUE_KEY[stored["type"]], None)
                merged = {**stored, **fresh}
                merged["createdAt"] = stored.get("createdAt", fresh["modifiedAt"])
                return merged

        if not await self.store.change_history_instance(
            tenant, entity_id, iri, instance_id, change
        ):
            raise ResourceNotFound(f"Instance {instance_id} of {attr} not found")

    async def delete(self, tenant: str, entity_id: str) -> None:
        """Delete Temporal Representation of an Entity (5.6.16)."""
        check_uri(entity_id, "Entity id")
        await self._check_tenant(tenant)
        if not await self.store.delete_history(tenant, entity_id):
            raise ResourceNotFound(f"Entity {entity_id} has no temporal representation")

    # -- retention ---------------------------------------------------------------------------

    async def expire(
        self, retention: Mapping[str, Duration], now: datetime, *, chunk: int = 200
    ) -> int:
        """Delete history older than its type's retention ("*": every other type), a chunk of
        entities per transaction; whole time partitions are dropped when every type expires."""
        specific = {t: d for t, d in retention.items() if t != "*"}
        deleted = 0
        for kind, duration in specific.items():
            deleted += await self._expire(
                _before(now, duration), frozenset({kind}), frozenset(), chunk
            )
        if "*" in retention:
            deleted += await self._expire(
                _before(now, retention["*"]), None, frozenset(specific), chunk
            )
            oldest = min(_before(now, d) for d in retention.values())
            await self.store.drop_history_partitions(oldest)
        return deleted

    async def _expire(
        self, before: str, types: frozenset[str] | None, keep: frozenset[str], chunk: int
    ) -> int:
        deleted = 0
        after: tuple[str, str] | None = ("", "")
        while after is not None:
            count, after = await self.store.expire_history(before, types, keep, chunk, after)
            deleted += count
        return deleted


def _has_attributes(body: dict[str, Any]) -> bool:
    return any(key not in _ENTITY_MEMBERS for key in body)


def _projected(bodies: list[dict[str, Any]], rep: Representation, ctx: Context) -> list[Any]:
    """pick and omit (clause 4.21) on rendered temporal entities; an entity they leave
    nothing of is left out."""
    if rep.projection == WHOLE:
        return bodies
    shown = []
    for body in bodies:
        kept = {
            key: value
            for key, value in body.items()
            if rep.keeps(key if key in _ENTITY_MEMBERS else ctx.expand(key))
        }
        if kept:
            shown.append(kept)
    return shown


# Members of a rendered temporal entity that are not attributes.
_ENTITY_MEMBERS = frozenset({"id", "type", "scope", "@context", "createdAt", "modifiedAt"})


def _before(now: datetime, duration: Duration) -> str:
    return format_datetime(duration.after(now.astimezone(UTC), -1))


def _short(moment: str) -> str:
    return moment[:-8] + "Z" if moment.endswith(".000000Z") else moment


def _rows(entity_id: str, kind: str, payload: dict[str, Any], ctx: Context) -> list[HistoryRow]:
    """The history rows of a temporal entity (fragment): each attribute one instance or an
    array of instances, any number of them per datasetId."""
    stamp = format_datetime(datetime.now(UTC))
    rows = []
    for name, raw in payload.items():
        if name in ("id", "@id", "type", "@type", "@context", "scope", "createdAt", "modifiedAt"):
            continue
        iri = expand_attribute_name(name, ctx)
        for item in raw if isinstance(raw, list) else [raw]:
            if not isinstance(item, dict):
                raise BadRequestData(f"Attribute {name!r} must hold attribute instances")
            instance = expand_instance(name, item, ctx, stamp)
            observed = instance.get("observedAt", stamp)
            rows.append(
                HistoryRow(entity_id, iri, instance.get("datasetId"), observed, instance, kind)
            )
    return rows


def _instance_patch(attr: str, iri: str, payload: Any, ctx: Context) -> Instance:
    """The instance a Partial Update Attribute instance brings: a fragment {attr: instance}
    (the OpenAPI's EntityTemporal fragment) or the instance itself (as ETSI's suite sends)."""
    if not isinstance(payload, dict):
        raise BadRequestData("The payload must be a JSON object")
    body = {k: v for k, v in payload.items() if k != "@context"}
    raw: Any
    if body.get("type") in VALUE_KEY:
        raw = body
    else:
        names = [n for n in body if expand_attribute_name(n, ctx) == iri]
        if len(body) != 1 or not names:
            raise BadRequestData(f"The payload must hold the attribute {attr} and nothing else")
        raw = body[names[0]]
    if isinstance(raw, list):
        if len(raw) != 1:
            raise BadRequestData("Exactly one attribute instance may be given")
        raw = raw[0]
    if not isinstance(raw, dict):
        raise BadRequestData(f"Attribute {attr!r} must hold an attribute instance")
    stamp = format_datetime(datetime.now(UTC))
    if "type" not in raw and not raw.keys() & set(VALUE_KEY.values()):
        raise BadRequestData("An attribute instance needs a value")
    return expand_instance(attr, raw, ctx, stamp)


def retention_by_type(retention: Mapping[str, str]) -> dict[str, Duration]:
    """The history_retention setting with each type as an IRI (short names expanded with the
    core @context) and each duration parsed; BadRequestData names a bad entry."""
    core = Context.build()
    parsed: dict[str, Duration] = {}
    for name, text in retention.items():
        duration = parse_duration(text, f"history_retention[{name!r}]")
        if duration.is_zero:
            raise BadRequestData(f"history_retention[{name!r}] must be longer than zero")
        parsed[name if name == "*" else core.expand(name)] = duration
    return parsed


async def keep_retention(temporal: Temporal, retention: Mapping[str, str], interval: float) -> None:
    """Delete history past its retention now and then every `interval` seconds."""
    by_type = retention_by_type(retention)
    while True:
        try:
            removed = await temporal.expire(by_type, datetime.now(UTC))
        except Exception:
            log.exception("Deleting history past its retention failed; retrying later")
        else:
            if removed:
                log.info("Deleted %d history rows past their retention", removed)
        await asyncio.sleep(interval)
