"""The subscriptions resource (clause 5.8): create, retrieve, query, update, delete, and the
validation of what a subscription may say. Both backends."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.errors import NgsiLdError
from stadsnav.ngsild.subscription import parse_subscription, prepare_new
from tests.helpers import link
from tests.notification_receivers import subscription

S = "/ngsi-ld/v1/subscriptions"
HOOK = "http://127.0.0.1:9/hook"


async def test_create_retrieve_update_delete(api: httpx.AsyncClient) -> None:
    body = subscription(
        HOOK,
        id="urn:ngsi-ld:Subscription:s1",
        subscriptionName="full bins",
        watchedAttributes=["fillingLevel"],
        q="fillingLevel>0.9",
        notification={"attributes": ["fillingLevel"], "format": "keyValues"},
    )
    created = await api.post(S, json=body)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{S}/urn:ngsi-ld:Subscription:s1"

    shown = (await api.get(f"{S}/urn:ngsi-ld:Subscription:s1")).json()
    assert shown["id"] == "urn:ngsi-ld:Subscription:s1"
    assert shown["type"] == "Subscription"
    assert shown["subscriptionName"] == "full bins"
    assert shown["watchedAttributes"] == ["fillingLevel"]
    assert shown["q"] == "fillingLevel>0.9"
    assert shown["status"] == "active"
    assert "isActive" not in shown  # shown as given; the status says it is active
    assert shown["notification"]["format"] == "keyValues"
    assert shown["notification"]["endpoint"] == {"uri": HOOK, "accept": "application/json"}
    assert "createdAt" not in shown  # system members only with options=sysAttrs
    with_sys = (await api.get(f"{S}/urn:ngsi-ld:Subscription:s1?options=sysAttrs")).json()
    assert with_sys["createdAt"] == with_sys["modifiedAt"]

    # A fragment's notification replaces the whole notification (clause 5.8.2).
    notification = {"format": "concise", "endpoint": {"uri": HOOK}}
    patched = await api.patch(
        f"{S}/urn:ngsi-ld:Subscription:s1",
        json={"isActive": False, "q": None, "notification": notification},
    )
    assert patched.status_code == 204, patched.text
    shown = (await api.get(f"{S}/urn:ngsi-ld:Subscription:s1?options=sysAttrs")).json()
    assert shown["isActive"] is False
    assert shown["status"] == "paused"
    assert "q" not in shown
    assert shown["notification"]["format"] == "concise"
    assert "attributes" not in shown["notification"]
    assert shown["modifiedAt"] > shown["createdAt"]
    incomplete = await api.patch(
        f"{S}/urn:ngsi-ld:Subscription:s1", json={"notification": {"format": "keyValues"}}
    )
    assert incomplete.status_code == 400
    past = await api.patch(
        f"{S}/urn:ngsi-ld:Subscription:s1", json={"expiresAt": "2000-01-01T00:00:00Z"}
    )
    assert past.status_code == 400
    assert past.json()["type"].endswith("BadRequestData")

    assert (await api.delete(f"{S}/urn:ngsi-ld:Subscription:s1")).status_code == 204
    gone = await api.get(f"{S}/urn:ngsi-ld:Subscription:s1")
    assert gone.status_code == 404
    assert gone.json()["type"].endswith("ResourceNotFound")


async def test_an_id_is_made_when_none_is_given(api: httpx.AsyncClient) -> None:
    created = await api.post(S, json=subscription(HOOK))
    location = created.headers["location"]
    assert location.startswith(f"{S}/urn:ngsi-ld:Subscription:")
    assert (await api.get(location)).json()["id"] == location.removeprefix(S + "/")


async def test_the_same_id_twice_is_409(api: httpx.AsyncClient) -> None:
    body = subscription(HOOK, id="urn:ngsi-ld:Subscription:twice")
    assert (await api.post(S, json=body)).status_code == 201
    again = await api.post(S, json=body)
    assert again.status_code == 409
    assert again.json()["type"].endswith("AlreadyExists")


async def test_unknown_ids_are_404(api: httpx.AsyncClient) -> None:
    await api.post(S, json=subscription(HOOK))
    for method in ("GET", "PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"isActive": False}} if method == "PATCH" else {}
        response = await api.request(method, f"{S}/urn:ngsi-ld:Subscription:nope", **kwargs)
        assert response.status_code == 404, method


async def test_list_pages_and_counts(api: httpx.AsyncClient) -> None:
    for n in range(5):
        await api.post(S, json=subscription(HOOK, id=f"urn:ngsi-ld:Subscription:{n}"))
    page = await api.get(S, params={"limit": 2, "offset": 2, "count": "true"})
    assert page.status_code == 200
    assert [s["id"] for s in page.json()] == [
        "urn:ngsi-ld:Subscription:2",
        "urn:ngsi-ld:Subscription:3",
    ]
    assert page.headers["NGSILD-Results-Count"] == "5"
    assert 'rel="next"' in page.headers["link"]
    assert 'rel="prev"' in page.headers["link"]


async def test_subscriptions_belong_to_their_tenant(api: httpx.AsyncClient) -> None:
    tenant = {"NGSILD-Tenant": "city-a"}
    await api.post(S, json=subscription(HOOK, id="urn:ngsi-ld:Subscription:t"), headers=tenant)
    assert len((await api.get(S, headers=tenant)).json()) == 1
    assert (await api.get(f"{S}/urn:ngsi-ld:Subscription:t")).status_code == 404
    assert (await api.get(S)).json() == []


async def test_user_context_names_are_kept_and_answered_with_that_context(
    api: httpx.AsyncClient, context_server: str
) -> None:
    url = f"{context_server}/city.jsonld"
    body = {
        "type": "Subscription",
        "id": "urn:ngsi-ld:Subscription:ctx",
        "entities": [{"type": "Bin"}],
        "watchedAttributes": ["level"],
        "notification": {"endpoint": {"uri": HOOK}},
    }
    created = await api.post(S, json=body, headers={"Link": link(url)})
    assert created.status_code == 201, created.text
    shown = await api.get(f"{S}/urn:ngsi-ld:Subscription:ctx")
    assert shown.json()["watchedAttributes"] == ["level"]
    assert url in shown.headers["link"]
    as_jsonld = await api.get(
        f"{S}/urn:ngsi-ld:Subscription:ctx", headers={"Accept": "application/ld+json"}
    )
    assert as_jsonld.json()["@context"] == url
    in_body = await api.post(
        S,
        content=httpx.Request("POST", "/", json={**body, "id": "urn:x:2", "@context": url}).read(),
        headers={"Content-Type": "application/ld+json"},
    )
    assert in_body.status_code == 201, in_body.text


BAD = [
    ({"notification": {"endpoint": {"uri": HOOK}}}, "needs at least one"),
    ({"entities": [{"type": "T"}]}, "notification"),
    ({"entities": [{"id": "urn:x:1"}], "notification": {"endpoint": {"uri": HOOK}}}, "type"),
    ({"entities": [], "notification": {"endpoint": {"uri": HOOK}}}, "non-empty"),
    (subscription("ftp://example.org/x"), "http(s)"),
    (subscription("mqtt://127.0.0.1:1883"), "topic"),
    (subscription("mqtt://127.0.0.1:1883/a/#"), "wildcards"),
    (subscription("not a uri"), "uri"),
    (subscription(HOOK, notificationTrigger=["whenever"]), "notificationTrigger"),
    (subscription(HOOK, q="fillingLevel>>"), "q"),
    (subscription(HOOK, geoQ={"georel": "near;maxDistance==5", "geometry": "Point"}), "geoQ"),
    (subscription(HOOK, throttling=0), "throttling"),
    (subscription(HOOK, timeInterval=5, watchedAttributes=["a"]), "timeInterval"),
    (subscription(HOOK, expiresAt="tomorrow"), "expiresAt"),
    (subscription(HOOK, isActive="yes"), "isActive"),
    (subscription(HOOK, notification={"format": "fancy"}), "format"),
    (subscription(HOOK, notification={"sysAttrs": 1}), "sysAttrs"),
    (subscription(HOOK, notification={"attributes": []}), "attributes"),
    (
        subscription(HOOK, notification={"endpoint": {"uri": HOOK, "accept": "text/html"}}),
        "accept",
    ),
    (
        subscription(
            HOOK,
            notification={
                "endpoint": {"uri": HOOK, "receiverInfo": [{"key": "Content-Type", "value": "x"}]}
            },
        ),
        "Content-Type",
    ),
    (
        subscription(
            "mqtt://127.0.0.1/t",
            notification={
                "endpoint": {
                    "uri": "mqtt://127.0.0.1/t",
                    "notifierInfo": [{"key": "MQTT-QoS", "value": "3"}],
                }
            },
        ),
        "MQTT-QoS",
    ),
    (subscription(HOOK, surprise=1), "surprise"),
    (subscription(HOOK, type="Registration"), "type"),
]


@pytest.mark.parametrize(("body", "said"), BAD)
async def test_invalid_subscriptions_are_400(
    api: httpx.AsyncClient, body: dict[str, Any], said: str
) -> None:
    response = await api.post(S, json=body)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["type"].endswith("BadRequestData")
    assert said.lower() in problem["detail"].lower()
    assert response.headers["content-type"] == "application/problem+json"


async def test_what_is_not_implemented_is_said_so(api: httpx.AsyncClient) -> None:
    response = await api.post(S, json=subscription(HOOK, csf="x"))
    assert response.status_code == 422
    assert response.json()["type"].endswith("OperationNotSupported")


async def test_an_invalid_update_changes_nothing(api: httpx.AsyncClient) -> None:
    await api.post(S, json=subscription(HOOK, id="urn:ngsi-ld:Subscription:u"))
    response = await api.patch(f"{S}/urn:ngsi-ld:Subscription:u", json={"throttling": -1})
    assert response.status_code == 400
    moved = await api.patch(f"{S}/urn:ngsi-ld:Subscription:u", json={"id": "urn:x:other"})
    assert moved.status_code == 400
    assert "throttling" not in (await api.get(f"{S}/urn:ngsi-ld:Subscription:u")).json()


async def test_not_json_and_wrong_media_types(api: httpx.AsyncClient) -> None:
    assert (
        await api.post(S, content=b"{", headers={"Content-Type": "application/json"})
    ).status_code == 400
    assert (
        await api.post(S, content=b"{}", headers={"Content-Type": "text/plain"})
    ).status_code == 415
    assert (await api.post(S, json=[1, 2])).status_code == 400


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
_members = st.fixed_dictionaries(
    {},
    optional={
        "entities": _json | st.just([{"type": "T", "idPattern": "["}]),
        "watchedAttributes": _json | st.just(["a", "b"]),
        "notificationTrigger": _json | st.just(["entityDeleted"]),
        "q": _json | st.text(max_size=20),
        "geoQ": _json,
        "throttling": _json,
        "timeInterval": _json,
        "expiresAt": _json,
        "isActive": _json,
        "notification": _json
        | st.fixed_dictionaries(
            {"endpoint": _json | st.just({"uri": HOOK})},
            optional={"format": _json, "attributes": _json, "showChanges": _json},
        ),
    },
)


@hsettings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_members)
def test_the_validator_accepts_or_refuses_but_never_breaks(doc: dict[str, Any]) -> None:
    """Any JSON at all: a Subscription, or an NGSI-LD error, never another exception."""
    ctx = Context.build()
    with contextlib.suppress(NgsiLdError):
        parse_subscription(prepare_new(doc, "urn:ngsi-ld:Subscription:h"), ctx)


async def test_a_jsonld_context_that_cannot_be_fetched_is_refused_at_creation(
    api: httpx.AsyncClient,
) -> None:
    body = subscription(HOOK, jsonldContext="http://127.0.0.1:9/no-such-context.jsonld")
    answer = await api.post(S, json=body)
    assert answer.status_code == 503, answer.text
    assert answer.json()["type"].endswith("LdContextNotAvailable")
    assert (await api.get(S)).json() == []
