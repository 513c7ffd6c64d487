"""Notifications to a real HTTP receiver on loopback, end to end through entity writes: which
changes notify (entities, watchedAttributes, triggers, q, geoQ), what they carry (formats,
attributes, sysAttrs, showChanges, headers), and when (throttling, timeInterval, expiresAt,
isActive). Both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.helpers import bin_entity
from tests.notification_receivers import Receiver, subscription

S = "/ngsi-ld/v1/subscriptions"
E = "/ngsi-ld/v1/entities"
BIN = "urn:ngsi-ld:WasteContainer:"


async def subscribe(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await api.post(S, json=body)
    assert response.status_code == 201, response.text
    return response.headers["location"].removeprefix(S + "/")


async def level(api: httpx.AsyncClient, n: int, value: float) -> None:
    response = await api.patch(
        f"{E}/{BIN}{n}/attrs", json={"fillingLevel": {"type": "Property", "value": value}}
    )
    assert response.status_code == 204, response.text


async def quiet(receiver: Receiver, count: int, seconds: float = 0.4) -> None:
    """Nothing more than `count` entities arrives for a while."""
    await asyncio.sleep(seconds)
    assert len(receiver.entities()) == count, receiver.entities()


async def test_default_triggers_are_attribute_creation_and_update(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(api, subscription(receiver.url))
    await api.post(E, json=bin_entity(f"{BIN}1", level=0.1))
    await receiver.wait(1)
    await level(api, 1, 0.2)
    await receiver.wait(2)
    await api.delete(f"{E}/{BIN}1")
    await quiet(receiver, 2)
    first, second = receiver.entities()
    assert first["fillingLevel"]["value"] == 0.1
    assert second["fillingLevel"]["value"] == 0.2
    body = receiver.received[0].body
    assert body["type"] == "Notification"
    assert body["id"].startswith("urn:ngsi-ld:Notification:")
    assert body["notifiedAt"].endswith("Z")


async def test_entity_triggers(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(
        api,
        subscription(receiver.url, notificationTrigger=["entityCreated", "entityDeleted"]),
    )
    await api.post(E, json=bin_entity(f"{BIN}1"))
    await level(api, 1, 0.9)
    await api.delete(f"{E}/{BIN}1")
    await receiver.wait(2)
    await quiet(receiver, 2)
    created, deleted = receiver.entities()
    assert created["id"] == deleted["id"] == f"{BIN}1"
    assert "fillingLevel" in created
    assert deleted["type"] == "WasteContainer"
    assert "deletedAt" in deleted
    assert "fillingLevel" not in deleted


async def test_attribute_deleted_trigger_and_watched_attributes(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await api.post(E, json=bin_entity(f"{BIN}1"))
    await subscribe(
        api,
        subscription(
            receiver.url,
            watchedAttributes=["status"],
            notificationTrigger=["attributeDeleted", "attributeUpdated"],
        ),
    )
    await asyncio.sleep(0.3)
    await level(api, 1, 0.7)  # not watched
    await api.patch(f"{E}/{BIN}1/attrs", json={"status": {"type": "Property", "value": "full"}})
    await receiver.wait(1)
    await api.delete(f"{E}/{BIN}1/attrs/status")
    await receiver.wait(2)
    updated, deleted = receiver.entities()
    assert updated["status"]["value"] == "full"
    # A deleted attribute is shown with the NGSI-LD null (clause 4.5.x).
    assert deleted["status"] == {"type": "Property", "value": "urn:ngsi-ld:null"}


async def test_entity_selectors_by_id_pattern_and_type(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(
        api,
        {
            "type": "Subscription",
            "entities": [
                {"type": "WasteContainer", "idPattern": ".*:WasteContainer:north-.*"},
                {"type": "Streetlight", "id": "urn:ngsi-ld:Streetlight:7"},
            ],
            "notificationTrigger": ["entityCreated"],
            "notification": {"endpoint": {"uri": receiver.url}},
        },
    )
    await api.post(E, json=bin_entity(f"{BIN}south-1"))
    await api.post(E, json=bin_entity(f"{BIN}north-1"))
    await api.post(E, json={"id": "urn:ngsi-ld:Streetlight:7", "type": "Streetlight"})
    await api.post(E, json={"id": "urn:ngsi-ld:Streetlight:8", "type": "Streetlight"})
    await receiver.wait(2)
    await quiet(receiver, 2)
    assert [e["id"] for e in receiver.entities()] == [
        f"{BIN}north-1",
        "urn:ngsi-ld:Streetlight:7",
    ]


async def test_q_and_geoq_filter_the_changes(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(
        api,
        subscription(
            receiver.url,
            q="fillingLevel>0.8",
            geoQ={
                "georel": "near;maxDistance==2000",
                "geometry": "Point",
                "coordinates": [18.07, 59.33],
            },
        ),
    )
    await api.post(E, json=bin_entity(f"{BIN}near", level=0.5))
    await api.post(E, json=bin_entity(f"{BIN}far", level=0.9, lon=11.97, lat=57.7))
    await level(api, "near", 0.95)  # type: ignore[arg-type]
    await level(api, "far", 0.99)  # type: ignore[arg-type]
    await receiver.wait(1)
    await quiet(receiver, 1)
    assert receiver.entities()[0]["id"] == f"{BIN}near"
    assert receiver.entities()[0]["fillingLevel"]["value"] == 0.95


async def test_formats_attributes_and_sysattrs(api: httpx.AsyncClient, receiver: Receiver) -> None:
    for fmt in ("keyValues", "concise", "normalized"):
        await subscribe(
            api,
            subscription(
                f"{receiver.url}/{fmt}",
                notification={"format": fmt, "attributes": ["fillingLevel"], "sysAttrs": True},
            ),
        )
    await api.post(E, json=bin_entity(f"{BIN}1", level=0.3))
    for fmt in ("keyValues", "concise", "normalized"):
        await receiver.wait(1, path=f"/{fmt}")
    key_values = receiver.entities("/keyValues")[0]
    assert key_values == {"id": f"{BIN}1", "type": "WasteContainer", "fillingLevel": 0.3}
    concise = receiver.entities("/concise")[0]
    assert concise["fillingLevel"]["value"] == 0.3
    assert "type" not in concise["fillingLevel"]
    assert "createdAt" in concise
    normalized = receiver.entities("/normalized")[0]
    assert set(normalized) == {"id", "type", "fillingLevel", "createdAt", "modifiedAt"}
    assert normalized["fillingLevel"]["type"] == "Property"
    assert "modifiedAt" in normalized["fillingLevel"]


async def test_show_changes_gives_the_previous_value(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await api.post(E, json=bin_entity(f"{BIN}1", level=0.3))
    await subscribe(api, subscription(receiver.url, notification={"showChanges": True}))
    await asyncio.sleep(0.3)
    await level(api, 1, 0.6)
    await receiver.wait(1)
    shown = receiver.entities()[0]["fillingLevel"]
    assert shown["value"] == 0.6
    assert shown["previousValue"] == 0.3
    assert "previousValue" not in receiver.entities()[0]["status"]


async def test_headers_receiver_info_tenant_and_jsonld(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    tenant = {"NGSILD-Tenant": "city-b"}
    await api.post(E, json=bin_entity(f"{BIN}0"), headers=tenant)
    endpoint = {
        "uri": f"{receiver.url}/plain",
        "receiverInfo": [{"key": "Authorization", "value": "Bearer s3cret"}],
    }
    await subscribe_in(api, tenant, subscription("x", notification={"endpoint": endpoint}))
    ld = {"uri": f"{receiver.url}/ld", "accept": "application/ld+json"}
    await subscribe_in(api, tenant, subscription("x", notification={"endpoint": ld}))
    await asyncio.sleep(0.3)
    await api.post(E, json=bin_entity(f"{BIN}1"), headers=tenant)
    await receiver.wait(1, path="/plain")
    await receiver.wait(1, path="/ld")
    plain = next(r for r in receiver.received if r.path == "/plain")
    assert plain.headers["Authorization"] == "Bearer s3cret"
    assert plain.headers["NGSILD-Tenant"] == "city-b"
    assert plain.headers["Content-Type"] == "application/json"
    assert "ngsi-ld-core-context" in plain.headers["Link"]
    linked = next(r for r in receiver.received if r.path == "/ld")
    assert linked.headers["Content-Type"] == "application/ld+json"
    assert "Link" not in linked.headers
    assert "ngsi-ld-core-context" in linked.body["@context"]
    # Each entity in a JSON-LD notification carries the @context too.
    assert all("@context" in entity for entity in linked.body["data"])


async def test_a_json_notification_links_the_subscriptions_own_context(
    api: httpx.AsyncClient, receiver: Receiver, context_server: str
) -> None:
    city = f"{context_server}/city.jsonld"
    body = {**subscription(receiver.url), "@context": [city]}
    created = await api.post(S, json=body, headers={"Content-Type": "application/ld+json"})
    assert created.status_code == 201, created.text
    await asyncio.sleep(0.3)
    await api.post(E, json=bin_entity(f"{BIN}1"))
    await receiver.wait(1)
    assert receiver.received[0].headers["Link"].startswith(f"<{city}>")


async def subscribe_in(api: httpx.AsyncClient, headers: dict[str, str], body: Any) -> None:
    response = await api.post(S, json=body, headers=headers)
    assert response.status_code == 201, response.text


async def test_throttling_groups_changes_into_one_later_notification(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await api.post(E, json=bin_entity(f"{BIN}1", level=0.0))
    await subscribe(api, subscription(receiver.url, throttling=1))
    await asyncio.sleep(0.3)
    await level(api, 1, 0.1)
    await receiver.wait(1)
    for value in (0.2, 0.3, 0.4):
        await level(api, 1, value)
    await asyncio.sleep(0.5)
    assert len(receiver.received) == 1  # within the throttling period: held back
    await receiver.wait(4)
    assert len(receiver.received) == 2
    assert [e["fillingLevel"]["value"] for e in receiver.received[1].body["data"]] == [
        0.2,
        0.3,
        0.4,
    ]


async def test_periodic_notifications_carry_the_current_entities(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await api.post(E, json=bin_entity(f"{BIN}1", level=0.1))
    await api.post(E, json=bin_entity(f"{BIN}2", level=0.2))
    sub_id = await subscribe(api, subscription(receiver.url, timeInterval=1, q="fillingLevel>0.15"))
    await receiver.wait(1)
    await level(api, 2, 0.25)
    await receiver.wait(2, seconds=5)
    assert [e["fillingLevel"]["value"] for e in receiver.entities()] == [0.2, 0.25]
    first, second = (r.body["notifiedAt"] for r in receiver.received[:2])
    assert _seconds_between(first, second) >= 0.9
    # The status is recorded just after the receiver answered: give it a moment.
    for _ in range(50):
        shown = (await api.get(f"{S}/{sub_id}")).json()
        if shown["notification"].get("timesSent", 0) >= 2:
            break
        await asyncio.sleep(0.05)
    assert shown["timeInterval"] == 1
    assert shown["notification"]["timesSent"] >= 2


def _seconds_between(a: str, b: str) -> float:
    parse = datetime.fromisoformat
    return (parse(b.replace("Z", "+00:00")) - parse(a.replace("Z", "+00:00"))).total_seconds()


async def test_paused_and_expired_subscriptions_notify_nothing(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    paused = await subscribe(api, subscription(f"{receiver.url}/paused", isActive=False))
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    expiring = await subscribe(api, subscription(f"{receiver.url}/expiring", expiresAt=soon))
    await api.post(E, json=bin_entity(f"{BIN}1"))
    await receiver.wait(1, path="/expiring")
    await asyncio.sleep(1.2)
    await level(api, 1, 0.5)
    await quiet(receiver, 1)
    assert (await api.get(f"{S}/{expiring}")).json()["status"] == "expired"
    assert (await api.get(f"{S}/{paused}")).json()["status"] == "paused"
    # Reactivated, it hears of what changes next.
    await api.patch(f"{S}/{paused}", json={"isActive": True})
    await level(api, 1, 0.6)
    await receiver.wait(1, path="/paused")
    assert receiver.entities("/paused")[0]["fillingLevel"]["value"] == 0.6


async def test_status_fields_after_success(api: httpx.AsyncClient, receiver: Receiver) -> None:
    sub_id = await subscribe(api, subscription(receiver.url))
    await api.post(E, json=bin_entity(f"{BIN}1"))
    await receiver.wait(1)
    await asyncio.sleep(0.2)
    notification = (await api.get(f"{S}/{sub_id}")).json()["notification"]
    assert notification["status"] == "ok"
    assert notification["timesSent"] == 1
    assert notification["lastSuccess"] == notification["lastNotification"]
    assert "lastFailure" not in notification


async def test_changes_of_one_entity_arrive_in_order(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await api.post(E, json=bin_entity(f"{BIN}1", level=0.0))
    await api.post(E, json=bin_entity(f"{BIN}2", level=0.0))
    await subscribe(api, subscription(receiver.url))
    await asyncio.sleep(0.3)
    for step in range(1, 31):
        await level(api, 1 + step % 2, step / 100)
    await receiver.wait(30)
    for n in (1, 2):
        values = [e["fillingLevel"]["value"] for e in receiver.entities() if e["id"] == f"{BIN}{n}"]
        assert values == sorted(values)
        assert len(values) == 15


async def test_deleted_entity_with_show_changes_shows_its_last_values(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await api.post(E, json=bin_entity(f"{BIN}1", level=0.4))
    body = subscription(receiver.url, notificationTrigger=["entityDeleted"])
    body["notification"]["showChanges"] = True
    body["notification"]["sysAttrs"] = True
    await subscribe(api, body)
    await asyncio.sleep(0.3)
    assert (await api.delete(f"{E}/{BIN}1")).status_code == 204
    await receiver.wait(1)
    [gone] = receiver.entities()
    level = gone["fillingLevel"]
    assert level["value"] == "urn:ngsi-ld:null"
    assert level["previousValue"] == 0.4
    assert level["deletedAt"] == gone["deletedAt"]
    assert "createdAt" in gone
