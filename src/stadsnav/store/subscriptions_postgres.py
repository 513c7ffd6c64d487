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
    subscription_from_row,
)

Conn = AsyncConnection[TupleRow]


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
        "WITH due AS (SELECT s.tenant, s.id FROM subscriptions s WHERE s.is_active "
        "AND (s.expires_at IS NULL OR s.expires_at > %(now)s) "
        "AND (s.lease_until IS NULL OR s.lease_until <= %(now)s) "
        "AND (s.next_attempt_at IS NULL OR s.next_attempt_at <= %(now)s) "
        "AND ((s.next_periodic_at IS NOT NULL AND s.next_periodic_at <= %(now)s) OR EXISTS "
        "(SELECT 1 FROM notification_outbox o WHERE o.tenant = s.tenant "
        "AND o.subscription_id = s.id)) LIMIT %(most)s FOR UPDATE SKIP LOCKED) "
        "UPDATE subscriptions u SET lease_owner = %(owner)s, lease_until = %(until)s FROM due "
        "WHERE u.tenant = due.tenant AND u.id = due.id "
        "RETURNING u.tenant, u.id, coalesce(u.next_periodic_at <= %(now)s, false)",
        {"now": now, "most": most, "owner": owner, "until": lease_until},
    )
    claims = []
    for tenant, subscription_id, periodic_due in await cursor.fetchall():
        record = await get_subscription(conn, tenant, subscription_id)
        assert record is not None
        found = await conn.execute(
            "SELECT seq, entity_id, trigger, data, created_at, attempts FROM notification_outbox "
            "WHERE tenant = %s AND subscription_id = %s ORDER BY seq LIMIT %s",
            (tenant, subscription_id, rows),
        )
        queued = [OutboxRow(*r) for r in await found.fetchall()]
        claims.append(Claim(record, queued, bool(periodic_due)))
    return claims


async def settle(conn: Conn, outcome: Delivered) -> None:
    """Write back how a delivery went and give its lease up."""
    where = (outcome.tenant, outcome.subscription_id)
    if outcome.ok:
        if outcome.seqs:
            await conn.execute(
                "DELETE FROM notification_outbox WHERE tenant = %s AND subscription_id = %s "
                "AND seq = ANY(%s)",
                (*where, outcome.seqs),
            )
        await conn.execute(
            "UPDATE subscriptions SET times_sent = times_sent + %s, "
            "last_notification = coalesce(%s, last_notification), "
            "last_success = coalesce(%s, last_success), consecutive_errors = 0, last_error = NULL, "
            "next_attempt_at = %s, next_periodic_at = coalesce(%s, next_periodic_at) "
            "WHERE tenant = %s AND id = %s",
            (
                int(outcome.sent),
                outcome.at if outcome.sent else None,
                outcome.at if outcome.sent else None,
                outcome.next_attempt_at,
                outcome.next_periodic_at,
                *where,
            ),
        )
    else:
        if outcome.seqs:
            await conn.execute(
                "UPDATE notification_outbox SET attempts = attempts + 1 WHERE tenant = %s "
                "AND subscription_id = %s AND seq = ANY(%s)",
                (*where, outcome.seqs),
            )
        await conn.execute(
            "UPDATE subscriptions SET times_sent = times_sent + 1, "
            "times_failed = times_failed + 1, last_notification = %s, last_failure = %s, "
            "consecutive_errors = consecutive_errors + 1, last_error = %s, next_attempt_at = %s "
            "WHERE tenant = %s AND id = %s",
            (outcome.at, outcome.at, outcome.error, outcome.next_attempt_at, *where),
        )
    await conn.execute(
        "UPDATE subscriptions SET lease_owner = NULL, lease_until = NULL "
        "WHERE tenant = %s AND id = %s AND lease_owner = %s",
        (*where, outcome.owner),
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
