"""The one storage interface both backends implement (SQLite and PostgreSQL).

The store keeps entities in internal form (see ngsild/entity.py). It knows no HTTP and makes no
NGSI-LD decisions beyond indexing what it is given: the broker merges and validates, the store
writes atomically and answers queries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from stadsnav.ngsild.entity import Entity
from stadsnav.ngsild.query import EntityQuery

DEFAULT_TENANT = ""
# Alters an entity in place and says whether anything changed.
Change = Callable[[Entity], bool]


@dataclass(frozen=True)
class TypeStat:
    type: str
    count: int
    attrs: dict[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class HostedContext:
    id: str
    url: str
    document: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class AttributeStat:
    attr: str
    count: int
    types: frozenset[str]
    kinds: frozenset[str]


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def tenant_exists(self, tenant: str) -> bool: ...

    async def tenants(self) -> list[str]: ...

    async def insert(self, tenant: str, entity: Entity) -> None:
        """Create an entity; AlreadyExists if the id is taken."""

    async def insert_many(self, tenant: str, entities: list[Entity]) -> list[bool]:
        """Create entities in one transaction; False where the id was already taken."""

    async def upsert_many(self, tenant: str, entities: list[Entity]) -> list[bool]:
        """Create or replace entities in one transaction; True where created.

        A replaced entity keeps its createdAt.
        """

    async def modify(self, tenant: str, entity_id: str, change: Change) -> bool:
        """Read an entity, let `change` alter it, and write it back, atomically: no other writer
        can change the entity in between. `change` returns whether anything changed; whatever it
        raises rolls the write back. False if the entity does not exist."""

    async def modify_many(self, tenant: str, ids: list[str], change: Change) -> list[str]:
        """`modify` for several entities in one transaction; returns the ids that exist."""

    async def get(self, tenant: str, entity_id: str) -> Entity | None: ...

    async def get_many(self, tenant: str, ids: list[str]) -> dict[str, Entity]: ...

    async def delete(self, tenant: str, entity_id: str) -> bool: ...

    async def delete_many(self, tenant: str, ids: list[str]) -> list[bool]: ...

    async def query(self, tenant: str, query: EntityQuery) -> tuple[list[Entity], int | None]:
        """Entities matching the query, ordered by id, with the total count if asked."""

    async def purge(self, tenant: str, query: EntityQuery) -> int:
        """Delete every entity matching the query (limit and offset ignored)."""

    async def type_stats(self, tenant: str) -> list[TypeStat]: ...

    async def attribute_stats(self, tenant: str) -> list[AttributeStat]: ...

    async def delete_expired(self, now: str) -> int:
        """Remove transient entities whose expiresAt has passed, in every tenant."""

    async def put_context(self, context: HostedContext) -> None:
        """Keep a hosted @context document (POST /jsonldContexts)."""

    async def delete_context(self, context_id: str) -> None: ...

    async def hosted_contexts(self) -> list[HostedContext]: ...
