"""The ASGI application: routes, error handlers, and the services built at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import tempfile
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import IO, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from stadsnav import demo
from stadsnav.api import batch, devices, entities, info, ingest, jsonld_contexts, subscriptions
from stadsnav.api.openapi_doc import openapi_route
from stadsnav.api.problems import handle_http_exception, handle_ngsild_error, handle_unexpected
from stadsnav.api.services import Services, services
from stadsnav.api.temporal import routes as temporal_routes
from stadsnav.broker import Broker
from stadsnav.changes import ChangeFeed
from stadsnav.contexts import ContextResolver
from stadsnav.devices import credentials
from stadsnav.devices.health import HealthMonitor, profile_interval, profile_range
from stadsnav.devices.registry import Registry
from stadsnav.ingest.mqtt import MqttIngest
from stadsnav.ingest.pipeline import Pipeline
from stadsnav.ngsild.errors import NgsiLdError
from stadsnav.notify.service import NotificationService
from stadsnav.settings import Settings
from stadsnav.store.base import Store
from stadsnav.store.opening import open_store
from stadsnav.temporal import Temporal, keep_retention, retention_by_type

log = logging.getLogger("stadsnav")


async def health(request: Request) -> Response:
    svc = services(request)
    return JSONResponse(
        {
            "status": "ok",
            "database": svc.settings.database.split("://")[0],
            # Device messages taken in by this worker since it started, by outcome.
            "ingest": dict(svc.pipeline.counts),
            "mqtt": "connected"
            if svc.mqtt_connected()
            else ("off" if svc.mqtt is None else "down"),
        }
    )


async def _sweep_expired(broker: Broker, interval: float) -> None:
    """Transient entities are hidden from reads once expired; this also deletes them."""
    while True:
        await asyncio.sleep(interval)
        try:
            removed = await broker.expire()
        except Exception:
            log.exception("Deleting expired entities failed; retrying later")
            continue
        if removed:
            log.info("Deleted %d expired entities", removed)


def _worker_slot(settings: Settings) -> str:
    """A number for this worker process that a restarted worker gets back: its MQTT session
    (with what the broker queued meanwhile) is found by client id. Slots are held as locks on
    files, which the system releases when a process dies."""
    if settings.workers == 1:
        return ""
    folder = Path(tempfile.gettempdir())
    for slot in range(1, settings.workers + 1):
        handle = (folder / f"{settings.mqtt_client_id}-{slot}.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _held_slots.append(handle)
        return f"-{slot}"
    raise RuntimeError(f"More workers than the {settings.workers} configured hold MQTT slots")


_held_slots: list[IO[str]] = []


class TrailingSlash:
    """Serve `/entities/` as `/entities`: several NGSI-LD clients add the slash."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
        await self.app(scope, receive, send)


# Seconds a part of the server has to stop before shutdown goes on without it.
STOP_SECONDS = 15.0


async def _bounded(stopping: Coroutine[Any, Any, None], what: str) -> None:
    """Await a part's stop, but never longer than STOP_SECONDS: a part stuck on a peer that
    does not answer (a receiver, the database) must not keep the process from exiting. What it
    had not finished is safe: queued notifications and unacknowledged messages are delivered
    again after the restart."""
    task = asyncio.ensure_future(stopping)
    done, _ = await asyncio.wait({task}, timeout=STOP_SECONDS)
    if not done:
        log.error("Stopping %s took over %.0f s; going on without it", what, STOP_SECONDS)
        task.cancel()
    elif task.exception() is not None:
        log.error("Stopping %s failed: %s", what, task.exception())


def create_app(settings: Settings, store: Store | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        active = store or open_store(settings)
        await active.open()
        # Told of every change inside its transaction: history rows, and (its `subscriptions`)
        # the notifications to queue.
        feed = ChangeFeed(history=settings.history_api_writes)
        active.observer = feed
        broker = Broker(active)
        resolver = ContextResolver(settings, active)
        await resolver.load()
        # Subscriptions are loaded before anything writes, so no change escapes them.
        notifications = NotificationService(broker, resolver.context_for, settings)
        await notifications.start()
        feed.subscriptions = notifications.observer
        pipeline = Pipeline(broker, max_batch=settings.ingest_batch_max)
        await pipeline.start()
        app.state.services = Services(settings, broker, resolver, pipeline)
        app.state.services.subscriptions = notifications.subscriptions
        mqtt: MqttIngest | None = None
        if settings.mqtt_url:
            mqtt = MqttIngest(
                pipeline,
                settings.mqtt_url,
                client_id=settings.mqtt_client_id + _worker_slot(settings),
                share_group=settings.mqtt_share_group or None,
            )
            await mqtt.start()
            app.state.services.mqtt = mqtt
        sweeper = asyncio.create_task(_sweep_expired(broker, settings.expiry_interval))
        health = HealthMonitor(
            broker,
            expected_interval=profile_interval,
            physical_range=profile_range,
            battery_threshold=settings.health_battery_threshold,
            silence_factor=settings.health_silence_factor,
        )
        alarms = asyncio.create_task(health.run(settings.health_interval))
        background = [sweeper, alarms]
        app.state.temporal = Temporal(active, settings.temporal_max_instances)
        if settings.history_retention:
            retention_by_type(settings.history_retention)  # a bad setting stops start-up
            background.append(
                asyncio.create_task(
                    keep_retention(
                        app.state.temporal,
                        settings.history_retention,
                        settings.history_retention_interval,
                    )
                )
            )
        if settings.mqtt_password_file and settings.mqtt_acl_file:
            files = credentials.mosquitto_files(settings)
            background.append(
                asyncio.create_task(
                    credentials.keep_in_sync(files, active, settings.mqtt_sync_interval)
                )
            )
        if settings.simulate_devices:
            registry = Registry(
                broker, radius=settings.devices_couse_radius, forget=pipeline.forget_device
            )
            base_url = f"http://{settings.host}:{settings.port}"
            background.append(
                asyncio.create_task(demo.simulate(registry, base_url, settings.simulate_devices))
            )
        # What start-up built lives as long as the process: keep it out of every collection.
        gc.freeze()
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if mqtt is not None:
                await _bounded(mqtt.stop(), "the MQTT ingestion")
            await _bounded(pipeline.stop(), "the ingestion pipeline")
            await _bounded(notifications.stop(), "the notifier")
            await _bounded(resolver.close(), "the @context resolver")
            await _bounded(active.close(), "the store")

    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        *entities.routes,
        *batch.routes,
        *info.routes,
        *jsonld_contexts.routes,
        *ingest.routes,
        *devices.routes,
        *subscriptions.routes,
        *temporal_routes,
    ]
    routes.append(openapi_route(list(routes)))
    return Starlette(
        routes=routes,
        exception_handlers={
            NgsiLdError: handle_ngsild_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
        middleware=[Middleware(TrailingSlash)],
    )


def create_app_from_environment() -> Starlette:
    """Factory for uvicorn worker processes: settings come from STADSNAV_* set by the CLI."""
    return create_app(Settings())
