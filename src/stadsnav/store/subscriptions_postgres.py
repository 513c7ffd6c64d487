"""Subscriptions and the notification outbox on PostgreSQL (functions taking a connection)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from stadsnav.ngsild.errors import AlreadyExists
from stadsnav.store.base import PendingNotification
from stadsnav.store.subscriptionrecords import (
    SUBSCRIPTION_COLUMNS,
    Claim,
    Delivered,
    OutboxRow,
    SubscriptionRecord,
    status_change,
    subscription_from_row,
)

Conn = AsyncConnection[TupleRow]
_LEASED_COLUMNS = ", ".join(f"u.{column}" for column in SUBSCRIPTION_COLUMNS.split(", "))


async def add_notifications(
    cur: psycopg.AsyncCursor[Any], tenant: str, rows: list[PendingNotification]
) -> None:
    """Queue notifications in the outbox, inside the caller's (the change's) transaction."""
    if not rows:
        return
    await cur.executemany(
        "INSERT INTO notification_outbox (tenant, subscription_id, entity_id, trigger, data, "
        "created_at) VALUES (%s, %s, %s, %s, %s, %s)",
        [
            (
                tenant,
                row.subscription_id,
                row.entity_id,
                row.trigger,
                Jsonb(row.data),
                row.created_at,
            )
            for row in rows
        ],
    )


async def add_subscription(conn: Conn, tenant: str, record: SubscriptionRecord) -> None:
    cursor = await conn.execute(
        "INSERT INTO subscriptions (tenant, id, doc, context, created_at, modified_at, "
        "expires_at, is_active, periodic, next_periodic_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (
            tenant,
            record.id,
            Jsonb(record.doc),
            Jsonb(record.context),
            record.created_at,
            record.modified_at,
            record.expires_at,
            record.is_active,
            record.periodic,
            record.created_at if record.periodic else None,
        ),
    )
    if cursor.rowcount == 0:
        raise AlreadyExists(f"Subscription {record.id} already exists")
    await conn.execute("INSERT INTO tenants (name) VALUES (%s) ON CONFLICT DO NOTHING", (tenant,))


async def update_subscription(conn: Conn, tenant: str, record: SubscriptionRecord) -> bool:
    """Replace a subscription's document; its delivery status stays. A subscription made
    periodic is due at once; a reactivated one is retried at once."""
    cursor = await conn.execute(
        "UPDATE subscriptions SET doc = %s, context = %s, modified_at = %s, expires_at = %s, "
        "next_periodic_at = CASE WHEN %s THEN coalesce(next_periodic_at, %s) END, "
        "next_attempt_at = CASE WHEN %s AND NOT is_active THEN NULL ELSE next_attempt_at END, "
        "is_active = %s, periodic = %s WHERE tenant = %s AND id = %s",
        (
            Jsonb(record.doc),
            Jsonb(record.context),
            record.modified_at,
            record.expires_at,
            record.periodic,
            record.modified_at,
            record.is_active,
            record.is_active,
            record.periodic,
            tenant,
            record.id,
        ),
    )
    return cursor.rowcount > 0


async def delete_subscription(conn: Conn, tenant: str, subscription_id: str) -> bool:
    await conn.execute(
        "DELETE FROM notification_outbox WHERE tenant = %s AND subscription_id = %s",
        (tenant, subscription_id),
    )
    cursor = await conn.execute(
        "DELETE FROM subscriptions WHERE tenant = %s AND id = %s", (tenant, subscription_id)
    )
    return cursor.rowcount > 0


async def get_subscription(
    conn: Conn, tenant: str, subscription_id: str
) -> SubscriptionRecord | None:
    cursor = await conn.execute(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE tenant = %s AND id = %s",
        (tenant, subscription_id),
    )
    row = await cursor.fetchone()
    return None if row is None else _record(row)


async def list_subscriptions(
    conn: Conn, tenant: str | None, limit: int, offset: int
) -> tuple[list[SubscriptionRecord], int]:
    """A tenant's subscriptions (every tenant's with None), ordered by id, and their count."""
    where, params = ("WHERE tenant = %s", [tenant]) if tenant is not None else ("", [])
    cursor = await conn.execute(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions {where} "
        'ORDER BY tenant COLLATE "C", id COLLATE "C" LIMIT %s OFFSET %s',
        [*params, limit, offset],
    )
    rows = await cursor.fetchall()
    cursor = await conn.execute(f"SELECT count(*) FROM subscriptions {where}", params)
    total = await cursor.fetchone()
    assert total is not None
    return [_record(row) for row in rows], int(total[0])


async def claim(
    conn: Conn, owner: str, now: str, lease_until: str, most: int, rows: int
) -> list[Claim]:
    """Take the lease of subscriptions with something due (queued rows, or a periodic
    notification), skipping those another notifier holds or that wait (throttling, back-off).
    Run in a transaction: SKIP LOCKED lets several workers claim at once, each different ones."""
    cursor = await conn.execute(
        "WITH due AS (SELECT s.tenant, s.id FROM (SELECT tenant, id, min(oldest) AS oldest "
        "FROM (SELECT tenant, subscription_id AS id, min(seq) AS oldest "
        "FROM notification_outbox GROUP BY tenant, subscription_id UNION ALL "
        "SELECT tenant, id, 0 FROM subscriptions WHERE next_periodic_at <= %(now)s) a "
        "GROUP BY tenant, id) w "
        "JOIN subscriptions s ON s.tenant = w.tenant AND s.id = w.id WHERE s.is_active "
        "AND (s.expires_at IS NULL OR s.expires_at > %(now)s) "
        "AND (s.lease_until IS NULL OR s.lease_until <= %(now)s) "
        "AND (s.next_attempt_at IS NULL OR s.next_attempt_at <= %(now)s) "
        "ORDER BY w.oldest LIMIT %(most)s FOR UPDATE OF s SKIP LOCKED) "
        "UPDATE subscriptions u SET lease_owner = %(owner)s, lease_until = %(until)s FROM due "
        "WHERE u.tenant = due.tenant AND u.id = due.id "
        f"RETURNING coalesce(u.next_periodic_at <= %(now)s, false), {_LEASED_COLUMNS}",
        {"now": now, "most": most, "owner": owner, "until": lease_until},
    )
    leased = [(bool(row[0]), _record(row[1:])) for row in await cursor.fetchall()]
    if not leased:
        return []
    found = await conn.execute(
        "SELECT o.tenant, o.subscription_id, o.seq, o.entity_id, o.trigger, o.data, "
        "o.created_at, o.attempts FROM unnest(%s::text[], %s::text[]) AS k(tenant, id) "
        "CROSS JOIN LATERAL (SELECT * FROM notification_outbox q WHERE q.tenant = k.tenant "
        "AND q.subscription_id = k.id ORDER BY q.seq LIMIT %s) o ORDER BY o.seq",
        ([r.tenant for _, r in leased], [r.id for _, r in leased], rows),
    )
    queued: dict[tuple[str, str], list[OutboxRow]] = {}
    for row in await found.fetchall():
        queued.setdefault((row[0], row[1]), []).append(OutboxRow(*row[2:]))
    return [
        Claim(record, queued.get((record.tenant, record.id), []), periodic_due)
        for periodic_due, record in leased
    ]


async def settle(conn: Conn, outcomes: list[Delivered]) -> None:
    """Write back how deliveries went and give their leases up (in the caller's transaction):
    three statements however many outcomes."""
    delivered = [seq for o in outcomes if o.ok for seq in o.seqs]
    retried = [seq for o in outcomes if not o.ok for seq in o.seqs]
    if delivered:
        await conn.execute("DELETE FROM notification_outbox WHERE seq = ANY(%s)", (delivered,))
    if retried:
        await conn.execute(
            "UPDATE notification_outbox SET attempts = attempts + 1 WHERE seq = ANY(%s)",
            (retried,),
        )
    if not outcomes:
        return
    changes = [status_change(o) for o in outcomes]
    await conn.execute(
        "UPDATE subscriptions s SET times_sent = s.times_sent + o.sent, "
        "times_failed = s.times_failed + o.failed, "
        "last_notification = coalesce(o.last_notification, s.last_notification), "
        "last_success = coalesce(o.last_success, s.last_success), "
        "last_failure = coalesce(o.last_failure, s.last_failure), "
        "consecutive_errors = CASE WHEN o.ok THEN 0 ELSE s.consecutive_errors + 1 END, "
        "last_error = o.error, next_attempt_at = o.next_attempt_at, "
        "next_periodic_at = coalesce(o.next_periodic_at, s.next_periodic_at), "
        "lease_owner = CASE WHEN s.lease_owner = o.owner THEN NULL ELSE s.lease_owner END, "
        "lease_until = CASE WHEN s.lease_owner = o.owner THEN NULL ELSE s.lease_until END "
        "FROM unnest(%s::text[], %s::text[], %s::int[], %s::int[], %s::text[], %s::text[], "
        "%s::text[], %s::bool[], %s::text[], %s::text[], %s::text[], %s::text[]) "
        "AS o(tenant, id, sent, failed, last_notification, last_success, last_failure, ok, "
        "error, next_attempt_at, next_periodic_at, owner) "
        "WHERE s.tenant = o.tenant AND s.id = o.id",
        (
            [c.tenant for c in changes],
            [c.subscription_id for c in changes],
            [c.sent for c in changes],
            [c.failed for c in changes],
            [c.last_notification for c in changes],
            [c.last_success for c in changes],
            [c.last_failure for c in changes],
            [c.ok for c in changes],
            [c.error for c in changes],
            [c.next_attempt_at for c in changes],
            [c.next_periodic_at for c in changes],
            [c.owner for c in changes],
        ),
    )


async def queued(conn: Conn, tenant: str, subscription_id: str) -> int:
    """How many notifications wait in the outbox for a subscription."""
    cursor = await conn.execute(
        "SELECT count(*) FROM notification_outbox WHERE tenant = %s AND subscription_id = %s",
        (tenant, subscription_id),
    )
    row = await cursor.fetchone()
    return 0 if row is None else int(row[0])


def _record(row: Any) -> SubscriptionRecord:
    return subscription_from_row(row, row[1], row[2])
