"""Subscriptions and the notification outbox on SQLite (functions taking a connection)."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

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


def add_notifications(
    conn: sqlite3.Connection, tenant: str, rows: list[PendingNotification]
) -> None:
    """Queue notifications in the outbox, inside the caller's (the change's) transaction."""
    if not rows:
        return
    conn.executemany(
        "INSERT INTO notification_outbox (tenant, subscription_id, entity_id, trigger, data, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                tenant,
                row.subscription_id,
                row.entity_id,
                row.trigger,
                orjson.dumps(row.data).decode(),
                row.created_at,
            )
            for row in rows
        ],
    )


def add_subscription(conn: sqlite3.Connection, tenant: str, record: SubscriptionRecord) -> None:
    try:
        conn.execute(
            "INSERT INTO subscriptions (tenant, id, doc, context, created_at, modified_at, "
            "expires_at, is_active, periodic, next_periodic_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                tenant,
                record.id,
                _dumps(record.doc),
                _dumps(record.context),
                record.created_at,
                record.modified_at,
                record.expires_at,
                record.is_active,
                record.periodic,
                record.created_at if record.periodic else None,
            ),
        )
    except sqlite3.IntegrityError:
        raise AlreadyExists(f"Subscription {record.id} already exists") from None
    conn.execute(
        "INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?, ?)",
        (tenant, record.created_at),
    )


def update_subscription(conn: sqlite3.Connection, tenant: str, record: SubscriptionRecord) -> bool:
    """Replace a subscription's document; its delivery status stays. A subscription made
    periodic is due at once; a reactivated one is retried at once."""
    cursor = conn.execute(
        "UPDATE subscriptions SET doc = ?, context = ?, modified_at = ?, expires_at = ?, "
        "next_periodic_at = CASE WHEN ? THEN coalesce(next_periodic_at, ?) END, "
        "next_attempt_at = CASE WHEN ? AND NOT is_active THEN NULL ELSE next_attempt_at END, "
        "is_active = ?, periodic = ? WHERE tenant = ? AND id = ?",
        (
            _dumps(record.doc),
            _dumps(record.context),
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


def delete_subscription(conn: sqlite3.Connection, tenant: str, subscription_id: str) -> bool:
    conn.execute(
        "DELETE FROM notification_outbox WHERE tenant = ? AND subscription_id = ?",
        (tenant, subscription_id),
    )
    cursor = conn.execute(
        "DELETE FROM subscriptions WHERE tenant = ? AND id = ?", (tenant, subscription_id)
    )
    return cursor.rowcount > 0


def get_subscription(
    conn: sqlite3.Connection, tenant: str, subscription_id: str
) -> SubscriptionRecord | None:
    row = conn.execute(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE tenant = ? AND id = ?",
        (tenant, subscription_id),
    ).fetchone()
    return None if row is None else _record(row)


def list_subscriptions(
    conn: sqlite3.Connection, tenant: str | None, limit: int, offset: int
) -> tuple[list[SubscriptionRecord], int]:
    """A tenant's subscriptions (every tenant's with None), ordered by id, and their count."""
    where, params = ("WHERE tenant = ?", [tenant]) if tenant is not None else ("", [])
    rows = conn.execute(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions {where} ORDER BY tenant, id "
        "LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    total = conn.execute(f"SELECT count(*) FROM subscriptions {where}", params).fetchone()[0]
    return [_record(row) for row in rows], int(total)


# Subscriptions with something due, the longest waiting first: those with queued rows (found
# from the outbox, which is short, rather than by asking each subscription) and periodic ones.
_WAITING = (
    "SELECT tenant, id, min(oldest) AS oldest FROM (SELECT tenant, subscription_id AS id, "
    "min(seq) AS oldest FROM notification_outbox GROUP BY tenant, subscription_id "
    "UNION ALL SELECT tenant, id, 0 FROM subscriptions WHERE next_periodic_at <= :now) "
    "GROUP BY tenant, id"
)


def claim(
    conn: sqlite3.Connection, owner: str, now: str, lease_until: str, most: int, rows: int
) -> list[Claim]:
    """Take the lease of subscriptions with something due (queued rows, or a periodic
    notification), skipping those another notifier holds or that wait (throttling, back-off)."""
    due = conn.execute(
        f"SELECT s.tenant, s.id, s.next_periodic_at IS NOT NULL AND s.next_periodic_at <= :now "
        f"FROM ({_WAITING}) w JOIN subscriptions s ON s.tenant = w.tenant AND s.id = w.id "
        "WHERE s.is_active AND (s.expires_at IS NULL OR s.expires_at > :now) "
        "AND (s.lease_until IS NULL OR s.lease_until <= :now) "
        "AND (s.next_attempt_at IS NULL OR s.next_attempt_at <= :now) "
        "ORDER BY w.oldest LIMIT :most",
        {"now": now, "most": most},
    ).fetchall()
    claims = []
    for tenant, subscription_id, periodic_due in due:
        row = conn.execute(
            "UPDATE subscriptions SET lease_owner = ?, lease_until = ? WHERE tenant = ? AND id = ? "
            f"RETURNING {SUBSCRIPTION_COLUMNS}",
            (owner, lease_until, tenant, subscription_id),
        ).fetchone()
        record = _record(row)
        queued = conn.execute(
            "SELECT seq, entity_id, trigger, data, created_at, attempts FROM notification_outbox "
            "WHERE tenant = ? AND subscription_id = ? ORDER BY seq LIMIT ?",
            (tenant, subscription_id, rows),
        ).fetchall()
        claims.append(
            Claim(
                record,
                [OutboxRow(r[0], r[1], r[2], orjson.loads(r[3]), r[4], r[5]) for r in queued],
                bool(periodic_due),
            )
        )
    return claims


def settle(conn: sqlite3.Connection, outcomes: list[Delivered]) -> None:
    """Write back how deliveries went and give their leases up (in the caller's transaction)."""
    delivered = [(seq,) for o in outcomes if o.ok for seq in o.seqs]
    retried = [(seq,) for o in outcomes if not o.ok for seq in o.seqs]
    if delivered:
        conn.executemany("DELETE FROM notification_outbox WHERE seq = ?", delivered)
    if retried:
        conn.executemany(
            "UPDATE notification_outbox SET attempts = attempts + 1 WHERE seq = ?", retried
        )
    changes = [status_change(o) for o in outcomes]
    conn.executemany(
        "UPDATE subscriptions SET times_sent = times_sent + ?, times_failed = times_failed + ?, "
        "last_notification = coalesce(?, last_notification), "
        "last_success = coalesce(?, last_success), last_failure = coalesce(?, last_failure), "
        "consecutive_errors = CASE WHEN ? THEN 0 ELSE consecutive_errors + 1 END, "
        "last_error = ?, next_attempt_at = ?, next_periodic_at = coalesce(?, next_periodic_at), "
        "lease_owner = CASE WHEN lease_owner = ? THEN NULL ELSE lease_owner END, "
        "lease_until = CASE WHEN lease_owner = ? THEN NULL ELSE lease_until END "
        "WHERE tenant = ? AND id = ?",
        [
            (
                c.sent,
                c.failed,
                c.last_notification,
                c.last_success,
                c.last_failure,
                c.ok,
                c.error,
                c.next_attempt_at,
                c.next_periodic_at,
                c.owner,
                c.owner,
                c.tenant,
                c.subscription_id,
            )
            for c in changes
        ],
    )


def queued(conn: sqlite3.Connection, tenant: str, subscription_id: str) -> int:
    """How many notifications wait in the outbox for a subscription."""
    row = conn.execute(
        "SELECT count(*) FROM notification_outbox WHERE tenant = ? AND subscription_id = ?",
        (tenant, subscription_id),
    ).fetchone()
    return int(row[0])


def _record(row: Any) -> SubscriptionRecord:
    return subscription_from_row(row, orjson.loads(row[1]), orjson.loads(row[2]))


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
