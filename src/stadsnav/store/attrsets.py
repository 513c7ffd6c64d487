"""Attribute sets: which attributes, of which attribute types, an entity has.

Both stores keep this as one shared set per distinct combination instead of one index row per
entity and attribute: the bins of one sensor model all point at the same set, so writing an
entity adds no attribute index rows (they were the largest part of a batch write, see
docs/performance.md). A set is named by its signature, the text `attr TAB kinds` per attribute,
one per line in attribute order; the migrations that introduced sets compute the same text.
"""

from __future__ import annotations

from collections.abc import Mapping

from stadsnav.ngsild.entity import Attrs

Members = tuple[tuple[str, str], ...]


def members_of(attrs: Attrs) -> Members:
    """(attribute IRI, its attribute types joined by commas) for each attribute, sorted."""
    found: list[tuple[str, str]] = []
    for attr in sorted(attrs):
        instances = attrs[attr]
        if len(instances) == 1:
            found.append((attr, instances[0]["type"]))
        else:
            found.append((attr, ",".join(sorted({i["type"] for i in instances}))))
    return tuple(found)


def signature(members: Members) -> str:
    return "\n".join(f"{attr}\t{kinds}" for attr, kinds in members)


class AttrSetIds:
    """Set ids by signature, as committed to the database.

    A committed set is never changed or deleted, so its id stays right for every worker and a
    process may keep its own copy. Ids of sets created by a transaction are only remembered once
    it has committed: a rolled-back set must not be handed to another writer.
    """

    def __init__(self, limit: int = 50_000) -> None:
        self._ids: dict[str, int] = {}
        self._limit = limit

    def get(self, sig: str) -> int | None:
        return self._ids.get(sig)

    def remember(self, committed: Mapping[str, int]) -> None:
        if len(self._ids) + len(committed) > self._limit:
            # Sets seen long ago are looked up again in the database; the usual fleet has few.
            self._ids.clear()
        self._ids.update(committed)
