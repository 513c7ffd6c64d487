"""The one storage interface both backends implement (SQLite and PostgreSQL).

The store keeps entities in internal form (see ngsild/entity.py). It knows no HTTP and makes no
NGSI-LD decisions beyond indexing what it is given: the broker merges and validates, the store
writes atomically and answers queries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from stadsnav.ngsild.entity import Entity
from stadsnav.ngsild.query import EntityQuery
from stadsnav.ngsild.temporal import AggregatePage, Aggregation, HistoryScan
from stadsnav.store.subscriptionrecords import Claim, Delivered, SubscriptionRecord

DEFAULT_TENANT = ""
# Alters an entity in place and says whether anything changed.
Change = Callable[[Entity], bool]
# Merges a fragment (second) into the stored entity (first), in place.
Merge = Callable[[Entity, Entity], None]


def merge_fragments(
    fragments: list[Entity], stored: Mapping[str, Entity], merge: Merge
) -> tuple[list[Entity], list[Entity]]:
    """What `Store.record` writes, alike on both backends: each fragment is merged into its
    stored entity, or into an earlier fragment with its id, or is a new entity. Returns the new
    entities and the stored ones that changed."""
    new: dict[str, Entity] = {}
    changed: dict[str, Entity] = {}
    for fragment in fragments:
        if fragment.id in stored:
            merge(stored[fragment.id], fragment)
            changed[fragment.id] = stored[fragment.id]
        elif fragment.id in new:
            merge(new[fragment.id], fragment)
        else:
            new[fragment.id] = fragment
    return list(new.values()), list(changed.values())


@dataclass
class EntityChange:
    """An entity as a write left it, with what it was before: what subscriptions and history
    are told about, inside the write's own transaction."""

    before: Entity | None  # None when the write created the entity (or did not read it)
    after: Entity | None  # None when the write deleted it
    # An upsert that replaced a stored entity reads the stored one only when the observer
    # watches the tenant; otherwise `before` is None and this says it existed.
    replaced: bool = False


def copy_entity(entity: Entity) -> Entity:
    """A deep copy (attribute values are JSON), to keep what an entity was before a change."""
    return Entity(
        id=entity.id,
        types=list(entity.types),
        attrs=orjson.loads(orjson.dumps(entity.attrs)),
        scopes=None if entity.scopes is None else list(entity.scopes),
        created_at=entity.created_at,
        modified_at=entity.modified_at,
        expires_at=entity.expires_at,
        version=entity.version,
    )


@dataclass(frozen=True)
class PendingNotification:
    """One row of the durable notification outbox: a change a subscription is to be told of."""

    subscription_id: str
    entity_id: str
    trigger: str  # entityCreated, entityUpdated, entityDeleted, attributeCreated, ...
    data: dict[str, Any]  # what to send about the entity, in expanded form
    created_at: str


@dataclass
class Consequences:
    """What a write brings with it, written in the same transaction."""

    history: list[HistoryRow] = field(default_factory=list)
    notifications: list[PendingNotification] = field(default_factory=list)


class ChangeObserver(Protocol):
    def watching(self, tenant: str) -> bool:
        """Whether the tenant has active subscriptions (the store then reads what it replaces)."""

    def consequences(self, tenant: str, changes: list[EntityChange], at: str) -> Consequences:
        """History rows and notifications for these changes; pure and quick, since it runs
        inside the write transaction."""


@dataclass(frozen=True)
class HistoryRow:
    """One attribute instance as it was observed: a row of the temporal store."""

    entity_id: str
    attr: str
    dataset_id: str | None
    observed_at: str
    instance: dict[str, Any]
    # The entity's (first) type, which temporal queries filter by, also once it is deleted.
    entity_type: str = ""
    # urn:ngsi-ld:Instance:...; the store makes one when it is empty.
    instance_id: str = ""


@dataclass(frozen=True)
class UplinkKey:
    """What makes two uplinks the same one: device, frame counter and payload digest."""

    device: str
    f_cnt: int
    digest: str


@dataclass(frozen=True)
class DeviceRecord:
    """The registry's own record of a device: how its uplinks are found, decoded and mapped."""

    key: str  # DevEUI in lower-case hex, or the id a plain device publishes under
    device_id: str  # its NGSI-LD Device entity
    model: str
    owner: str
    state: str
    target_id: str | None = None
    target_type: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    location: tuple[float, float] | None = None
    secret_hash: str | None = None
    created_at: str = ""
    modified_at: str = ""
    # What the registry knows beyond what ingestion needs (docs/devices.md).
    name: str | None = None
    district: str | None = None
    controlled_property: tuple[str, ...] = ()  # its purpose: Smart Data Models controlledProperty
    co_users: tuple[str, ...] = ()  # organisations besides the owner that use its data
    installed_at: str | None = None


@dataclass(frozen=True)
class DeviceEvent:
    """One entry of the registry's audit trail: a registration, a lifecycle transition, a
    change, or a duplicate registered anyway (with the reason why)."""

    device: str  # the device's key
    at: str
    kind: str  # registered, transition, changed or override
    actor: str
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    id: int = 0


@dataclass(frozen=True)
class DeviceQuery:
    """Which device records to list; every criterion given must hold."""

    owner: str | None = None
    states: frozenset[str] | None = None
    model: str | None = None
    # Devices with at least one of these purposes.
    controlled_property: frozenset[str] | None = None
    # Devices located in (min lon, min lat, max lon, max lat).
    box: tuple[float, float, float, float] | None = None
    target_id: str | None = None
    limit: int | None = None
    offset: int = 0


# Gives a device's new record and the audit events that say why, from its current record.
DeviceChange = Callable[[DeviceRecord], tuple[DeviceRecord, list[DeviceEvent]]]


@dataclass
class DeadLetter:
    """Device data that could not be stored, kept raw with the reason, for a replay."""

    received_at: str
    transport: str  # http or mqtt
    network: str  # chirpstack, tts or json
    source: str  # MQTT topic or HTTP path
    stage: str  # envelope, device, decode, map or store
    reason: str
    body: bytes
    event: str | None = None
    device: str | None = None
    id: int = 0
    replayed_at: str | None = None
    outcome: str | None = None


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
    # Told of every entity change inside the change's transaction (set by the application).
    observer: ChangeObserver | None

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

    # -- device data ---------------------------------------------------------------------------

    async def record(
        self,
        tenant: str,
        fragments: list[Entity],
        merge: Merge,
        history: list[HistoryRow],
        uplinks: list[UplinkKey],
    ) -> None:
        """Store observations in one transaction: each fragment is merged into its entity (or
        creates it), the history rows are appended and the uplinks marked as stored. Rows and
        marks already present are left as they are, so storing the same uplink twice (a
        redelivery after a crash) changes nothing."""

    async def stored_uplinks(self, tenant: str, keys: list[UplinkKey]) -> set[UplinkKey]:
        """The keys among these whose uplink is already stored."""

    async def history(
        self, tenant: str, entity_id: str, attr: str | None = None
    ) -> list[HistoryRow]:
        """The history rows of an entity (one attribute, or all), oldest observation first."""

    # -- temporal (store/temporal_sqlite.py, store/temporal_postgres.py) -----------------------

    async def add_history(
        self, tenant: str, rows: list[HistoryRow], *, fresh: bool = False
    ) -> None:
        """Append history rows in one transaction (rows already there stay); `fresh` rows are
        known to be new (a bulk load) and may be copied in without that check."""

    async def history_entities(
        self, tenant: str, scan: HistoryScan, limit: int, offset: int, count: bool
    ) -> tuple[list[tuple[str, str]], int | None]:
        """(id, type) of the entities with history the scan selects, by id, one page."""

    async def history_instances(
        self, tenant: str, scan: HistoryScan, ids: list[str], most: int, *, newest: bool
    ) -> list[HistoryRow]:
        """Per entity and attribute at most `most` instances (the oldest, or the newest),
        by entity, attribute and time."""

    async def history_aggregate(
        self, tenant: str, scan: HistoryScan, ids: list[str], aggregation: Aggregation
    ) -> AggregatePage:
        """The aggregated values (clause 4.5.19) of each entity attribute the scan selects, at
        most aggregation.most_periods periods each (the rest for a following request)."""

    async def history_type(self, tenant: str, entity_id: str) -> str | None:
        """The type kept with an entity's history ("" if unknown); None without history."""

    async def delete_history(
        self,
        tenant: str,
        entity_id: str,
        attr: str | None = None,
        dataset_id: str | None = None,
        every_dataset: bool = False,
    ) -> int:
        """Delete an entity's history, or an attribute's; returns the rows deleted."""

    async def change_history_instance(
        self,
        tenant: str,
        entity_id: str,
        attr: str,
        instance_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any]] | None,
    ) -> bool:
        """Replace one instance with what `change` makes of it, or delete it (None)."""

    async def expire_history(
        self,
        before: str,
        types: frozenset[str] | None,
        keep: frozenset[str],
        most_entities: int,
        after: tuple[str, str],
    ) -> tuple[int, tuple[str, str] | None]:
        """Delete history observed before `before` of up to `most_entities` entities (of
        `types`, or of any type not in `keep`) after (tenant, id); rows deleted, where next."""

    async def drop_history_partitions(self, before: str) -> int:
        """Drop whole time partitions older than `before` (PostgreSQL); how many."""

    async def put_device(self, tenant: str, device: DeviceRecord) -> None:
        """Register a device, or replace its record (same key)."""

    async def devices(self, tenant: str, keys: list[str] | None = None) -> list[DeviceRecord]:
        """The records with these keys, or all, ordered by key."""

    async def add_devices(
        self, tenant: str, devices: list[DeviceRecord], events: list[DeviceEvent]
    ) -> list[bool]:
        """Register new devices and their audit events in one transaction; False where the key
        or the device id is taken, and then neither that record nor its events are written."""

    async def change_device(
        self, tenant: str, key: str, change: DeviceChange
    ) -> DeviceRecord | None:
        """Read a device's record, let `change` give the new one and its audit events, and write
        both, atomically: no other writer changes the record in between, and whatever `change`
        raises rolls the write back. None if no device has this key."""

    async def find_devices(self, tenant: str, query: DeviceQuery) -> list[DeviceRecord]:
        """The records matching the query, ordered by key."""

    async def device_events(self, tenant: str, key: str) -> list[DeviceEvent]:
        """A device's audit trail, oldest first."""

    async def add_dead_letters(self, tenant: str, letters: list[DeadLetter]) -> None: ...

    async def dead_letters(
        self, tenant: str, *, open_only: bool, limit: int, offset: int, ids: list[int] | None = None
    ) -> list[DeadLetter]:
        """Dead letters, newest first; open ones are those not replayed successfully yet."""

    async def settle_dead_letter(
        self, tenant: str, letter_id: int, when: str, outcome: str
    ) -> None:
        """Note the outcome of a replay; "stored" closes the letter."""

    # -- subscriptions and their notification outbox (store/subscriptions_*.py) ----------------

    async def add_subscription(self, tenant: str, record: SubscriptionRecord) -> None:
        """Keep a new subscription; AlreadyExists if the id is taken."""

    async def update_subscription(self, tenant: str, record: SubscriptionRecord) -> bool:
        """Replace a subscription's document (its delivery status stays); False if missing."""

    async def delete_subscription(self, tenant: str, subscription_id: str) -> bool:
        """Delete a subscription with its queued notifications; False if missing."""

    async def get_subscription(
        self, tenant: str, subscription_id: str
    ) -> SubscriptionRecord | None: ...

    async def list_subscriptions(
        self, tenant: str | None, limit: int, offset: int
    ) -> tuple[list[SubscriptionRecord], int]:
        """A tenant's subscriptions (every tenant's with None) ordered by id, and their count."""

    async def claim_notifications(
        self, owner: str, now: str, lease_until: str, most: int, rows: int
    ) -> list[Claim]:
        """Lease up to `most` subscriptions with notifications due to this notifier, each with
        up to `rows` queued rows, oldest first; a leased subscription is nobody else's."""

    async def settle_notifications(self, outcomes: list[Delivered]) -> None:
        """Write back how deliveries went (delivered rows leave the outbox) and free their
        leases, all in one transaction."""

    async def queued_notifications(self, tenant: str, subscription_id: str) -> int: ...
