"""The NGSI-LD operations on top of a store: the one place where validation and writes meet.

Payloads arrive parsed (JSON) with their active @context; the broker expands and validates them,
applies the operation's semantics (ngsild/update.py), and writes through the store, which runs
each read-change-write atomically so concurrent writers never lose each other's updates.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stadsnav.ngsild import update
from stadsnav.ngsild.context import Context
from stadsnav.ngsild.entity import (
    Entity,
    expand_attribute,
    expand_attribute_name,
    expand_attrs,
    expand_entity,
    expand_fragment,
    expand_types,
    parse_scopes,
)
from stadsnav.ngsild.errors import (
    AlreadyExists,
    BadRequestData,
    NgsiLdError,
    NonexistentTenant,
    ResourceNotFound,
)
from stadsnav.ngsild.names import check_uri, format_datetime, normalize_datetime
from stadsnav.ngsild.query import EntityQuery
from stadsnav.store.base import AttributeStat, HistoryRow, Store, TypeStat, UplinkKey


def now() -> str:
    return format_datetime(datetime.now(UTC))


@dataclass
class BatchResult:
    success: list[str] = field(default_factory=list)
    errors: list[tuple[str, NgsiLdError]] = field(default_factory=list)


class Broker:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._known_tenants: set[str] = set()
        # Device data names its terms with the core context alone (default vocabulary).
        self._core = Context.build()

    # -- tenants -------------------------------------------------------------------------------

    async def check_tenant(self, tenant: str) -> None:
        """Reads on a tenant nobody has written to are NonexistentTenant (404)."""
        if tenant in self._known_tenants:
            return
        if not await self.store.tenant_exists(tenant):
            raise NonexistentTenant(f"Tenant {tenant!r} does not exist")
        self._known_tenants.add(tenant)

    # -- single entity -------------------------------------------------------------------------

    async def create(self, tenant: str, payload: Any, ctx: Context) -> str:
        entity = expand_entity(payload, ctx, now())
        await self.store.insert(tenant, entity)
        self._known_tenants.add(tenant)
        return entity.id

    async def retrieve(self, tenant: str, entity_id: str) -> Entity:
        check_uri(entity_id, "Entity id")
        await self.check_tenant(tenant)
        entity = await self.store.get(tenant, entity_id)
        if entity is None:
            raise ResourceNotFound(f"Entity {entity_id} not found")
        return entity

    async def linked(
        self,
        tenant: str,
        entities: list[Entity],
        level: int,
        wanted: Callable[[dict[str, Entity]], set[str]],
    ) -> dict[str, Entity]:
        """The entities a join (4.5.23) reaches within `level` hops, the given ones included.

        `wanted` names, from what is known so far, the ids still to fetch: which Relationships
        a join follows depends on the projection, which only ngsild/join.py reads. Each round
        reaches one hop further; an id that does not exist is asked for once."""
        found: dict[str, Entity] = {e.id: e for e in entities}
        asked: set[str] = set()
        for _ in range(level):
            ids = wanted(found) - asked
            if not ids:
                break
            asked |= ids
            found.update(await self.store.get_many(tenant, sorted(ids)))
        return found

    async def query(self, tenant: str, query: EntityQuery) -> tuple[list[Entity], int | None]:
        await self.check_tenant(tenant)
        return await self.store.query(tenant, query)

    async def delete(self, tenant: str, entity_id: str) -> None:
        check_uri(entity_id, "Entity id")
        await self.check_tenant(tenant)
        if not await self.store.delete(tenant, entity_id):
            raise ResourceNotFound(f"Entity {entity_id} not found")

    async def purge(self, tenant: str, query: EntityQuery) -> int:
        await self.check_tenant(tenant)
        return await self.store.purge(tenant, query)

    async def replace(self, tenant: str, entity_id: str, payload: Any, ctx: Context) -> None:
        """Replace Entity (5.6.18): everything but id and createdAt is replaced."""
        check_uri(entity_id, "Entity id")
        if isinstance(payload, dict):
            given = payload.get("id", entity_id)
            if given != entity_id:
                raise BadRequestData("The id in the payload differs from the id in the URL")
            payload = {**payload, "id": entity_id}
            if "type" not in payload and "@type" not in payload:
                raise BadRequestData("A replacing entity needs a 'type'")
        fresh = expand_entity(payload, ctx, now())

        def change(entity: Entity) -> update.UpdateOutcome:
            entity.types = fresh.types
            entity.scopes = fresh.scopes
            entity.expires_at = fresh.expires_at
            entity.attrs = fresh.attrs
            return update.UpdateOutcome(updated=list(fresh.attrs))

        await self._modify(tenant, entity_id, change, always=True)

    async def merge(self, tenant: str, entity_id: str, payload: Any, ctx: Context) -> None:
        """Merge Entity (5.6.17, PATCH /entities/{id})."""
        check_uri(entity_id, "Entity id")
        body = _fragment_object(payload, entity_id)
        stamp = now()
        fragment = expand_attrs(body, ctx, stamp, allow_null=True)
        extra_types = _optional_types(body, ctx)
        scopes = parse_scopes(body["scope"]) if "scope" in body else None
        expires = (
            normalize_datetime(body["expiresAt"], "expiresAt") if "expiresAt" in body else None
        )

        def change(entity: Entity) -> update.UpdateOutcome:
            outcome = update.merge(entity.attrs, fragment, stamp)
            _add_types(entity, extra_types)
            if scopes is not None:
                entity.scopes = scopes
            if expires is not None:
                entity.expires_at = expires
            return outcome

        await self._modify(tenant, entity_id, change, always=True)

    async def append_attrs(
        self, tenant: str, entity_id: str, payload: Any, ctx: Context, *, overwrite: bool
    ) -> update.UpdateOutcome:
        """Append Entity Attributes (5.6.3, POST /entities/{id}/attrs)."""
        check_uri(entity_id, "Entity id")
        body = _fragment_object(payload, entity_id)
        fragment = expand_attrs(body, ctx, now())
        extra_types = _optional_types(body, ctx)
        scopes = parse_scopes(body["scope"]) if "scope" in body else None

        def change(entity: Entity) -> update.UpdateOutcome:
            outcome = update.append(entity.attrs, fragment, overwrite=overwrite)
            _add_types(entity, extra_types)
            if scopes is not None:
                # noOverwrite keeps what is there and adds the new scopes to it.
                kept = [] if overwrite else entity.scopes or []
                entity.scopes = kept + [s for s in scopes if s not in kept]
            return outcome

        return await self._modify(tenant, entity_id, change, always=bool(extra_types or scopes))

    async def update_attrs(
        self, tenant: str, entity_id: str, payload: Any, ctx: Context
    ) -> update.UpdateOutcome:
        """Update Entity Attributes (5.6.2, PATCH /entities/{id}/attrs)."""
        check_uri(entity_id, "Entity id")
        body = _fragment_object(payload, entity_id)
        fragment = expand_attrs(body, ctx, now(), allow_null=True)
        extra_types = _optional_types(body, ctx)
        scopes = parse_scopes(body["scope"]) if "scope" in body else None

        def change(entity: Entity) -> update.UpdateOutcome:
            outcome = update.update(entity.attrs, fragment)
            _add_types(entity, extra_types)
            if scopes is not None:
                if entity.scopes is None:
                    outcome.not_updated.append(("scope", "The entity has no scope to update"))
                else:
                    entity.scopes = scopes
            return outcome

        return await self._modify(tenant, entity_id, change, always=bool(extra_types or scopes))

    async def update_attribute(
        self, tenant: str, entity_id: str, attr: str, payload: Any, ctx: Context
    ) -> None:
        """Partial Attribute Update (5.6.4, PATCH /entities/{id}/attrs/{attrId})."""
        check_uri(entity_id, "Entity id")
        iri = expand_attribute_name(attr, ctx)
        stamp = now()
        fragment = expand_fragment(attr, payload, ctx, stamp)

        def change(entity: Entity) -> update.UpdateOutcome:
            if not update.partial_update(entity.attrs, iri, fragment, stamp):
                raise ResourceNotFound(f"Attribute {attr} not found in {entity_id}")
            return update.UpdateOutcome(updated=[iri])

        await self._modify(tenant, entity_id, change)

    async def replace_attribute(
        self, tenant: str, entity_id: str, attr: str, payload: Any, ctx: Context
    ) -> None:
        """Replace Attribute (5.6.19, PUT /entities/{id}/attrs/{attrId})."""
        check_uri(entity_id, "Entity id")
        iri = expand_attribute_name(attr, ctx)
        fragment = expand_attribute(attr, payload, ctx, now())

        def change(entity: Entity) -> update.UpdateOutcome:
            if not update.replace_attribute(entity.attrs, iri, fragment):
                raise ResourceNotFound(f"Attribute {attr} not found in {entity_id}")
            return update.UpdateOutcome(updated=[iri])

        await self._modify(tenant, entity_id, change)

    async def delete_attribute(
        self,
        tenant: str,
        entity_id: str,
        attr: str,
        ctx: Context,
        *,
        dataset_id: str | None,
        delete_all: bool,
    ) -> None:
        """Delete Attribute (5.6.5); `scope` removes the entity's scopes."""
        check_uri(entity_id, "Entity id")
        if attr == "scope":

            def unscope(entity: Entity) -> update.UpdateOutcome:
                if entity.scopes is None:
                    raise ResourceNotFound(f"Entity {entity_id} has no scope")
                entity.scopes = None
                return update.UpdateOutcome(updated=["scope"])

            await self._modify(tenant, entity_id, unscope)
            return
        iri = expand_attribute_name(attr, ctx)
        if dataset_id is not None:
            check_uri(dataset_id, "datasetId")

        def change(entity: Entity) -> update.UpdateOutcome:
            if not update.delete_attribute(entity.attrs, iri, dataset_id, delete_all):
                raise ResourceNotFound(f"Attribute {attr} not found in {entity_id}")
            return update.UpdateOutcome(updated=[iri])

        await self._modify(tenant, entity_id, change)

    async def _modify(
        self,
        tenant: str,
        entity_id: str,
        change: Callable[[Entity], update.UpdateOutcome],
        *,
        always: bool = False,
    ) -> update.UpdateOutcome:
        await self.check_tenant(tenant)
        outcomes: list[update.UpdateOutcome] = []

        def apply(entity: Entity) -> bool:
            outcome = change(entity)
            outcomes.append(outcome)
            if not outcome.changed and not always:
                return False
            entity.modified_at = now()
            return True

        if not await self.store.modify(tenant, entity_id, apply):
            raise ResourceNotFound(f"Entity {entity_id} not found")
        return outcomes[-1]

    # -- batch operations (5.6.7 – 5.6.10, 5.6.20) -------------------------------------------

    async def batch_create(self, tenant: str, items: list[tuple[Any, Context]]) -> BatchResult:
        result, entities = _expand_all(items)
        created = await self.store.insert_many(tenant, entities) if entities else []
        self._known_tenants.add(tenant)
        for entity, ok in zip(entities, created, strict=True):
            if ok:
                result.success.append(entity.id)
            else:
                result.errors.append(
                    (entity.id, AlreadyExists(f"Entity {entity.id} already exists"))
                )
        return result

    async def batch_upsert(
        self, tenant: str, items: list[tuple[Any, Context]], *, replace: bool
    ) -> tuple[BatchResult, list[str]]:
        """Upsert (5.6.8): returns the result and the ids that were newly created."""
        result, entities = _expand_all(items)
        entities = _merge_duplicates(entities)
        created_ids: list[str] = []
        if replace:
            created = await self.store.upsert_many(tenant, entities) if entities else []
            for entity, was_created in zip(entities, created, strict=True):
                result.success.append(entity.id)
                if was_created:
                    created_ids.append(entity.id)
        else:
            fragments = {e.id: e for e in entities}

            def change(entity: Entity) -> None:
                fresh = fragments[entity.id]
                update.append(entity.attrs, fresh.attrs, overwrite=True)
                _add_types(entity, fresh.types)

            missing = await self._modify_many(tenant, list(fragments), change, result)
            new = [fragments[i] for i in missing]
            created = await self.store.insert_many(tenant, new) if new else []
            for entity, ok in zip(new, created, strict=True):
                if ok:
                    result.success.append(entity.id)
                    created_ids.append(entity.id)
                else:
                    result.errors.append(
                        (entity.id, AlreadyExists(f"Entity {entity.id} was created meanwhile"))
                    )
        self._known_tenants.add(tenant)
        return result, created_ids

    async def batch_update(
        self, tenant: str, items: list[tuple[Any, Context]], *, overwrite: bool
    ) -> BatchResult:
        """Update (5.6.9): attributes of existing entities are appended/replaced."""
        result, entities = _expand_all(items)
        await self.check_tenant(tenant)
        fragments = {e.id: e for e in _merge_duplicates(entities)}

        def change(entity: Entity) -> None:
            update.append(entity.attrs, fragments[entity.id].attrs, overwrite=overwrite)
            _add_types(entity, fragments[entity.id].types)

        missing = await self._modify_many(tenant, list(fragments), change, result)
        for entity_id in missing:
            result.errors.append((entity_id, ResourceNotFound(f"Entity {entity_id} not found")))
        return result

    async def batch_merge(self, tenant: str, items: list[tuple[Any, Context]]) -> BatchResult:
        """Merge (5.6.20): each entity merged as by PATCH /entities/{id}."""
        result = BatchResult()
        fragments: dict[str, Any] = {}
        stamp = now()
        for payload, ctx in items:
            try:
                body = _fragment_object(payload, None)
                entity_id = check_uri(body.get("id"), "Entity id")
                fragments[entity_id] = (
                    expand_attrs(body, ctx, stamp, allow_null=True),
                    _optional_types(body, ctx),
                )
            except NgsiLdError as error:
                result.errors.append((_id_of(payload), error))
        await self.check_tenant(tenant)

        def change(entity: Entity) -> None:
            attrs, types = fragments[entity.id]
            update.merge(entity.attrs, attrs, stamp)
            _add_types(entity, types)

        missing = await self._modify_many(tenant, list(fragments), change, result)
        for entity_id in missing:
            result.errors.append((entity_id, ResourceNotFound(f"Entity {entity_id} not found")))
        return result

    async def batch_delete(self, tenant: str, ids: list[Any]) -> BatchResult:
        result = BatchResult()
        valid: list[str] = []
        for raw in ids:
            try:
                valid.append(check_uri(raw, "Entity id"))
            except NgsiLdError as error:
                result.errors.append((str(raw), error))
        await self.check_tenant(tenant)
        deleted = await self.store.delete_many(tenant, valid) if valid else []
        for entity_id, ok in zip(valid, deleted, strict=True):
            if ok:
                result.success.append(entity_id)
            else:
                result.errors.append((entity_id, ResourceNotFound(f"Entity {entity_id} not found")))
        return result

    async def _modify_many(
        self,
        tenant: str,
        ids: list[str],
        change: Callable[[Entity], None],
        result: BatchResult,
    ) -> list[str]:
        """Change many entities in one transaction; returns the ids that do not exist."""
        stamp = now()

        def apply(entity: Entity) -> bool:
            change(entity)
            entity.modified_at = stamp
            return True

        found = set(await self.store.modify_many(tenant, ids, apply)) if ids else set()
        result.success.extend(i for i in ids if i in found)
        return [i for i in ids if i not in found]

    # -- information -----------------------------------------------------------------------------

    # -- device data ---------------------------------------------------------------------------

    def expand_observation(self, payload: dict[str, Any], stamp: str) -> Entity:
        """An observation from device data (a normalized entity fragment with core-context
        terms), validated and expanded like any entity; NgsiLdError if it is not valid."""
        return expand_entity(payload, self._core, stamp)

    async def record(self, tenant: str, entities: list[Entity], uplinks: list[UplinkKey]) -> None:
        """Merge observations into their entities (creating them when new), append every
        observed attribute instance to history and mark the uplinks stored: one transaction."""
        history = [
            HistoryRow(
                entity.id,
                attr,
                instance.get("datasetId"),
                instance["observedAt"],
                instance,
                entity_type=entity.types[0] if entity.types else "",
            )
            for entity in entities
            for attr, instances in entity.attrs.items()
            for instance in instances
            if "observedAt" in instance
        ]

        def merge(stored: Entity, fresh: Entity) -> None:
            update.append(stored.attrs, fresh.attrs, overwrite=True)
            _add_types(stored, fresh.types)
            stored.modified_at = fresh.modified_at

        await self.store.record(tenant, entities, merge, history, uplinks)
        self._known_tenants.add(tenant)

    async def type_stats(self, tenant: str) -> list[TypeStat]:
        await self.check_tenant(tenant)
        return await self.store.type_stats(tenant)

    async def attribute_stats(self, tenant: str) -> list[AttributeStat]:
        await self.check_tenant(tenant)
        return await self.store.attribute_stats(tenant)

    async def expire(self) -> int:
        return await self.store.delete_expired(now())


def _add_types(entity: Entity, types: list[str]) -> None:
    entity.types.extend(t for t in types if t not in entity.types)


def _fragment_object(payload: Any, entity_id: str | None) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise BadRequestData("The payload must be a JSON object")
    if entity_id is not None and payload.get("id", entity_id) != entity_id:
        raise BadRequestData("The id in the payload differs from the id in the URL")
    return payload


def _optional_types(body: dict[str, Any], ctx: Context) -> list[str]:
    raw = body.get("type", body.get("@type"))
    return [] if raw is None else expand_types(raw, ctx)


def _id_of(payload: Any) -> str:
    if isinstance(payload, dict) and isinstance(payload.get("id"), str):
        return str(payload["id"])
    return ""


def _expand_all(items: list[tuple[Any, Context]]) -> tuple[BatchResult, list[Entity]]:
    result = BatchResult()
    entities: list[Entity] = []
    stamp = now()
    with collector_paused():
        for payload, ctx in items:
            try:
                entities.append(expand_entity(payload, ctx, stamp))
            except NgsiLdError as error:
                result.errors.append((_id_of(payload), error))
    return result, entities


@contextmanager
def collector_paused() -> Iterator[None]:
    """Expanding (or parsing) a batch allocates tens of thousands of objects that all stay
    alive: the cyclic collector would run hundreds of times finding nothing (a sixth of batch
    time, see docs/performance.md). Use it only around work without an await, so that no other
    request is affected; raising the thresholds for the whole process instead doubled the p99
    of single reads."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _merge_duplicates(entities: list[Entity]) -> list[Entity]:
    """The same id twice in one batch: later attributes win, as if applied in order."""
    merged: dict[str, Entity] = {}
    for entity in entities:
        earlier = merged.get(entity.id)
        if earlier is None:
            merged[entity.id] = entity
        else:
            earlier.attrs.update(entity.attrs)
            _add_types(earlier, entity.types)
    return list(merged.values())
