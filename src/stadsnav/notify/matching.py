"""Which subscriptions a change concerns, and what each is to be sent: pure and quick, since it
runs inside the store's write transaction (see store.base.ChangeObserver)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from stadsnav.ngsild.entity import (
    LANGUAGEPROPERTY,
    LISTPROPERTY,
    LISTRELATIONSHIP,
    PROPERTY,
    VALUE_KEY,
    Entity,
    Instance,
)
from stadsnav.ngsild.geoquery import matches_geo
from stadsnav.ngsild.qlang import matches_q
from stadsnav.ngsild.query import TypeAnd, TypeExpr, TypeName, TypeOr
from stadsnav.ngsild.subscription import Subscription, entity_data, previous_key
from stadsnav.store.base import EntityChange, PendingNotification

# The order in which an update's triggers are named when several apply.
_ATTRIBUTE_TRIGGERS = ("attributeCreated", "attributeUpdated", "attributeDeleted")


class SubscriptionIndex:
    """A tenant's subscriptions, looked up by what an entity change could concern: those
    naming the entity's id, those naming one of its types, and those that must always be
    asked (idPattern alone, or no `entities`). A thousand subscriptions cost a few dictionary
    look-ups per change instead of a thousand tests; each candidate still checks `selects`."""

    def __init__(self, subscriptions: Sequence[Subscription]) -> None:
        self.subscriptions = tuple(subscriptions)
        self._by_id: dict[str, list[int]] = {}
        self._by_type: dict[str, list[int]] = {}
        self._always: list[int] = []
        for position, sub in enumerate(self.subscriptions):
            if not sub.entities:
                self._always.append(position)
                continue
            ids: set[str] = set()
            types: set[str] = set()
            for selector in sub.entities:
                if selector.id is not None:
                    ids.add(selector.id)
                    continue
                keys = _type_keys(selector.types)
                if keys is None:
                    self._always.append(position)
                    break
                types |= keys
            else:
                for key in ids:
                    self._by_id.setdefault(key, []).append(position)
                for key in types:
                    self._by_type.setdefault(key, []).append(position)

    def __bool__(self) -> bool:
        return bool(self.subscriptions)

    def candidates(self, entity_id: str, types: Sequence[str]) -> list[Subscription]:
        """The subscriptions that may select this entity, in their order."""
        found = list(self._by_id.get(entity_id, ()))
        for name in types:
            found.extend(self._by_type.get(name, ()))
        found.extend(self._always)
        if len(found) > 1:
            found = sorted(set(found))
        subs = self.subscriptions
        return [subs[i] for i in found]


def _type_keys(expr: TypeExpr) -> set[str] | None:
    """Type IRIs of which an entity the expression holds for has one at least (None: no such
    set, the expression must be tested as it is)."""
    if isinstance(expr, TypeName):
        return {expr.iri}
    if isinstance(expr, TypeOr):
        keys: set[str] = set()
        for part in expr.parts:
            found = _type_keys(part)
            if found is None:
                return None
            keys |= found
        return keys
    if isinstance(expr, TypeAnd):
        for part in expr.parts:
            found = _type_keys(part)
            if found is not None:
                return found
    return None


def pending(
    subscriptions: SubscriptionIndex | Sequence[Subscription],
    tenant: str,
    changes: list[EntityChange],
    at: str,
) -> list[PendingNotification]:
    """The outbox rows these changes make for these (the tenant's) subscriptions."""
    rows: list[PendingNotification] = []
    index = (
        subscriptions
        if isinstance(subscriptions, SubscriptionIndex)
        else SubscriptionIndex(subscriptions)
    )
    if not index:
        return rows
    live: dict[str, bool] = {}
    for change in changes:
        entity = change.after or change.before
        if entity is None:
            continue
        for sub in index.candidates(entity.id, entity.types):
            alive = live.get(sub.id)
            if alive is None:
                alive = live[sub.id] = sub.time_interval is None and sub.live(at)
            if not alive or not sub.selects(entity.id, entity.types):
                continue
            trigger = _trigger(sub, change)
            if trigger is None or not _filters_hold(sub, entity):
                continue
            rows.append(
                PendingNotification(
                    subscription_id=sub.id,
                    entity_id=entity.id,
                    trigger=trigger,
                    data=_data(sub, change, at),
                    created_at=at,
                )
            )
    return rows


def _trigger(sub: Subscription, change: EntityChange) -> str | None:
    before, after = change.before, change.after
    if after is None:
        return "entityDeleted" if "entityDeleted" in sub.triggers else None
    if before is None and not change.replaced:
        if "entityCreated" in sub.triggers:
            return "entityCreated"
        # A new entity creates its attributes: attributeCreated subscriptions hear of it.
        if "attributeCreated" in sub.triggers and _watched(sub, after.attrs):
            return "attributeCreated"
        return None
    if before is None:
        # Replaced without reading what it replaced: every attribute counts as updated.
        if "attributeUpdated" in sub.triggers and _watched(sub, after.attrs):
            return "attributeUpdated"
        return None
    created, updated, deleted = _attribute_changes(before, after)
    kinds = {"attributeCreated": created, "attributeUpdated": updated, "attributeDeleted": deleted}
    for trigger in _ATTRIBUTE_TRIGGERS:
        if trigger in sub.triggers and _watched(sub, kinds[trigger]):
            return trigger
    entity_level = before.types != after.types or before.scopes != after.scopes
    if entity_level and sub.watched is None and "entityUpdated" in sub.triggers:
        return "entityUpdated"
    return None


def _watched(sub: Subscription, attrs: Any) -> bool:
    if sub.watched is None:
        return bool(attrs)
    return any(a in sub.watched for a in attrs)


def _attribute_changes(before: Entity, after: Entity) -> tuple[set[str], set[str], set[str]]:
    created = {a for a in after.attrs if a not in before.attrs}
    deleted = {a for a in before.attrs if a not in after.attrs}
    updated = {a for a in after.attrs if a in before.attrs and after.attrs[a] != before.attrs[a]}
    return created, updated, deleted


def _filters_hold(sub: Subscription, entity: Entity) -> bool:
    if sub.q is not None and not matches_q(sub.q, entity.attrs):
        return False
    if sub.geo is not None:
        instances = entity.attrs.get(sub.geo.geoproperty) or []
        if not any(
            isinstance(i.get("value"), dict) and matches_geo(sub.geo, i["value"]) for i in instances
        ):
            return False
    if sub.scope is not None:
        scopes = entity.scopes or []
        if not any(
            all(any(_pattern(p).match(s) for s in scopes) for p in alternative)
            for alternative in sub.scope
        ):
            return False
    return True


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _data(sub: Subscription, change: EntityChange, at: str) -> dict[str, Any]:
    """The entity as the notification is to show it: its attributes those the subscription
    asks for, with the previous values when it asks for them (showChanges)."""
    if change.after is None:
        assert change.before is not None
        gone = change.before
        # A deleted entity shows the attributes asked for (all of them with showChanges) as
        # deleted ones, with their last values when showChanges asks for them.
        shown = {}
        if sub.attributes is not None or sub.show_changes:
            shown = {
                a: [_deleted(i, at, sub.show_changes) for i in instances]
                for a, instances in gone.attrs.items()
                if sub.attributes is None or a in sub.attributes
            }
        entity = Entity(gone.id, gone.types, shown, gone.scopes, gone.created_at, gone.modified_at)
        data = entity_data(entity)
        data["deletedAt"] = at
        return data
    entity = change.after
    attrs = entity.attrs
    if sub.attributes is not None:
        attrs = {a: i for a, i in attrs.items() if a in sub.attributes}
    if change.before is not None:
        if sub.show_changes:
            attrs = {a: _with_previous(i, change.before.attrs.get(a)) for a, i in attrs.items()}
        removed = {
            a: [_deleted(i, at, sub.show_changes) for i in instances]
            for a, instances in change.before.attrs.items()
            if a not in entity.attrs and (sub.attributes is None or a in sub.attributes)
        }
        if removed:
            attrs = {**attrs, **removed}
    data = entity_data(entity)
    data["attrs"] = attrs
    return data


# What a deleted attribute's value reads as in a notification (clause 4.5.x: the NGSI-LD null).
NULL = "urn:ngsi-ld:null"


def _deleted(instance: Instance, at: str, show_changes: bool) -> Instance:
    """An attribute instance as deleted: its type, the NGSI-LD null as its value, when it was
    deleted, and its last value when showChanges asks for it."""
    kind = instance.get("type", PROPERTY)
    key = VALUE_KEY.get(kind, "value")
    null: Any = NULL
    if kind == LANGUAGEPROPERTY:
        null = {"@none": NULL}
    elif kind in (LISTPROPERTY, LISTRELATIONSHIP):
        null = [NULL]
    shown: Instance = {"type": kind, key: null}
    for member in ("datasetId", "createdAt", "modifiedAt"):
        if member in instance:
            shown[member] = instance[member]
    shown["deletedAt"] = at
    if show_changes and key in instance:
        shown[previous_key(instance)] = instance[key]
    return shown


def _with_previous(instances: list[Instance], before: list[Instance] | None) -> list[Instance]:
    if not before:
        return instances
    earlier = {i.get("datasetId"): i for i in before}
    shown = []
    for instance in instances:
        old = earlier.get(instance.get("datasetId"))
        if old is not None:
            now_value = instance.get(VALUE_KEY.get(instance.get("type", ""), "value"))
            old_value = old.get(VALUE_KEY.get(old.get("type", ""), "value"))
            if old_value != now_value:
                instance = {**instance, previous_key(instance): old_value}
        shown.append(instance)
    return shown
