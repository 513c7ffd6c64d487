"""Delivery guarantees: a failing receiver is retried with back-off and recovers, without
holding up other subscribers; notifications queued before a restart are delivered after it;
with two workers on one database each change is notified once; MQTT endpoints publish on the
real Mosquitto. Both backends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from stadsnav.settings import Settings
from tests.helpers import bin_entity
from tests.notification_receivers import Receiver, mqtt_listener, running, subscription

S = "/ngsi-ld/v1/subscriptions"
E = "/ngsi-ld/v1/entities"
BIN = "urn:ngsi-ld:WasteContainer:"


async def until(check: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_failing_receiver_is_retried_marked_and_recovers(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    failing = (await api.post(S, json=subscription(f"{receiver.url}/down"))).headers["location"]
    receiver.status = 503
    await api.post(E, json=bin_entity(f"{BIN}1", level=0.1))

    async def failed_twice() -> bool:
        shown = (await api.get(failing)).json()["notification"]
        return bool(shown.get("consecutiveErrors", 0) >= 2)

    await until(failed_twice)
    shown = (await api.get(failing)).json()["notification"]
    assert shown["status"] == "failed"
    assert shown["timesFailed"] >= 2
    assert "503" in shown["lastErrorReason"]
    assert "lastSuccess" not in shown
    # A change made while failing is queued behind the first and sent after it.
    await api.patch(f"{E}/{BIN}1/attrs", json={"fillingLevel": {"type": "Property", "value": 0.2}})
    receiver.status = 200
    await receiver.wait(2, path="/down")
    assert [e["fillingLevel"]["value"] for e in receiver.entities("/down")] == [0.1, 0.2]

    async def recovered() -> bool:
        return bool((await api.get(failing)).json()["notification"].get("status") == "ok")

    await until(recovered)
    shown = (await api.get(failing)).json()["notification"]
    assert "consecutiveErrors" not in shown
    assert shown["lastSuccess"] >= shown["lastFailure"]


async def test_a_hanging_receiver_does_not_delay_other_subscribers(
    notify_settings: Settings, receiver: Receiver
) -> None:
    import socket

    # A receiver that accepts connections and never answers.
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(16)
    port = black_hole.getsockname()[1]
    try:
        async with running(notify_settings.model_copy(update={"notify_timeout": 5})) as (_, api):
            await api.post(S, json=subscription(f"http://127.0.0.1:{port}/hangs"))
            await api.post(S, json=subscription(f"{receiver.url}/fine"))
            started = time.monotonic()
            await api.post(E, json=bin_entity(f"{BIN}1"))
            await receiver.wait(1, path="/fine", seconds=3)
            assert time.monotonic() - started < 2
    finally:
        black_hole.close()


async def test_notifications_queued_before_a_restart_are_delivered_after_it(
    notify_settings: Settings, receiver: Receiver
) -> None:
    receiver.status = 500
    async with running(notify_settings) as (_, api):
        await api.post(S, json=subscription(receiver.url))
        await api.post(E, json=bin_entity(f"{BIN}1", level=0.1))
        await api.post(E, json=bin_entity(f"{BIN}2", level=0.2))
        await until(_attempted(receiver))
    # stadsnav is down; the receiver comes back; a new stadsnav on the same database delivers.
    receiver.status = 200
    assert receiver.entities() == []
    async with running(notify_settings):
        await receiver.wait(2)
    assert [e["id"] for e in receiver.entities()] == [f"{BIN}1", f"{BIN}2"]


def _attempted(receiver: Receiver) -> Any:
    async def check() -> bool:
        return receiver.attempts >= 1

    return check


async def test_two_workers_on_one_database_notify_each_change_once(
    notify_settings: Settings, receiver: Receiver
) -> None:
    async with running(notify_settings) as (_, one), running(notify_settings) as (_, two):
        await one.post(S, json=subscription(receiver.url))
        await asyncio.sleep(0.5)  # the other worker reloads the subscriptions
        writes = []
        for n in range(40):
            api = one if n % 2 else two
            writes.append(api.post(E, json=bin_entity(f"{BIN}{n}", level=n / 100)))
        for response in await asyncio.gather(*writes):
            assert response.status_code == 201
        await receiver.wait(40)
        await asyncio.sleep(0.5)
    ids = [e["id"] for e in receiver.entities()]
    assert len(ids) == 40
    assert len(set(ids)) == 40


async def test_mqtt_endpoint_publishes_metadata_and_body(
    api: httpx.AsyncClient, system_broker: str
) -> None:
    async with mqtt_listener(system_broker) as (topic, messages):
        endpoint = {
            "uri": f"{system_broker}/{topic}",
            "accept": "application/json",
            "receiverInfo": [{"key": "X-City", "value": "Stockholm"}],
            "notifierInfo": [
                {"key": "MQTT-QoS", "value": "1"},
                {"key": "MQTT-Version", "value": "mqtt3.1.1"},
            ],
        }
        location = (
            await api.post(
                S,
                json=subscription("x", notification={"endpoint": endpoint, "format": "keyValues"}),
            )
        ).headers["location"]
        await api.post(E, json=bin_entity(f"{BIN}1", level=0.4))

        async def arrived() -> bool:
            return bool(messages)

        await until(arrived)
    message = messages[0]
    assert message["metadata"]["Content-Type"] == "application/json"
    assert message["metadata"]["X-City"] == "Stockholm"
    assert "ngsi-ld-core-context" in message["metadata"]["Link"]
    assert message["body"]["type"] == "Notification"
    assert message["body"]["data"] == [
        {
            "id": f"{BIN}1",
            "type": "WasteContainer",
            "fillingLevel": 0.4,
            "status": "ok",
            "location": {"type": "Point", "coordinates": [18.07, 59.33]},
            "refDevice": "urn:ngsi-ld:Device:d1",
        }
    ]
    await asyncio.sleep(0.2)
    assert (await api.get(location)).json()["notification"]["status"] == "ok"


async def test_an_unreachable_mqtt_broker_marks_the_subscription_failed(
    api: httpx.AsyncClient,
) -> None:
    location = (await api.post(S, json=subscription("mqtt://127.0.0.1:9/nowhere"))).headers[
        "location"
    ]
    await api.post(E, json=bin_entity(f"{BIN}1"))

    async def failed() -> bool:
        return bool((await api.get(location)).json()["notification"].get("status") == "failed")

    await until(failed)
    assert "MQTT" in (await api.get(location)).json()["notification"]["lastErrorReason"]
