"""Linked Entity retrieval (clause 4.5.23): which Entities a join reaches, and how they are
shown, inline in the Relationships that link to them or flat after the Entities asked for.

A join follows only the Relationships a response shows, so a projection that leaves a
Relationship out also leaves out what it links to; each Linked Entity is projected by the
braces of its Relationship's term (clause 4.21), and shown whole without them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from stadsnav.ngsild.context import Context
from stadsnav.ngsild.entity import LISTRELATIONSHIP, RELATIONSHIP, Entity
from stadsnav.ngsild.errors import BadRequestData
from stadsnav.ngsild.render import Representation, render_entity

MAX_LEVEL = 10

Shown = list[tuple[Entity, dict[str, Any]]]


@dataclass(frozen=True)
class Join:
    """A request's Linked Entity retrieval: `join`, `joinLevel` and `containedBy`."""

    inline: bool
    level: int = 1
    # Entities the client (or a broker passing the request on) met earlier while walking the
    # graph: they are neither fetched nor shown again, so a walk spread over several requests
    # does not go round a cycle.
    contained_by: frozenset[str] = frozenset()


def check_projection(rep: Representation, join: Join | None) -> None:
    """A projection into Linked Entities needs a join that reaches as deep (clauses 5.7.1.4,
    5.7.2.4)."""
    depth = rep.projection.depth
    if depth and join is None:
        raise BadRequestData("A projection with {...} selects in Linked Entities: it needs join")
    if join is not None and depth > join.level:
        raise BadRequestData(
            f"The projection reaches {depth} levels deep, joinLevel is {join.level}"
        )


def wanted(
    roots: list[Entity], rep: Representation, join: Join
) -> Callable[[dict[str, Entity]], set[str]]:
    """From the Entities known so far, the ids the join still has to fetch."""
    return lambda known: _reach(roots, rep, known, join)[1]


def render_flat(
    roots: list[Entity], ctx: Context, rep: Representation, known: Mapping[str, Entity], join: Join
) -> Shown:
    """join=flat: the Entities asked for, then each Linked Entity once, in the order the
    Relationships first reach them."""
    reached, _ = _reach(roots, rep, known, join)
    shown = [(e, render_entity(e, ctx, rep)) for e in roots]
    for entity_id, linked_rep in reached.items():
        entity = known[entity_id]
        if linked_rep.keeps_any(entity):
            shown.append((entity, render_entity(entity, ctx, linked_rep)))
    return shown


def render_inline(
    entity: Entity, ctx: Context, rep: Representation, known: Mapping[str, Entity], join: Join
) -> dict[str, Any]:
    """join=inline: each Relationship carries the Entity it links to (`entity`, `entityList`),
    or in keyValues is replaced by it. An Entity is not inlined inside itself: a cycle in the
    graph ends where it would repeat one of the Entities above it."""

    def inline(
        entity: Entity, rep: Representation, hops: int, above: frozenset[str]
    ) -> dict[str, Any]:
        out = render_entity(entity, ctx, rep)
        if hops == 0:
            return out
        above = above | {entity.id}
        for iri, instances in entity.attrs.items():
            name = ctx.compact(iri)
            shown = rep.instances(instances)
            if name not in out or len(shown) != 1:
                continue
            inner = rep.following(iri)
            instance = shown[0]
            if instance["type"] == RELATIONSHIP and isinstance(instance["object"], str):
                joined = linked(instance["object"], inner, hops - 1, above)
                if joined is None:
                    continue
                if rep.format == "keyValues":
                    out[name] = joined
                elif isinstance(out[name], dict):
                    out[name]["entity"] = joined
            elif instance["type"] == LISTRELATIONSHIP and isinstance(out[name], dict):
                joined_list = [linked(t, inner, hops - 1, above) for t in instance["objectList"]]
                out[name]["entityList"] = [j for j in joined_list if j is not None]
        return out

    def linked(
        target_id: str, rep: Representation, hops: int, above: frozenset[str]
    ) -> dict[str, Any] | None:
        target = known.get(target_id)
        if target is None or target_id in above or not rep.keeps_any(target):
            return None
        return inline(target, rep, hops, above)

    return inline(entity, rep, join.level, join.contained_by)


def _links(entity: Entity, rep: Representation) -> Iterator[tuple[str, str]]:
    """(Relationship IRI, target id) of every Relationship the representation shows."""
    for iri, instances in entity.attrs.items():
        if not rep.keeps(iri):
            continue
        for instance in rep.instances(instances):
            if instance["type"] == RELATIONSHIP:
                value = instance["object"]
                for target in value if isinstance(value, list) else [value]:
                    yield iri, target
            elif instance["type"] == LISTRELATIONSHIP:
                for target in instance["objectList"]:
                    yield iri, target


def _reach(
    roots: list[Entity], rep: Representation, known: Mapping[str, Entity], join: Join
) -> tuple[dict[str, Representation], set[str]]:
    """Breadth first through the Relationships shown, up to join.level hops: how each Linked
    Entity is shown (in the order first reached), and the ids reached but not known yet.

    An Entity reached through several Relationships is shown once, with everything any of
    them asks for, and is followed from its nearest position."""
    skip = {e.id for e in roots} | join.contained_by
    reached: dict[str, Representation] = {}
    hops: dict[str, int] = {}
    missing: set[str] = set()
    queue = deque((root, rep, 0) for root in roots)
    while queue:
        entity, entity_rep, depth = queue.popleft()
        if depth >= join.level:
            continue
        for iri, target_id in _links(entity, entity_rep):
            if target_id in skip:
                continue
            target = known.get(target_id)
            if target is None:
                missing.add(target_id)
                continue
            asked = entity_rep.following(iri)
            before = reached.get(target_id)
            after = (
                asked
                if before is None
                else replace(before, projection=before.projection.union(asked.projection))
            )
            nearest = min(depth + 1, hops.get(target_id, depth + 1))
            if before is not None and after == before and nearest == hops[target_id]:
                continue
            reached[target_id] = after
            hops[target_id] = nearest
            queue.append((target, after, nearest))
    return reached, missing
