"""Subscriptions (clause 5.2.12) and notifications (clause 5.3.1): parsing, validation and
rendering, with no I/O.

A subscription is kept as its client wrote it (the payload without @context) together with the
@context it came with; `parse_subscription` turns that pair into a frozen `Subscription` whose
names are expanded, once, at the edge. Matching changes against it is notify/matching.py's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.entity import VALUE_KEY, Entity, Instance
from stadsnav.ngsild.errors import BadRequestData, OperationNotSupported
from stadsnav.ngsild.geoquery import GeoQuery, parse_geoquery
from stadsnav.ngsild.names import check_name, check_uri, normalize_datetime
from stadsnav.ngsild.projection import attribute_iri
from stadsnav.ngsild.qlang import QExpr, parse_q
from stadsnav.ngsild.query import (
    TypeAnd,
    TypeExpr,
    TypeName,
    TypeOr,
    parse_scope_query,
    parse_type_expression,
)
from stadsnav.ngsild.render import Format, Representation, geojson_feature, render_entity

TRIGGERS = (
    "entityCreated",
    "entityUpdated",
    "entityDeleted",
    "attributeCreated",
    "attributeUpdated",
    "attributeDeleted",
)
# Without notificationTrigger (clause 5.2.12): attributeCreated and attributeUpdated.
DEFAULT_TRIGGERS = frozenset({"attributeCreated", "attributeUpdated"})
ACCEPTS = ("application/json", "application/ld+json", "application/geo+json")
FORMATS: tuple[Format, ...] = ("normalized", "concise", "keyValues")
MQTT_VERSIONS = ("mqtt3.1.1", "mqtt5.0")
# Members the broker sets; a client may send them back (a GET result) and they are ignored.
_READ_ONLY = frozenset({"createdAt", "modifiedAt", "deletedAt", "status"})
_NOTIFICATION_STATUS = frozenset(
    {"status", "timesSent", "timesFailed", "lastNotification", "lastFailure", "lastSuccess",
     "consecutiveErrors", "lastErrorReason"}
)  # fmt: skip
_KNOWN = frozenset(
    {"id", "type", "subscriptionName", "description", "entities", "watchedAttributes",
     "notificationTrigger", "timeInterval", "q", "geoQ", "scopeQ", "isActive", "notification",
     "expiresAt", "throttling", "lang", "jsonldContext", "localOnly", "@context"}
) | _READ_ONLY  # fmt: skip
_NOT_YET = frozenset({"csf", "temporalQ", "datasetId"})
_NOTIFICATION_KNOWN = frozenset(
    {"attributes", "format", "sysAttrs", "showChanges", "endpoint"}
) | _NOTIFICATION_STATUS  # fmt: skip
_NOTIFICATION_NOT_YET = frozenset({"pick", "omit", "join", "joinLevel"})
_ENDPOINT_KNOWN = frozenset(
    {"uri", "accept", "timeout", "cooldown", "receiverInfo", "notifierInfo"}
)  # fmt: skip
# Header names a receiverInfo may not set: stadsnav sets them itself.
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "link", "host", "ngsild-tenant"})
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")


@dataclass(frozen=True)
class EntitySelector:
    """One element of `entities` (clause 5.2.33): id, idPattern and type must all hold."""

    types: TypeExpr
    id: str | None = None
    id_pattern: str | None = None

    def matches(self, entity_id: str, types: list[str]) -> bool:
        if self.id is not None and entity_id != self.id:
            return False
        if self.id_pattern is not None and re.search(self.id_pattern, entity_id) is None:
            return False
        return type_matches(self.types, types)


def type_matches(expr: TypeExpr, types: list[str]) -> bool:
    if isinstance(expr, TypeName):
        return expr.iri in types
    if isinstance(expr, TypeAnd):
        return all(type_matches(part, types) for part in expr.parts)
    if isinstance(expr, TypeOr):
        return any(type_matches(part, types) for part in expr.parts)
    return False


@dataclass(frozen=True)
class Endpoint:
    """Where notifications go (clause 5.2.15): an http(s):// or mqtt(s):// URI."""

    uri: str
    accept: str = "application/json"
    receiver_info: tuple[tuple[str, str], ...] = ()
    notifier_info: tuple[tuple[str, str], ...] = ()
    timeout_ms: float | None = None
    cooldown_ms: float | None = None

    @property
    def scheme(self) -> str:
        return self.uri.split(":", 1)[0].lower()

    def notifier(self, key: str) -> str | None:
        for name, value in self.notifier_info:
            if name == key:
                return value
        return None


@dataclass(frozen=True)
class Subscription:
    id: str
    endpoint: Endpoint
    entities: tuple[EntitySelector, ...] = ()
    watched: frozenset[str] | None = None  # attribute IRIs; None: any attribute
    triggers: frozenset[str] = DEFAULT_TRIGGERS
    q: QExpr | None = None
    geo: GeoQuery | None = None
    scope: tuple[tuple[str, ...], ...] | None = None
    attributes: frozenset[str] | None = None  # notification.attributes as IRIs
    format: Format = "normalized"
    sys_attrs: bool = False
    show_changes: bool = False
    throttling: float | None = None
    time_interval: float | None = None
    expires_at: str | None = None
    is_active: bool = True
    jsonld_context: str | None = None
    lang: str | None = None

    def selects(self, entity_id: str, types: list[str]) -> bool:
        if not self.entities:
            return True
        return any(s.matches(entity_id, types) for s in self.entities)

    def status(self, now: str) -> str:
        """active, paused or expired (clause 5.2.12)."""
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active" if self.is_active else "paused"

    def live(self, now: str) -> bool:
        return self.status(now) == "active"


def prepare_new(payload: Any, new_id: str) -> dict[str, Any]:
    """The document to keep for a subscription being created: the payload without @context
    and read-only members, with an id (`new_id` when the client gave none)."""
    doc = _document(payload)
    doc.setdefault("id", new_id)
    doc.setdefault("type", "Subscription")
    return doc


def merge_update(stored: dict[str, Any], payload: Any) -> dict[str, Any]:
    """PATCH /subscriptions/{id} (clause 5.8.2): members of the fragment replace the stored
    ones, `notification` as a whole; `null` removes a member."""
    fragment = _document(payload)
    if "id" in fragment and fragment["id"] != stored["id"]:
        raise BadRequestData("The id of a subscription cannot be changed")
    if "type" in fragment and fragment["type"] != "Subscription":
        raise BadRequestData("type must be Subscription")
    merged = dict(stored)
    for key, value in fragment.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _document(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise BadRequestData("A subscription must be a JSON object")
    doc = {k: v for k, v in payload.items() if k != "@context" and k not in _READ_ONLY}
    notification = doc.get("notification")
    if isinstance(notification, dict):
        doc["notification"] = {
            k: v for k, v in notification.items() if k not in _NOTIFICATION_STATUS
        }
    return doc


def parse_subscription(doc: dict[str, Any], ctx: Context) -> Subscription:
    """Validate a subscription document; every problem is BadRequestData (or
    OperationNotSupported for members stadsnav does not implement yet)."""
    for key in doc:
        if key in _NOT_YET:
            raise OperationNotSupported(f"Subscriptions with {key} are not supported yet")
        if key not in _KNOWN:
            raise BadRequestData(f"Unknown subscription member {key!r:.100}")
    sub_id = check_uri(doc.get("id"), "Subscription id")
    if doc.get("type", "Subscription") != "Subscription":
        raise BadRequestData("type must be Subscription")
    for key in ("subscriptionName", "description"):
        if key in doc and not isinstance(doc[key], str):
            raise BadRequestData(f"{key} must be a string")
    if doc.get("localOnly") not in (None, True, False):
        raise BadRequestData("localOnly must be true or false")
    entities = _entities(doc.get("entities"), ctx)
    watched = _names(doc.get("watchedAttributes"), "watchedAttributes", ctx)
    time_interval = _positive(doc.get("timeInterval"), "timeInterval")
    throttling = _positive(doc.get("throttling"), "throttling")
    if time_interval is not None:
        if watched is not None or throttling is not None or "notificationTrigger" in doc:
            raise BadRequestData(
                "timeInterval cannot be combined with watchedAttributes, throttling or "
                "notificationTrigger"
            )
        if not entities:
            raise BadRequestData("A periodic subscription (timeInterval) needs entities")
    q = _q(doc.get("q"), ctx)
    if not entities and watched is None and q is None and time_interval is None:
        raise BadRequestData("A subscription needs at least one of entities or watchedAttributes")
    scope_text = doc.get("scopeQ")
    if scope_text is not None and (not isinstance(scope_text, str) or not scope_text):
        raise BadRequestData("scopeQ must be a non-empty string")
    is_active = doc.get("isActive", True)
    if not isinstance(is_active, bool):
        raise BadRequestData("isActive must be true or false")
    expires_at = None
    if doc.get("expiresAt") is not None:
        expires_at = normalize_datetime(doc["expiresAt"], "expiresAt")
    context_url = doc.get("jsonldContext")
    if context_url is not None:
        check_uri(context_url, "jsonldContext")
    lang = doc.get("lang")
    if lang is not None and not isinstance(lang, str):
        raise BadRequestData("lang must be a string")
    notification = doc.get("notification")
    if not isinstance(notification, dict):
        raise BadRequestData("A subscription needs a notification object")
    for key in notification:
        if key in _NOTIFICATION_NOT_YET:
            raise OperationNotSupported(f"notification.{key} is not supported yet")
        if key not in _NOTIFICATION_KNOWN:
            raise BadRequestData(f"Unknown notification member {key!r:.100}")
    fmt = notification.get("format", "normalized")
    if fmt not in FORMATS:
        raise BadRequestData(f"notification.format must be one of {', '.join(FORMATS)}")
    return Subscription(
        id=sub_id,
        endpoint=_endpoint(notification.get("endpoint")),
        entities=entities,
        watched=watched,
        triggers=_triggers(doc.get("notificationTrigger")),
        q=q,
        geo=_geo(doc.get("geoQ"), ctx),
        scope=parse_scope_query(scope_text) if scope_text is not None else None,
        attributes=_names(notification.get("attributes"), "notification.attributes", ctx),
        format=fmt,
        sys_attrs=_flag(notification, "sysAttrs"),
        show_changes=_flag(notification, "showChanges"),
        throttling=throttling,
        time_interval=time_interval,
        expires_at=expires_at,
        is_active=is_active,
        jsonld_context=context_url,
        lang=lang,
    )


def _entities(raw: Any, ctx: Context) -> tuple[EntitySelector, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise BadRequestData("entities must be a non-empty array")
    selectors = []
    for item in raw:
        if not isinstance(item, dict):
            raise BadRequestData("Each element of entities must be an object")
        unknown = set(item) - {"id", "idPattern", "type"}
        if unknown:
            raise BadRequestData(f"Unknown member of an entity selector: {sorted(unknown)[0]!r}")
        type_text = item.get("type")
        if not isinstance(type_text, str) or not type_text:
            raise BadRequestData("Each element of entities needs a type")
        entity_id = item.get("id")
        if entity_id is not None:
            check_uri(entity_id, "entities[].id")
        pattern = item.get("idPattern")
        if pattern is not None:
            if not isinstance(pattern, str) or len(pattern) > 1024:
                raise BadRequestData("idPattern must be a regular expression")
            try:
                re.compile(pattern)
            except re.error as error:
                raise BadRequestData(f"idPattern is not valid: {error}") from None
        selectors.append(
            EntitySelector(
                types=parse_type_expression(type_text, ctx), id=entity_id, id_pattern=pattern
            )
        )
    return tuple(selectors)


def _names(raw: Any, what: str, ctx: Context) -> frozenset[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise BadRequestData(f"{what} must be a non-empty array of attribute names")
    for name in raw:
        check_name(name, what)
    return frozenset(attribute_iri(name, ctx) for name in raw)


def _triggers(raw: Any) -> frozenset[str]:
    if raw is None:
        return DEFAULT_TRIGGERS
    if not isinstance(raw, list) or not raw:
        raise BadRequestData("notificationTrigger must be a non-empty array")
    for trigger in raw:
        if trigger not in TRIGGERS:
            raise BadRequestData(
                f"Unknown notificationTrigger {trigger!r:.100}; one of {', '.join(TRIGGERS)}"
            )
    found = set(raw)
    if "entityUpdated" in found:
        found |= {"attributeCreated", "attributeUpdated", "attributeDeleted"}
    return frozenset(found)


def _positive(raw: Any, what: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 1 or raw > 10**9:
        raise BadRequestData(f"{what} must be a number of seconds, at least 1")
    return float(raw)


def _flag(holder: dict[str, Any], key: str) -> bool:
    value = holder.get(key, False)
    if not isinstance(value, bool):
        raise BadRequestData(f"notification.{key} must be true or false")
    return value


def _q(raw: Any, ctx: Context) -> QExpr | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw:
        raise BadRequestData("q must be a non-empty string")
    return parse_q(raw, ctx)


def _geo(raw: Any, ctx: Context) -> GeoQuery | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadRequestData("geoQ must be an object")
    unknown = set(raw) - {"geometry", "coordinates", "georel", "geoproperty"}
    if unknown:
        raise BadRequestData(f"Unknown geoQ member {sorted(unknown)[0]!r}")
    coordinates = raw.get("coordinates")
    if coordinates is not None and not isinstance(coordinates, str | list):
        raise BadRequestData("geoQ.coordinates must be an array or its JSON text")
    georel, geometry, geoproperty = raw.get("georel"), raw.get("geometry"), raw.get("geoproperty")
    if georel is None or geometry is None or coordinates is None:
        raise BadRequestData("geoQ needs georel, geometry and coordinates")
    found = parse_geoquery(georel, geometry, coordinates, geoproperty, ctx)
    assert found is not None
    return found


def _endpoint(raw: Any) -> Endpoint:
    if not isinstance(raw, dict):
        raise BadRequestData("notification.endpoint must be an object")
    for key in raw:
        if key not in _ENDPOINT_KNOWN:
            raise BadRequestData(f"Unknown endpoint member {key!r:.100}")
    uri = raw.get("uri")
    check_uri(uri, "notification.endpoint.uri")
    assert isinstance(uri, str)
    scheme = uri.split(":", 1)[0].lower()
    if scheme not in ("http", "https", "mqtt", "mqtts"):
        raise BadRequestData("notification.endpoint.uri must be an http(s):// or mqtt(s):// URI")
    rest = uri.split("://", 1)[1] if "://" in uri else ""
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if not host:
        raise BadRequestData("notification.endpoint.uri has no host")
    if scheme.startswith("mqtt"):
        topic = rest.split("/", 1)[1] if "/" in rest else ""
        if not topic:
            raise BadRequestData("An mqtt:// endpoint needs a topic: mqtt://host[:port]/topic")
        if "+" in topic or "#" in topic:
            raise BadRequestData("An MQTT notification topic cannot hold the wildcards + or #")
    accept = raw.get("accept", "application/json")
    if accept not in ACCEPTS:
        raise BadRequestData(f"notification.endpoint.accept must be one of {', '.join(ACCEPTS)}")
    receiver = _pairs(raw.get("receiverInfo"), "receiverInfo")
    for key, _ in receiver:
        if scheme.startswith("http"):
            if not _HEADER_NAME.match(key):
                raise BadRequestData(f"receiverInfo key {key!r:.100} is not an HTTP header name")
            if key.lower() in _RESERVED_HEADERS:
                raise BadRequestData(f"receiverInfo cannot set the {key} header")
    notifier = _pairs(raw.get("notifierInfo"), "notifierInfo")
    for key, value in notifier:
        if key == "MQTT-Version" and value not in MQTT_VERSIONS:
            raise BadRequestData(f"MQTT-Version must be one of {', '.join(MQTT_VERSIONS)}")
        if key == "MQTT-QoS" and value not in ("0", "1", "2"):
            raise BadRequestData("MQTT-QoS must be 0, 1 or 2")
    return Endpoint(
        uri=uri,
        accept=accept,
        receiver_info=receiver,
        notifier_info=notifier,
        timeout_ms=_milliseconds(raw.get("timeout"), "timeout"),
        cooldown_ms=_milliseconds(raw.get("cooldown"), "cooldown"),
    )


def _milliseconds(raw: Any, what: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 1 or raw > 10**9:
        raise BadRequestData(f"notification.endpoint.{what} must be a number of milliseconds")
    return float(raw)


def _pairs(raw: Any, what: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise BadRequestData(f"{what} must be an array of {{key, value}} objects")
    pairs = []
    for item in raw:
        if (
            not isinstance(item, dict)
            or set(item) != {"key", "value"}
            or not isinstance(item["key"], str)
            or not item["key"]
            or not isinstance(item["value"], str)
            or "\n" in item["value"]
            or "\r" in item["value"]
        ):
            raise BadRequestData(f"Each {what} element is an object with a string key and value")
        pairs.append((item["key"], item["value"]))
    return tuple(pairs)


# -- rendering --------------------------------------------------------------------------------


def render_subscription(
    doc: dict[str, Any], sub: Subscription, status: dict[str, Any], now: str, sys_attrs: bool
) -> dict[str, Any]:
    """A subscription as GET shows it: the document as written, with its status, the
    notification's delivery status and, with sysAttrs, createdAt and modifiedAt."""
    out = dict(doc)
    out["type"] = "Subscription"
    out["status"] = sub.status(now)
    if sys_attrs:
        for key in ("createdAt", "modifiedAt"):
            if status.get(key):
                out[key] = status[key]
    notification = dict(doc.get("notification", {}))
    notification.setdefault("format", sub.format)
    endpoint = dict(notification.get("endpoint", {}))
    endpoint.setdefault("accept", sub.endpoint.accept)
    notification["endpoint"] = endpoint
    for key in ("timesSent", "timesFailed", "consecutiveErrors"):
        if status.get(key):
            notification[key] = status[key]
    for key in ("lastNotification", "lastSuccess", "lastFailure", "lastErrorReason"):
        if status.get(key) is not None:
            notification[key] = status[key]
    if status.get("lastNotification") is not None:
        notification["status"] = "failed" if status.get("consecutiveErrors") else "ok"
    out["notification"] = notification
    return out


# -- the entities a notification carries ------------------------------------------------------


def entity_data(entity: Entity) -> dict[str, Any]:
    """An entity in internal form as a JSON-able dict (an outbox row's data)."""
    data: dict[str, Any] = {"id": entity.id, "types": entity.types, "attrs": entity.attrs}
    if entity.scopes is not None:
        data["scopes"] = entity.scopes
    data["createdAt"] = entity.created_at
    data["modifiedAt"] = entity.modified_at
    if entity.expires_at is not None:
        data["expiresAt"] = entity.expires_at
    return data


def entity_of(data: dict[str, Any]) -> Entity:
    return Entity(
        id=data["id"],
        types=list(data["types"]),
        attrs=data.get("attrs", {}),
        scopes=data.get("scopes"),
        created_at=data.get("createdAt", ""),
        modified_at=data.get("modifiedAt", ""),
        expires_at=data.get("expiresAt"),
    )


def previous_key(instance: Instance) -> str:
    """previousValue, previousObject, previousLanguageMap, ... (clause 4.5.x, showChanges)."""
    key = VALUE_KEY.get(instance.get("type", ""), "value")
    return "previous" + key[0].upper() + key[1:]


def render_notification(
    sub: Subscription, data: list[dict[str, Any]], ctx: Context, notification_id: str, at: str
) -> dict[str, Any]:
    """A Notification (clause 5.3.1) of these entities (outbox data, oldest first), in the
    subscription's format, its terms compacted with `ctx`."""
    rep = Representation(format=sub.format, sys_attrs=sub.sys_attrs, lang=sub.lang)
    entities: list[dict[str, Any]] = []
    for item in data:
        body = render_entity(entity_of(item), ctx, rep)
        if "deletedAt" in item:
            if sub.sys_attrs:
                # Also in keyValues: the entity is gone, so these are all that is left of it.
                body.setdefault("createdAt", item["createdAt"])
                body.setdefault("modifiedAt", item["modifiedAt"])
            body["deletedAt"] = item["deletedAt"]
        entities.append(body)
    shown: Any = entities
    if sub.endpoint.accept == "application/geo+json":
        shown = {
            "type": "FeatureCollection",
            "features": [
                geojson_feature(entity_of(item), body, rep)
                for item, body in zip(data, entities, strict=True)
            ],
        }
    return {
        "id": notification_id,
        "type": "Notification",
        "subscriptionId": sub.id,
        "notifiedAt": at,
        "data": shown,
    }
