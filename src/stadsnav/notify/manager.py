"""The subscription operations of clause 5.8 (create, retrieve, query, update, delete):
validated here, kept by the store, and put in the observer's cache at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.errors import BadRequestData, ResourceNotFound
from stadsnav.ngsild.names import check_uri, format_datetime
from stadsnav.ngsild.subscription import (
    Subscription,
    merge_update,
    parse_subscription,
    prepare_new,
    render_subscription,
)
from stadsnav.notify.observer import SubscriptionObserver
from stadsnav.store.base import Store
from stadsnav.store.subscriptionrecords import SubscriptionRecord


def now() -> str:
    return format_datetime(datetime.now(UTC))


class Subscriptions:
    def __init__(self, store: Store, observer: SubscriptionObserver) -> None:
        self.store = store
        self.observer = observer

    async def create(self, tenant: str, payload: Any, reference: Any, ctx: Context) -> str:
        doc = prepare_new(payload, f"urn:ngsi-ld:Subscription:{uuid.uuid4()}")
        sub = parse_subscription(doc, ctx)
        at = now()
        _not_expired(sub, at)
        if sub.jsonld_context is not None:
            # Notifications are compacted with it: one that cannot be had is refused now
            # (LdContextNotAvailable), not at every delivery.
            await self.observer.resolve(sub.jsonld_context)
        record = SubscriptionRecord(
            id=sub.id,
            doc=doc,
            context=reference,
            created_at=at,
            modified_at=at,
            expires_at=sub.expires_at,
            is_active=sub.is_active,
            periodic=sub.time_interval is not None,
            tenant=tenant,
        )
        await self.store.add_subscription(tenant, record)
        self.observer.put(tenant, sub, at)
        return sub.id

    async def record(self, tenant: str, subscription_id: str) -> SubscriptionRecord:
        check_uri(subscription_id, "Subscription id")
        found = await self.store.get_subscription(tenant, subscription_id)
        if found is None:
            raise ResourceNotFound(f"Subscription {subscription_id} not found")
        return found

    async def retrieve(
        self, tenant: str, subscription_id: str, *, sys_attrs: bool = False
    ) -> tuple[dict[str, Any], Any]:
        """The subscription as GET shows it, and the @context its names are in."""
        record = await self.record(tenant, subscription_id)
        return await self.shown(record, sys_attrs), record.context

    async def shown(self, record: SubscriptionRecord, sys_attrs: bool = False) -> dict[str, Any]:
        sub = await self.observer.parse(record)
        return render_subscription(record.doc, sub, record.status_fields(), now(), sys_attrs)

    async def query(
        self, tenant: str, limit: int, offset: int, *, sys_attrs: bool = False
    ) -> tuple[list[tuple[dict[str, Any], Any]], int]:
        records, total = await self.store.list_subscriptions(tenant, limit, offset)
        return [(await self.shown(r, sys_attrs), r.context) for r in records], total

    async def update(
        self, tenant: str, subscription_id: str, payload: Any, reference: Any, ctx: Context | None
    ) -> None:
        """Merge a fragment into a subscription (clause 5.8.2). Its names are read with the
        fragment's @context when it brings one, else with the subscription's own."""
        record = await self.record(tenant, subscription_id)
        doc = merge_update(record.doc, payload)
        context = record.context if ctx is None else reference
        sub: Subscription = parse_subscription(
            doc, ctx if ctx is not None else await self.observer.resolve(record.context)
        )
        at = now()
        if "expiresAt" in (payload if isinstance(payload, dict) else {}):
            _not_expired(sub, at)
        changed = SubscriptionRecord(
            id=sub.id,
            doc=doc,
            context=context,
            created_at=record.created_at,
            modified_at=at,
            expires_at=sub.expires_at,
            is_active=sub.is_active,
            periodic=sub.time_interval is not None,
            tenant=tenant,
        )
        if not await self.store.update_subscription(tenant, changed):
            raise ResourceNotFound(f"Subscription {subscription_id} not found")
        self.observer.put(tenant, sub, at)

    async def delete(self, tenant: str, subscription_id: str) -> None:
        check_uri(subscription_id, "Subscription id")
        if not await self.store.delete_subscription(tenant, subscription_id):
            raise ResourceNotFound(f"Subscription {subscription_id} not found")
        self.observer.drop(tenant, subscription_id)


def _not_expired(sub: Subscription, at: str) -> None:
    """A subscription cannot be given an expiresAt that has already passed (clause 5.2.12)."""
    if sub.expires_at is not None and sub.expires_at <= at:
        raise BadRequestData("expiresAt must be in the future")
