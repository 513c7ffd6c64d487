"""How the spec's update operations change an entity's attributes (clauses 5.6.x), with no I/O.

Each function takes the stored attribute map and an expanded fragment, changes the map in place
and reports which attribute names were updated and which were not (with the reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stadsnav.ngsild.entity import NULL_URI, VALUE_KEY, Attrs, Instance, is_sub_attribute_key
from stadsnav.ngsild.errors import BadRequestData


@dataclass
class UpdateOutcome:
    updated: list[str] = field(default_factory=list)
    not_updated: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.updated)


def _find(instances: list[Instance], dataset_id: str | None) -> int | None:
    for index, instance in enumerate(instances):
        if instance.get("datasetId") == dataset_id:
            return index
    return None


def _is_null(instance: Instance) -> bool:
    kind = instance.get("type")
    return kind is not None and bool(instance.get(VALUE_KEY[kind]) == NULL_URI)


def _keep_created(old: Instance, new: Instance) -> Instance:
    new["createdAt"] = old.get("createdAt", new["createdAt"])
    return new


def append(attrs: Attrs, fragment: Attrs, *, overwrite: bool) -> UpdateOutcome:
    """Append Entity Attributes (5.6.3): add new attributes, replace existing instances unless
    noOverwrite was asked."""
    outcome = UpdateOutcome()
    for iri, instances in fragment.items():
        current = attrs.setdefault(iri, [])
        changed = False
        for instance in instances:
            at = _find(current, instance.get("datasetId"))
            if at is None:
                current.append(instance)
                changed = True
            elif overwrite:
                current[at] = _keep_created(current[at], instance)
                changed = True
        if changed:
            outcome.updated.append(iri)
        else:
            outcome.not_updated.append((iri, "Attribute exists and noOverwrite was requested"))
        if not current:
            del attrs[iri]
    return outcome


def update(attrs: Attrs, fragment: Attrs) -> UpdateOutcome:
    """Update Entity Attributes (5.6.2): replace only instances that already exist."""
    outcome = UpdateOutcome()
    for iri, instances in fragment.items():
        current = attrs.get(iri)
        changed = False
        for instance in instances:
            at = None if current is None else _find(current, instance.get("datasetId"))
            if current is None or at is None:
                continue
            if _is_null(instance):
                current.pop(at)
            else:
                current[at] = _keep_created(current[at], instance)
            changed = True
        if current is not None and not current:
            del attrs[iri]
        if changed:
            outcome.updated.append(iri)
        else:
            outcome.not_updated.append((iri, "Attribute (or its datasetId) does not exist"))
    return outcome


def merge(attrs: Attrs, fragment: Attrs, now: str) -> UpdateOutcome:
    """Merge Entity (5.6.17): new attributes are added, existing instances merged, null deletes."""
    outcome = UpdateOutcome()
    for iri, instances in fragment.items():
        current = attrs.setdefault(iri, [])
        for instance in instances:
            at = _find(current, instance.get("datasetId"))
            if _is_null(instance):
                if at is not None:
                    current.pop(at)
            elif at is None:
                current.append(_strip_nulls(instance))
            else:
                current[at] = merge_instance(current[at], instance, now)
        if not current:
            del attrs[iri]
        outcome.updated.append(iri)
    return outcome


def merge_instance(old: Instance, new: Instance, now: str) -> Instance:
    """A fragment merged into an existing instance: members replace, sub-attributes merge,
    a null sub-attribute is removed."""
    result = dict(old)
    if new.get("type", old["type"]) != old["type"]:
        for key in VALUE_KEY.values():
            result.pop(key, None)
    for key, value in new.items():
        if key == "createdAt":
            continue
        if is_sub_attribute_key(key):
            if isinstance(value, dict) and _is_null(value):
                result.pop(key, None)
            elif key in old and isinstance(old[key], dict):
                result[key] = merge_instance(old[key], value, now)
            else:
                result[key] = value
        else:
            result[key] = value
    result["modifiedAt"] = now
    return result


def partial_update(attrs: Attrs, iri: str, fragment: list[Instance], now: str) -> bool:
    """Partial Attribute Update (5.6.4): merge into the matching instance; False if none."""
    current = attrs.get(iri)
    if current is None:
        return False
    for instance in fragment:
        at = _find(current, instance.get("datasetId"))
        if at is None:
            return False
        if _is_null(instance):
            current.pop(at)
            continue
        if instance.get("type", current[at]["type"]) != current[at]["type"]:
            raise BadRequestData(
                f"A partial update cannot turn a {current[at]['type']} into a {instance['type']}"
            )
        current[at] = merge_instance(current[at], instance, now)
    if not current:
        del attrs[iri]
    return True


def replace_attribute(attrs: Attrs, iri: str, fragment: list[Instance]) -> bool:
    """Replace Attribute (5.6.19): the instances given replace those with the same datasetId."""
    current = attrs.get(iri)
    if current is None:
        return False
    for instance in fragment:
        at = _find(current, instance.get("datasetId"))
        if at is None:
            current.append(instance)
        else:
            current[at] = _keep_created(current[at], instance)
    return True


def delete_attribute(attrs: Attrs, iri: str, dataset_id: str | None, delete_all: bool) -> bool:
    """Delete Attribute (5.6.5): one instance (by datasetId) or all of them."""
    current = attrs.get(iri)
    if current is None:
        return False
    if delete_all:
        del attrs[iri]
        return True
    at = _find(current, dataset_id)
    if at is None:
        return False
    current.pop(at)
    if not current:
        del attrs[iri]
    return True


def _strip_nulls(instance: Instance) -> Instance:
    return {
        k: v
        for k, v in instance.items()
        if not (is_sub_attribute_key(k) and isinstance(v, dict) and _is_null(v))
    }
