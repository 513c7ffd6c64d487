"""The subscriptions half of the store's change observer: an in-memory copy of every tenant's
subscriptions, parsed, that `consequences` matches changes against inside the write
transaction. Kept fresh when this process changes a subscription, and from the database every
`interval` seconds, so that subscriptions made through another worker are seen too."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.subscription import Subscription, parse_subscription
from stadsnav.notify.matching import SubscriptionIndex, pending
from stadsnav.store.base import Consequences, EntityChange, Store
from stadsnav.store.subscriptionrecords import SubscriptionRecord

log = logging.getLogger("stadsnav.notify")

Resolve = Callable[[Any], Awaitable[Context]]
# More subscriptions than any deployment keeps; read in one go.
_ALL = 1_000_000


class SubscriptionObserver:
    def __init__(self, store: Store, resolve: Resolve) -> None:
        self.store = store
        self.resolve = resolve
        # (tenant, id) -> (modifiedAt, parsed); replaced whole, never changed in place, since
        # the SQLite writer thread reads it while the event loop refreshes it.
        self._parsed: dict[tuple[str, str], tuple[str, Subscription]] = {}
        self._by_tenant: dict[str, SubscriptionIndex] = {}
        # Called (from whatever thread writes) when a change queued notifications.
        self.on_queued: Callable[[], None] | None = None

    # -- ChangeObserver --------------------------------------------------------------------------

    def watching(self, tenant: str) -> bool:
        return bool(self._by_tenant.get(tenant))

    def consequences(self, tenant: str, changes: list[EntityChange], at: str) -> Consequences:
        index = self._by_tenant.get(tenant)
        if index is None:
            return Consequences()
        found = pending(index, tenant, changes, at)
        if found and self.on_queued is not None:
            self.on_queued()
        return Consequences(notifications=found)

    # -- the cache -------------------------------------------------------------------------------

    def parsed(self, tenant: str, subscription_id: str) -> Subscription | None:
        entry = self._parsed.get((tenant, subscription_id))
        return None if entry is None else entry[1]

    async def parse(self, record: SubscriptionRecord) -> Subscription:
        entry = self._parsed.get((record.tenant, record.id))
        if entry is not None and entry[0] == record.modified_at:
            return entry[1]
        return parse_subscription(record.doc, await self.resolve(record.context))

    def put(self, tenant: str, sub: Subscription, modified_at: str) -> None:
        parsed = dict(self._parsed)
        parsed[(tenant, sub.id)] = (modified_at, sub)
        self._publish(parsed)

    def drop(self, tenant: str, subscription_id: str) -> None:
        parsed = dict(self._parsed)
        parsed.pop((tenant, subscription_id), None)
        self._publish(parsed)

    async def refresh(self) -> None:
        records, _ = await self.store.list_subscriptions(None, _ALL, 0)
        parsed: dict[tuple[str, str], tuple[str, Subscription]] = {}
        for record in records:
            try:
                parsed[(record.tenant, record.id)] = (record.modified_at, await self.parse(record))
            except Exception as error:  # a remote @context gone: leave it out, say so
                log.warning("Subscription %s cannot be read: %s", record.id, error)
        if _versions(parsed) != _versions(self._parsed):  # else the index stands as it is
            self._publish(parsed)

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:
                log.exception("Reading the subscriptions failed; retrying later")

    def _publish(self, parsed: dict[tuple[str, str], tuple[str, Subscription]]) -> None:
        by_tenant: dict[str, list[Subscription]] = {}
        for (tenant, _), (_, sub) in sorted(parsed.items()):
            if sub.is_active and sub.time_interval is None:
                by_tenant.setdefault(tenant, []).append(sub)
        self._parsed = parsed
        self._by_tenant = {tenant: SubscriptionIndex(subs) for tenant, subs in by_tenant.items()}


def _versions(parsed: dict[tuple[str, str], tuple[str, Subscription]]) -> dict[Any, str]:
    return {key: modified for key, (modified, _) in parsed.items()}
