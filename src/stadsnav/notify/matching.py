"""Which subscriptions a change concerns, and what each is to be sent: pure and quick, since it
runs inside the store's write transaction (see store.base.ChangeObserver)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from stadsnav.ngsild.entity import VALUE_KEY, Entity, Instance
from stadsnav.ngsild.geoquery import matches_geo
from stadsnav.ngsild.qlang import matches_q
from stadsnav.ngsild.subscription import Subscription, entity_data, previous_key
from stadsnav.store.base import EntityChange, PendingNotification

# The order in which an update's triggers are named when several apply.
_ATTRIBUTE_TRIGGERS = ("attributeCreated", "attributeUpdated", "attributeDeleted")


def pending(
    subscriptions: Sequence[Subscription], tenant: str, changes: list[EntityChange], at: str
) -> list[PendingNotification]:
    """The outbox rows these changes make for these (the tenant's) subscriptions."""
    rows: list[PendingNotification] = []
    live = [s for s in subscriptions if s.time_interval is None and s.live(at)]
    if not live:
        return rows
    for change in changes:
        entity = change.after or change.before
        if entity is None:
            continue
        for sub in live:
            if not sub.selects(entity.id, entity.types):
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
        data = entity_data(Entity(gone.id, gone.types, {}, gone.scopes, gone.created_at))
        data["deletedAt"] = at
        return data
    entity = change.after
    attrs = entity.attrs
    if sub.attributes is not None:
        attrs = {a: i for a, i in attrs.items() if a in sub.attributes}
    if sub.show_changes and change.before is not None:
        attrs = {a: _with_previous(i, change.before.attrs.get(a)) for a, i in attrs.items()}
    data = entity_data(entity)
    data["attrs"] = attrs
    return data


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
