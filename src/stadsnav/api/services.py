"""What every route needs, built once per application at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from stadsnav.api.negotiation import link_context
from stadsnav.broker import Broker
from stadsnav.contexts import ContextResolver
from stadsnav.ingest.mqtt import MqttIngest
from stadsnav.ingest.pipeline import Pipeline
from stadsnav.ngsild.context import Context
from stadsnav.notify.manager import Subscriptions
from stadsnav.settings import Settings


@dataclass
class Services:
    settings: Settings
    broker: Broker
    contexts: ContextResolver
    pipeline: Pipeline
    mqtt: MqttIngest | None = None
    subscriptions: Subscriptions | None = None  # the subscription operations (clause 5.8)

    def mqtt_connected(self) -> bool:
        return self.mqtt is not None and self.mqtt.connected.is_set()

    async def context(self, reference: Any) -> Context:
        return await self.contexts.context_for(reference)

    async def request_context(self, request: Request) -> tuple[Context, str | None]:
        """The active context of a request without a body: from its Link header."""
        reference = link_context(request)
        return await self.contexts.context_for(reference), reference


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
