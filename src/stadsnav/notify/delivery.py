"""Delivering queued notifications: at least once, in order per subscription (so per entity),
without a slow or failing receiver holding up anything else.

The outbox (written in the transaction of each change) is the queue. A notifier claims due
subscriptions with a lease in the database, so with several workers on one PostgreSQL each
subscription is delivered by one of them at a time; it sends a subscription's queued rows,
oldest first, as one notification, and only then deletes them. A failure keeps the rows and
defers the subscription with exponential back-off; a notifier that dies mid-delivery leaves
its lease to expire, and another delivers the rows again (at least once). Each subscription is
delivered by a task of its own, so a receiver that hangs delays only its own notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stadsnav.broker import Broker
from stadsnav.ngsild.context import CORE_CONTEXT_URL
from stadsnav.ngsild.names import format_datetime
from stadsnav.ngsild.query import EntityQuery
from stadsnav.ngsild.subscription import Subscription, entity_data, render_notification
from stadsnav.notify.http import HttpClient
from stadsnav.notify.observer import SubscriptionObserver
from stadsnav.notify.sending import DeliveryFailed, Outgoing, send
from stadsnav.store.base import Store
from stadsnav.store.subscriptionrecords import Claim, Delivered

log = logging.getLogger("stadsnav.notify")


@dataclass(frozen=True)
class DeliveryPolicy:
    poll_interval: float = 0.5  # seconds between looks at the outbox (besides being woken)
    timeout: float = 10.0  # seconds a receiver has to take a notification
    retry_base: float = 1.0  # first back-off after a failure, doubled per further failure
    retry_max: float = 60.0
    lease: float = 60.0  # seconds a claim is this notifier's before another may take it over
    batch_max: int = 100  # entities in one notification at most
    concurrency: int = 100  # subscriptions delivered at once
    periodic_max: int = 1000  # entities in one periodic notification at most


def _at(moment: datetime) -> str:
    return format_datetime(moment)


class _Settler:
    """Writes outcomes back in batches: those that come in while a batch is being written go
    together in the next, one transaction for all (group commit). A delivery waits until its
    outcome is written, so its lease is given up before it ends."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiting: list[tuple[Delivered, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def settle(self, outcome: Delivered) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((outcome, done))
        if self._task is None:
            self._task = asyncio.create_task(self._write(), name="notifier settle")
        await done

    async def _write(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(0)  # let deliveries finishing now join this batch
                batch, self._waiting = self._waiting, []
                try:
                    await self.store.settle_notifications([outcome for outcome, _ in batch])
                except Exception:
                    # The leases run out and the rows are delivered again: at least once.
                    log.exception("Recording %d deliveries failed", len(batch))
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._task = None

    async def stop(self, grace: float = 5.0) -> None:
        """Write what is waiting (outcomes of deliveries ended by the stop too, so their leases
        are given up and a restarted notifier need not wait for them to run out)."""
        task = self._task
        if task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), grace)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Notifier:
    def __init__(
        self, broker: Broker, observer: SubscriptionObserver, policy: DeliveryPolicy
    ) -> None:
        self.broker = broker
        self.store = broker.store
        self.observer = observer
        self.policy = policy
        self.owner = f"notifier-{uuid.uuid4()}"
        self._wake = asyncio.Event()
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._http: HttpClient | None = None
        self._settler = _Settler(self.store)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._http = HttpClient()
        self.observer.on_queued = self.wake
        self._task = asyncio.create_task(self._run(), name="notifier")

    async def stop(self) -> None:
        self.observer.on_queued = None
        tasks = [t for t in (self._task, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        await self._settler.stop()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def wake(self) -> None:
        """Look at the outbox soon: called, from any thread, when a change queued rows, inside
        the change's transaction. Looked at once at once (on SQLite the claim is written after
        the change's commit by the same writer thread, so it finds the rows) and again a
        moment later, once the transaction has surely committed on any backend."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._woken)

    def _woken(self) -> None:
        assert self._loop is not None
        self._wake.set()
        self._loop.call_later(0.02, self._wake.set)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._claim()
            except Exception:
                log.exception("Claiming notifications failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.policy.poll_interval)

    async def _claim(self) -> None:
        free = self.policy.concurrency - len(self._running)
        if free <= 0:
            return
        now = datetime.now(UTC)
        claims = await self.store.claim_notifications(
            self.owner,
            _at(now),
            _at(now + timedelta(seconds=self.policy.lease)),
            free,
            self.policy.batch_max,
        )
        for claim in claims:
            key = (claim.subscription.tenant, claim.subscription.id)
            task = asyncio.create_task(self._deliver(claim), name=f"notify {key[1]}")
            self._running[key] = task
            task.add_done_callback(lambda _, key=key: self._running.pop(key, None))  # type: ignore[misc]

    async def _deliver(self, claim: Claim) -> None:
        record = claim.subscription
        try:
            sub = await self.observer.parse(record)
        except Exception as error:
            log.warning("Subscription %s cannot be read: %s", record.id, error)
            await self._settle(claim, ok=False, error=f"Unreadable: {error}"[:300], sent=False)
            return
        data = [row.data for row in claim.rows]
        periodic = claim.periodic_due and sub.time_interval is not None
        if periodic:
            data = await self._current(record.tenant, sub)
        if not data:
            await self._settle(claim, ok=True, sub=sub, periodic=periodic, sent=False)
            return
        try:
            outgoing = await self._render(record.tenant, sub, record.context, data)
            assert self._http is not None
            await send(self._http, sub.endpoint, outgoing, self.policy.timeout)
        except DeliveryFailed as error:
            log.info("Notification of %s failed: %s", record.id, error)
            await self._settle(claim, ok=False, sub=sub, error=str(error))
            return
        except Exception as error:
            log.exception("Notification of %s failed", record.id)
            await self._settle(claim, ok=False, sub=sub, error=f"{type(error).__name__}")
            return
        await self._settle(claim, ok=True, sub=sub, periodic=periodic)
        if len(claim.rows) >= self.policy.batch_max:
            self._wake.set()  # more may be queued

    async def _render(
        self, tenant: str, sub: Subscription, reference: Any, data: list[dict[str, Any]]
    ) -> Outgoing:
        context_ref = sub.jsonld_context if sub.jsonld_context is not None else reference
        ctx = await self.observer.resolve(context_ref)
        body = render_notification(
            sub, data, ctx, f"urn:ngsi-ld:Notification:{uuid.uuid4()}", _at(datetime.now(UTC))
        )
        media = sub.endpoint.accept
        if media == "application/ld+json":
            # Each entity carries it too, as entities in any JSON-LD list answer do.
            body["@context"] = context_ref if context_ref is not None else CORE_CONTEXT_URL
            if isinstance(body["data"], list):
                for entity in body["data"]:
                    entity["@context"] = body["@context"]
        return Outgoing(body=body, media=media, context_url=_link(context_ref), tenant=tenant)

    async def _current(self, tenant: str, sub: Subscription) -> list[dict[str, Any]]:
        """What a periodic notification carries: every entity the subscription selects now."""
        found: dict[str, dict[str, Any]] = {}
        for selector in sub.entities:
            query = EntityQuery(
                ids=(selector.id,) if selector.id is not None else None,
                id_pattern=selector.id_pattern,
                types=selector.types,
                q=sub.q,
                geo=sub.geo,
                scope=sub.scope,
                limit=self.policy.periodic_max,
            )
            entities, _ = await self.store.query(tenant, query)
            for entity in entities:
                data = entity_data(entity)
                if sub.attributes is not None:
                    data["attrs"] = {a: i for a, i in entity.attrs.items() if a in sub.attributes}
                found.setdefault(entity.id, data)
        return list(found.values())[: self.policy.periodic_max]

    async def _settle(
        self,
        claim: Claim,
        *,
        ok: bool,
        sub: Subscription | None = None,
        periodic: bool = False,
        error: str | None = None,
        sent: bool = True,
    ) -> None:
        now = datetime.now(UTC)
        record = claim.subscription
        wait: float | None = None
        if ok and sub is not None and sub.throttling is not None and sent:
            wait = sub.throttling
        if not ok:
            wait = min(
                self.policy.retry_max,
                self.policy.retry_base * 2 ** min(record.consecutive_errors, 30),
            )
            if sub is not None and sub.endpoint.cooldown_ms is not None:
                wait = max(wait, sub.endpoint.cooldown_ms / 1000)
        next_periodic = None
        if periodic and ok and sub is not None and sub.time_interval is not None:
            next_periodic = _at(now + timedelta(seconds=sub.time_interval))
        outcome = Delivered(
            tenant=record.tenant,
            subscription_id=record.id,
            owner=self.owner,
            at=_at(now),
            seqs=[row.seq for row in claim.rows] if ok or sent else [],
            ok=ok,
            next_attempt_at=None if wait is None else _at(now + timedelta(seconds=wait)),
            next_periodic_at=next_periodic,
            error=error,
            sent=sent,
        )
        await self._settler.settle(outcome)


def _link(context: Any) -> str:
    """The @context a Link header can name: one URL, also as a one-element list (a longer
    list or an inline document cannot be linked, so the core context is named instead)."""
    if isinstance(context, list) and len(context) == 1:
        context = context[0]
    return context if isinstance(context, str) else CORE_CONTEXT_URL
