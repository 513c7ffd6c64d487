"""Entities in stadsnav's internal form, and their validation and expansion from payloads.

The internal form is what the store keeps, with every term expanded to its IRI:

    Entity.attrs = {attribute IRI: [instance, ...]}   one instance per datasetId
    instance     = {"type": "Property", "value": ..., "observedAt": ..., "datasetId": ...,
                    "createdAt": ..., "modifiedAt": ..., <sub-attribute IRI>: instance, ...}

Payloads may be normalized or concise (clause 4.5); both are turned into this form here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.errors import BadRequestData, InvalidRequest
from stadsnav.ngsild.geojson import looks_like_geometry, validate_geometry
from stadsnav.ngsild.names import check_name, check_uri, is_uri, normalize_datetime

PROPERTY = "Property"
RELATIONSHIP = "Relationship"
GEOPROPERTY = "GeoProperty"
LANGUAGEPROPERTY = "LanguageProperty"
VOCABPROPERTY = "VocabProperty"
LISTPROPERTY = "ListProperty"
LISTRELATIONSHIP = "ListRelationship"
JSONPROPERTY = "JsonProperty"

# The member holding each attribute type's value.
VALUE_KEY = {
    PROPERTY: "value",
    GEOPROPERTY: "value",
    RELATIONSHIP: "object",
    LANGUAGEPROPERTY: "languageMap",
    VOCABPROPERTY: "vocab",
    LISTPROPERTY: "valueList",
    LISTRELATIONSHIP: "objectList",
    JSONPROPERTY: "json",
}
ATTRIBUTE_TYPES = frozenset(VALUE_KEY)
_VALUE_KEYS = frozenset(VALUE_KEY.values())
# Members a client may send but the broker sets itself (or that carry no information).
_IGNORED_MEMBERS = frozenset({"type", "createdAt", "modifiedAt", "@context", "instanceId"})
# Concise payloads name no type: the member that is present tells it (clause 4.5.3).
_TYPE_BY_KEY = {
    "object": RELATIONSHIP,
    "languageMap": LANGUAGEPROPERTY,
    "vocab": VOCABPROPERTY,
    "valueList": LISTPROPERTY,
    "objectList": LISTRELATIONSHIP,
    "json": JSONPROPERTY,
}
# Members of an attribute instance that are not sub-attributes.
INSTANCE_MEMBERS = frozenset(
    {
        "type",
        "value",
        "object",
        "objectType",
        "languageMap",
        "vocab",
        "valueList",
        "objectList",
        "json",
        "datasetId",
        "observedAt",
        "unitCode",
        "createdAt",
        "modifiedAt",
        "deletedAt",
        "instanceId",
        "lang",
        "previousValue",
        "previousObject",
        "previousLanguageMap",
        "previousVocab",
        "previousValueList",
        "previousObjectList",
        "previousJson",
        "@context",
    }
)
# Entity-level members that are not attributes.
ENTITY_MEMBERS = frozenset(
    {
        "id",
        "@id",
        "type",
        "@type",
        "scope",
        "createdAt",
        "modifiedAt",
        "deletedAt",
        "@context",
        "expiresAt",
    }
)
# Names an attribute may not take (clause 4.6.2 and the core context's reserved terms).
RESERVED_ATTRIBUTE_NAMES = ENTITY_MEMBERS | {"value", "object", "datasetId", "observedAt"}
NULL_URI = "urn:ngsi-ld:null"
LOCATION = "https://uri.etsi.org/ngsi-ld/location"

Instance = dict[str, Any]
Attrs = dict[str, list[Instance]]


@dataclass
class Entity:
    id: str
    types: list[str]
    attrs: Attrs = field(default_factory=dict)
    scopes: list[str] | None = None
    created_at: str = ""
    modified_at: str = ""
    expires_at: str | None = None
    version: int = 0


def expand_entity(payload: Any, ctx: Context, now: str) -> Entity:
    """Validate an entity payload (normalized or concise) and expand it."""
    if not isinstance(payload, dict):
        raise InvalidRequest("An entity must be a JSON object")
    entity_id = payload.get("id", payload.get("@id"))
    if entity_id is None:
        raise BadRequestData("An entity needs an 'id'")
    check_uri(entity_id, "Entity id")
    types = expand_types(payload.get("type", payload.get("@type")), ctx)
    entity = Entity(id=entity_id, types=types, created_at=now, modified_at=now)
    if "scope" in payload:
        entity.scopes = parse_scopes(payload["scope"])
    if "expiresAt" in payload:
        entity.expires_at = normalize_datetime(payload["expiresAt"], "expiresAt")
    entity.attrs = expand_attrs(payload, ctx, now)
    return entity


def expand_types(raw: Any, ctx: Context) -> list[str]:
    if raw is None:
        raise BadRequestData("An entity needs a 'type'")
    names = raw if isinstance(raw, list) else [raw]
    if not names:
        raise BadRequestData("An entity needs at least one type")
    types: list[str] = []
    for name in names:
        check_name(name, "Entity type")
        iri = ctx.expand(name)
        if iri.startswith("@"):
            raise BadRequestData(f"Entity type {name!r} expands to the JSON-LD keyword {iri}")
        if iri not in types:
            types.append(iri)
    return types


def parse_scopes(raw: Any) -> list[str]:
    scopes = raw if isinstance(raw, list) else [raw]
    for scope in scopes:
        if not isinstance(scope, str) or not scope.startswith("/") or " " in scope:
            raise BadRequestData(f"Invalid scope {scope!r:.100}: a scope is a path like /a/b")
    return list(scopes)


def expand_attrs(
    payload: Mapping[str, Any], ctx: Context, now: str, *, allow_null: bool = False
) -> Attrs:
    """Expand every attribute member of an entity or attribute-fragment payload."""
    attrs: Attrs = {}
    for name, raw in payload.items():
        if name in ENTITY_MEMBERS:
            continue
        iri = expand_attribute_name(name, ctx)
        attrs[iri] = expand_attribute(name, raw, ctx, now, allow_null=allow_null)
    return attrs


def expand_attribute_name(name: str, ctx: Context) -> str:
    iri = ctx.checked_names.get(name)
    if iri is not None:
        return iri
    check_name(name, "Attribute name")
    if name in RESERVED_ATTRIBUTE_NAMES or name.startswith("@"):
        raise BadRequestData(f"{name!r} is reserved and cannot be an attribute name")
    iri = ctx.expand(name)
    if iri.startswith("@"):
        raise BadRequestData(f"Attribute name {name!r} expands to the JSON-LD keyword {iri}")
    if len(ctx.checked_names) < 10_000:
        ctx.checked_names[name] = iri
    return iri


def expand_attribute(
    name: str, raw: Any, ctx: Context, now: str, *, allow_null: bool = False
) -> list[Instance]:
    """One attribute (maybe several instances by datasetId) in internal form."""
    if not (isinstance(raw, list) and _is_instance_list(raw)):
        return [expand_instance(name, raw, ctx, now, allow_null=allow_null)]
    instances: list[Instance] = []
    seen: set[str | None] = set()
    for item in raw:
        instance = expand_instance(name, item, ctx, now, allow_null=allow_null)
        dataset = instance.get("datasetId")
        if dataset in seen:
            raise BadRequestData(f"Attribute {name!r} has two instances with datasetId {dataset}")
        seen.add(dataset)
        instances.append(instance)
    return instances


def expand_fragment(name: str, raw: Any, ctx: Context, now: str) -> list[Instance]:
    """The payload of a partial attribute update: an attribute, or only sub-attributes (and a
    datasetId) to merge into the existing one, which keeps its type and value."""
    if isinstance(raw, dict) and "type" not in raw and not raw.keys() & _VALUE_KEYS:
        instance: Instance = {}
        for member, value in raw.items():
            if member == "datasetId":
                instance["datasetId"] = check_uri(value, "datasetId")
            elif member == "observedAt":
                instance["observedAt"] = normalize_datetime(value, "observedAt")
            elif member not in _IGNORED_MEMBERS:
                sub = expand_attribute(member, value, ctx, now, allow_null=True)
                instance[expand_attribute_name(member, ctx)] = sub[0]
        return [instance]
    return expand_attribute(name, raw, ctx, now, allow_null=True)


def _is_instance_list(raw: list[Any]) -> bool:
    """A list of attribute objects is a multi-attribute; any other list is a concise value."""
    return bool(raw) and all(
        isinstance(item, dict)
        and (("type" in item and item.get("type") in ATTRIBUTE_TYPES) or "datasetId" in item)
        for item in raw
    )


def expand_instance(
    name: str, raw: Any, ctx: Context, now: str, *, allow_null: bool = False
) -> Instance:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind is None:
        if not isinstance(raw, dict) or not any(key in raw for key in _VALUE_KEYS):
            concise = _concise_value(name, raw, allow_null=allow_null)
            concise["createdAt"] = concise["modifiedAt"] = now
            return concise
        kind = next((t for key, t in _TYPE_BY_KEY.items() if key in raw), PROPERTY)
        if kind == PROPERTY and looks_like_geometry(raw.get("value")):
            kind = GEOPROPERTY
    elif not isinstance(kind, str) or kind not in ATTRIBUTE_TYPES:
        if looks_like_geometry(raw):
            concise = _concise_value(name, raw, allow_null=allow_null)
            concise["createdAt"] = concise["modifiedAt"] = now
            return concise
        raise BadRequestData(f"Attribute {name!r} has an unknown type {kind!r:.100}")
    key = VALUE_KEY[kind]
    if key not in raw:
        raise BadRequestData(f"Attribute {name!r} of type {kind} needs a {key!r} member")
    instance: Instance = {"type": kind}
    instance[key] = _check_value(name, kind, raw[key], ctx, allow_null=allow_null)
    for member, value in raw.items():
        if member in _IGNORED_MEMBERS or member == key:
            continue
        if member == "datasetId":
            instance["datasetId"] = check_uri(value, "datasetId")
        elif member == "observedAt":
            instance["observedAt"] = normalize_datetime(value, "observedAt")
        elif member == "unitCode":
            if not isinstance(value, str) or not value:
                raise BadRequestData("unitCode must be a non-empty string")
            instance["unitCode"] = value
        elif member == "objectType":
            if kind not in (RELATIONSHIP, LISTRELATIONSHIP):
                raise BadRequestData("objectType is only allowed on relationships")
            instance["objectType"] = _expand_object_type(value, ctx)
        elif member == "lang":
            if not isinstance(value, str):
                raise BadRequestData("lang must be a string")
            instance["lang"] = value
        elif member in INSTANCE_MEMBERS:
            raise BadRequestData(f"{member!r} is not allowed in an attribute of type {kind}")
        else:
            sub_iri = expand_attribute_name(member, ctx)
            sub = expand_attribute(member, value, ctx, now, allow_null=allow_null)
            instance[sub_iri] = sub[0]
    instance["createdAt"] = now
    instance["modifiedAt"] = now
    return instance


def _concise_value(name: str, raw: Any, *, allow_null: bool) -> Instance:
    if raw is None:
        raise BadRequestData(f"Attribute {name!r} has a null value (NGSI-LD Null is {NULL_URI})")
    if raw == NULL_URI and allow_null:
        return {"type": PROPERTY, "value": NULL_URI}
    if looks_like_geometry(raw):
        return {"type": GEOPROPERTY, "value": validate_geometry(raw)}
    return {"type": PROPERTY, "value": raw}


_NULL_FORMS: tuple[Any, ...] = (NULL_URI, {"@none": NULL_URI}, [NULL_URI], [{"object": NULL_URI}])


def _is_null_form(value: Any) -> bool:
    """The NGSI-LD Null of each attribute type (clause 4.5.x): a deletion in merge operations."""
    return any(value == form for form in _NULL_FORMS)


def _check_value(name: str, kind: str, value: Any, ctx: Context, *, allow_null: bool) -> Any:
    if value is None:
        raise BadRequestData(f"Attribute {name!r} has a null value (NGSI-LD Null is {NULL_URI})")
    if _is_null_form(value) if allow_null else value == NULL_URI:
        if allow_null:
            return NULL_URI
        raise BadRequestData(f"Attribute {name!r} has a null value")
    if kind == PROPERTY:
        return value
    if kind == GEOPROPERTY:
        return validate_geometry(value)
    if kind == RELATIONSHIP:
        if isinstance(value, list):
            return [check_uri(item, f"Object of relationship {name!r}") for item in value]
        return check_uri(value, f"Object of relationship {name!r}")
    if kind == LANGUAGEPROPERTY:
        if not isinstance(value, dict) or not value:
            raise BadRequestData(f"languageMap of {name!r} must be a non-empty object")
        for tag, text in value.items():
            texts = text if isinstance(text, list) else [text]
            if not isinstance(tag, str) or not all(isinstance(t, str) for t in texts):
                raise BadRequestData(f"languageMap of {name!r} must map language tags to strings")
        return dict(value)
    if kind == VOCABPROPERTY:
        words = value if isinstance(value, list) else [value]
        if not words or not all(isinstance(w, str) and w for w in words):
            raise BadRequestData(f"vocab of {name!r} must be a string or array of strings")
        expanded = [ctx.expand(w) for w in words]
        return expanded if isinstance(value, list) else expanded[0]
    if kind == LISTPROPERTY:
        if not isinstance(value, list):
            raise BadRequestData(f"valueList of {name!r} must be an array")
        return value
    if kind == LISTRELATIONSHIP:
        if not isinstance(value, list):
            raise BadRequestData(f"objectList of {name!r} must be an array")
        return [
            check_uri(item.get("object") if isinstance(item, dict) else item, f"Object of {name!r}")
            for item in value
        ]
    if not isinstance(value, dict | list):
        raise BadRequestData(f"json of JsonProperty {name!r} must be an object or array")
    return value


def _expand_object_type(value: Any, ctx: Context) -> Any:
    if isinstance(value, list):
        return [ctx.expand(check_name(v, "objectType")) for v in value]
    return ctx.expand(check_name(value, "objectType"))


def is_sub_attribute_key(key: str) -> bool:
    """Whether a member of an instance is a sub-attribute (expanded IRI) or a core member."""
    return key not in INSTANCE_MEMBERS and is_uri(key)
