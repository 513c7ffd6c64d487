"""Rendering internal entities as the representations the spec lists (clause 4.5).

normalized, concise and keyValues (simplified); sysAttrs; attribute projection (attrs/pick/omit);
``lang`` for LanguageProperty; GeoJSON (clause 4.5.16).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.entity import (
    GEOPROPERTY,
    LANGUAGEPROPERTY,
    LISTRELATIONSHIP,
    LOCATION,
    PROPERTY,
    RELATIONSHIP,
    VALUE_KEY,
    VOCABPROPERTY,
    Entity,
    Instance,
    is_sub_attribute_key,
)
from stadsnav.ngsild.projection import WHOLE, Projection

Format = Literal["normalized", "concise", "keyValues"]
# System members of an instance, shown only with sysAttrs (deletedAt: in notifications of a
# deleted attribute).
_SYS = ("createdAt", "modifiedAt", "deletedAt")


@dataclass(frozen=True)
class Representation:
    format: Format = "normalized"
    sys_attrs: bool = False
    projection: Projection = WHOLE
    lang: str | None = None
    geometry_property: str = LOCATION
    # `attrs` (not `pick`) was given: an entity is shown only with one of those attributes.
    attributes_only: bool = False
    # `datasetId` selection: only these instances ("@none": the default instance) are shown.
    dataset_ids: frozenset[str] | None = None

    def instances(self, instances: list[Instance]) -> list[Instance]:
        if self.dataset_ids is None:
            return instances
        return [i for i in instances if i.get("datasetId", "@none") in self.dataset_ids]

    def keeps(self, member: str) -> bool:
        return self.projection.keeps(member)

    def following(self, relationship: str) -> Representation:
        """How the Entity a Relationship links to is shown (Linked Entity retrieval): in the
        same format, projected as the term of that Relationship asks, all its instances."""
        return replace(
            self,
            projection=self.projection.follow(relationship),
            attributes_only=False,
            dataset_ids=None,
        )

    def keeps_any(self, entity: Entity) -> bool:
        """Whether a projection leaves anything of the entity (else it is not found)."""
        if self.projection == WHOLE:
            return True
        members = list(entity.attrs)
        if not self.attributes_only:
            members += ["id", "type"] + (["scope"] if entity.scopes else [])
        return any(self.keeps(m) for m in members)


def render_entity(entity: Entity, ctx: Context, rep: Representation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rep.keeps("id"):
        out["id"] = entity.id
    if rep.keeps("type"):
        names = [ctx.compact(t) for t in entity.types]
        out["type"] = names[0] if len(names) == 1 else names
    if entity.scopes is not None and rep.keeps("scope"):
        out["scope"] = entity.scopes[0] if len(entity.scopes) == 1 else entity.scopes
    if entity.expires_at is not None and rep.format != "keyValues":
        out["expiresAt"] = entity.expires_at
    if rep.sys_attrs and rep.format != "keyValues":
        out["createdAt"] = entity.created_at
        out["modifiedAt"] = entity.modified_at
    for iri, all_instances in entity.attrs.items():
        instances = rep.instances(all_instances)
        if not instances or not rep.keeps(iri):
            continue
        name = ctx.compact(iri)
        if rep.format == "keyValues":
            out[name] = _key_value(instances, ctx, rep)
            continue
        rendered = [render_instance(i, ctx, rep) for i in instances]
        out[name] = rendered[0] if len(rendered) == 1 else rendered
    return out


def render_instance(instance: Instance, ctx: Context, rep: Representation) -> Any:
    kind = instance["type"]
    concise = rep.format == "concise"
    out: dict[str, Any] = {}
    if not concise:
        out["type"] = kind
    value_key = VALUE_KEY[kind]
    value = instance[value_key]
    if kind == LANGUAGEPROPERTY and rep.lang is not None:
        tag, text = _pick_language(value, rep.lang)
        if not concise:
            out["type"] = PROPERTY
        out["value"] = text
        out["lang"] = tag
    else:
        out[value_key] = _render_value(kind, value, ctx)
    for key, member in instance.items():
        if key in ("type", value_key):
            continue
        if key in _SYS:
            if rep.sys_attrs:
                out[key] = member
            continue
        if key == "objectType":
            out[key] = (
                [ctx.compact(m) for m in member]
                if isinstance(member, list)
                else ctx.compact(member)
            )
        elif is_sub_attribute_key(key):
            out[ctx.compact(key)] = render_instance(member, ctx, rep)
        elif key == "observedAt":
            out[key] = _shortest(member)
        elif key == "previousVocab":
            out[key] = _render_value(VOCABPROPERTY, member, ctx)
        else:
            out[key] = member
    if concise and len(out) == 1 and value_key in ("value",) and "lang" not in out:
        return out["value"]
    return out


def _shortest(moment: str) -> str:
    """Stored times carry microseconds so that they compare as text; whole seconds are shown
    the way clients usually send them."""
    return moment[:-8] + "Z" if moment.endswith(".000000Z") else moment


def _render_value(kind: str, value: Any, ctx: Context) -> Any:
    if kind == VOCABPROPERTY:
        return [ctx.compact(v) for v in value] if isinstance(value, list) else ctx.compact(value)
    if kind == LISTRELATIONSHIP:
        return [{"object": item} for item in value]
    return value


def _pick_language(language_map: dict[str, Any], wanted: str) -> tuple[str, Any]:
    """Choose a translation by a `lang` parameter (a tag, `*`, or a preference list)."""
    preferences = [part.split(";")[0].strip() for part in wanted.split(",")]
    for tag in preferences:
        if tag == "*":
            break
        if tag in language_map:
            return tag, language_map[tag]
        for key in language_map:
            if key.split("-")[0] == tag.split("-")[0]:
                return key, language_map[key]
    if "@none" in language_map:
        return "@none", language_map["@none"]
    first = next(iter(language_map))
    return first, language_map[first]


def _key_value(instances: list[Instance], ctx: Context, rep: Representation) -> Any:
    values = [_simplified(i, ctx, rep) for i in instances]
    return values[0] if len(values) == 1 else values


def _simplified(instance: Instance, ctx: Context, rep: Representation) -> Any:
    kind = instance["type"]
    value = instance[VALUE_KEY[kind]]
    if kind == LANGUAGEPROPERTY:
        if rep.lang is not None:
            return _pick_language(value, rep.lang)[1]
        return {"languageMap": value}
    if kind == VOCABPROPERTY:
        return {"vocab": _render_value(kind, value, ctx)}
    if kind == LISTRELATIONSHIP:
        return {"objectList": _render_value(kind, value, ctx)}
    if kind == "JsonProperty":
        return {"json": value}
    if kind == RELATIONSHIP:
        return value
    return value


def geojson_feature(entity: Entity, body: dict[str, Any], rep: Representation) -> dict[str, Any]:
    """A rendered entity as a GeoJSON Feature (clause 4.5.16)."""
    geometry = None
    chosen = entity.attrs.get(rep.geometry_property)
    if chosen and chosen[0]["type"] == GEOPROPERTY:
        geometry = chosen[0]["value"]
    properties = {k: v for k, v in body.items() if k != "id"}
    return {"id": entity.id, "type": "Feature", "geometry": geometry, "properties": properties}
