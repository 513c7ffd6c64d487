"""Routes for device data over HTTP: network-server webhooks and dead letters.

Webhooks answer once the uplink's outcome is durable: 200 when it was stored (or was a
duplicate, or an event without measurements), 202 when it was kept as a dead letter (the body
says why, and where to find it), 400 when the request is not a network-server event at all
(it is kept as a dead letter too, so nothing sent is ever lost).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from stadsnav.api import params
from stadsnav.api.negotiation import JSON, read_bytes, tenant_of
from stadsnav.api.services import services
from stadsnav.broker import now
from stadsnav.devices.credentials import verify_secret
from stadsnav.ingest.pipeline import Message, Outcome
from stadsnav.ngsild.errors import BadRequestData, ResourceNotFound, Unauthorized
from stadsnav.store.base import DeadLetter

BASE = "/ingest"


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


async def _webhook(request: Request, network: str, event: str | None) -> Response:
    svc = services(request)
    message = Message(
        tenant=tenant_of(request),
        transport="http",
        network=network,
        event=event,
        source=request.url.path,
        body=await read_bytes(request, svc.settings.max_body_bytes),
        received_at=now(),
    )
    outcome = await svc.pipeline.submit(message)
    if outcome.status == "dead-letter" and outcome.stage == "envelope":
        raise BadRequestData(
            f"Not a {network} event: {outcome.reason} (kept as dead letter {outcome.dead_letter})"
        )
    return _json(outcome.as_json(), 202 if outcome.status == "dead-letter" else 200)


async def chirpstack(request: Request) -> Response:
    """ChirpStack v4 HTTP integration: the event type comes as ?event=up."""
    params.check_known(request.query_params, {"event"})
    event = request.query_params.get("event")
    if not event:
        raise BadRequestData("The ChirpStack HTTP integration names the event: ?event=up")
    return await _webhook(request, "chirpstack", event)


async def tts(request: Request) -> Response:
    """The Things Stack v3 webhook: the message type is the body's top-level member."""
    params.check_known(request.query_params, set())
    return await _webhook(request, "tts", None)


async def plain_device(request: Request) -> Response:
    """A device sending its own JSON, authenticated by its secret as a bearer token."""
    params.check_known(request.query_params, set())
    key = request.path_params["key"].lower()
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    found = await services(request).broker.store.devices(tenant_of(request), [key])
    # One answer for every failure, so that a caller cannot probe which devices exist.
    if (
        scheme.lower() != "bearer"
        or not found
        or found[0].secret_hash is None
        or not verify_secret(secret.strip(), found[0].secret_hash)
    ):
        raise Unauthorized(f"Device {key:.40} must send its own secret: Authorization: Bearer …")
    return await _webhook(request, "json", None)


def _letter_json(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "receivedAt": letter.received_at,
        "transport": letter.transport,
        "network": letter.network,
        "event": letter.event,
        "source": letter.source,
        "device": letter.device,
        "stage": letter.stage,
        "reason": letter.reason,
        "body": base64.b64encode(letter.body).decode(),
        "replayedAt": letter.replayed_at,
        "outcome": letter.outcome,
    }


def _letter_id(request: Request) -> int:
    raw = request.path_params["letter_id"]
    if not raw.isdigit():
        raise BadRequestData(f"Dead letter ids are numbers, got {raw!r:.50}")
    return int(raw)


async def list_dead_letters(request: Request) -> Response:
    query = request.query_params
    params.check_known(query, {"status", "limit", "offset"})
    status = query.get("status", "open")
    if status not in ("open", "all"):
        raise BadRequestData("status is open (not stored yet, the default) or all")
    limit = params.integer(query, "limit", 20, 1000)
    offset = params.integer(query, "offset", 0)
    letters = await services(request).broker.store.dead_letters(
        tenant_of(request), open_only=status == "open", limit=limit, offset=offset
    )
    return _json([_letter_json(letter) for letter in letters])


async def get_dead_letter(request: Request) -> Response:
    return _json(_letter_json(await _one_letter(request)))


async def _one_letter(request: Request) -> DeadLetter:
    letter_id = _letter_id(request)
    found = await services(request).broker.store.dead_letters(
        tenant_of(request), open_only=False, limit=1, offset=0, ids=[letter_id]
    )
    if not found:
        raise ResourceNotFound(f"No dead letter {letter_id}")
    return found[0]


async def replay_dead_letter(request: Request) -> Response:
    letter = await _one_letter(request)
    outcomes = await services(request).pipeline.replay(tenant_of(request), [letter.id])
    return _json(_replayed(outcomes[letter.id]))


async def replay_open_dead_letters(request: Request) -> Response:
    """Replay every open dead letter (up to `limit`), e.g. after a decoder fix."""
    params.check_known(request.query_params, {"limit"})
    limit = params.integer(request.query_params, "limit", 1000, 10_000)
    svc = services(request)
    tenant = tenant_of(request)
    letters = await svc.broker.store.dead_letters(tenant, open_only=True, limit=limit, offset=0)
    outcomes = await svc.pipeline.replay(tenant, [letter.id for letter in letters])
    return _json({str(i): _replayed(outcome) for i, outcome in sorted(outcomes.items())})


def _replayed(outcome: Outcome) -> dict[str, Any]:
    found = outcome.as_json()
    found.pop("deadLetter", None)
    return found


routes = [
    Route(f"{BASE}/chirpstack", chirpstack, methods=["POST"]),
    Route(f"{BASE}/tts", tts, methods=["POST"]),
    Route(f"{BASE}/devices/{{key}}", plain_device, methods=["POST"]),
    Route(f"{BASE}/dead-letters", list_dead_letters, methods=["GET"]),
    Route(f"{BASE}/dead-letters/replay", replay_open_dead_letters, methods=["POST"]),
    Route(f"{BASE}/dead-letters/{{letter_id}}", get_dead_letter, methods=["GET"]),
    Route(f"{BASE}/dead-letters/{{letter_id}}/replay", replay_dead_letter, methods=["POST"]),
]
