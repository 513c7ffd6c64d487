"""Subscriptions and their notifications as one service the application starts and stops: the
observer's cache of subscriptions, the operations on them, and the notifier."""

from __future__ import annotations

import asyncio
import contextlib

from stadsnav.broker import Broker
from stadsnav.notify.delivery import DeliveryPolicy, Notifier
from stadsnav.notify.manager import Subscriptions
from stadsnav.notify.observer import Resolve, SubscriptionObserver
from stadsnav.settings import Settings


def policy_of(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        poll_interval=settings.notify_poll_interval,
        timeout=settings.notify_timeout,
        retry_base=settings.notify_retry_base,
        retry_max=settings.notify_retry_max,
        lease=settings.notify_lease,
        batch_max=settings.notify_batch_max,
        concurrency=settings.notify_concurrency,
        periodic_max=settings.query_max_limit,
    )


class NotificationService:
    def __init__(self, broker: Broker, resolve: Resolve, settings: Settings) -> None:
        self.observer = SubscriptionObserver(broker.store, resolve)
        self.subscriptions = Subscriptions(broker.store, self.observer)
        self.notifier = Notifier(broker, self.observer, policy_of(settings))
        self.refresh_interval = settings.notify_refresh_interval
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the subscriptions (before any write is made, so none is missed) and start
        delivering."""
        await self.observer.refresh()
        self._refresher = asyncio.create_task(self.observer.run(self.refresh_interval))
        await self.notifier.start()

    async def stop(self) -> None:
        await self.notifier.stop()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
