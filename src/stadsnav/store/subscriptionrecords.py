"""What the stores keep of a subscription and its pending notifications, alike on both backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SubscriptionRecord:
    """A subscription as its client wrote it (doc, without @context), the @context it came
    with, and how its notifications have fared."""

    id: str
    doc: dict[str, Any]
    context: Any  # a URL, an object, a list, or None (the core context)
    created_at: str
    modified_at: str
    expires_at: str | None = None
    is_active: bool = True
    periodic: bool = False
    tenant: str = ""
    times_sent: int = 0
    times_failed: int = 0
    last_notification: str | None = None
    last_success: str | None = None
    last_failure: str | None = None
    last_error: str | None = None
    consecutive_errors: int = 0

    def status_fields(self) -> dict[str, Any]:
        """The read-only members a GET shows (clause 5.2.12 and 5.2.14)."""
        return {
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
            "timesSent": self.times_sent,
            "timesFailed": self.times_failed,
            "lastNotification": self.last_notification,
            "lastSuccess": self.last_success,
            "lastFailure": self.last_failure,
            "lastErrorReason": self.last_error,
            "consecutiveErrors": self.consecutive_errors,
        }


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    entity_id: str
    trigger: str
    data: dict[str, Any]
    created_at: str
    attempts: int = 0


@dataclass(frozen=True)
class Claim:
    """A subscription this notifier holds the lease of until `lease_until`: its queued rows
    (oldest first) and whether its periodic notification is due."""

    subscription: SubscriptionRecord
    rows: list[OutboxRow] = field(default_factory=list)
    periodic_due: bool = False


@dataclass(frozen=True)
class Delivered:
    """How one attempt to notify went; written back with `Store.settle_claim`."""

    tenant: str
    subscription_id: str
    owner: str
    at: str
    seqs: list[int]
    ok: bool
    next_attempt_at: str | None  # throttling after a success, back-off after a failure
    next_periodic_at: str | None = None  # set after a periodic notification went out
    error: str | None = None
    sent: bool = True  # False: nothing was due after all (a periodic one with no entities)


@dataclass(frozen=True)
class StatusChange:
    """What one outcome does to its subscription's row: counters to add, times to set (None:
    kept), and the lease given up if `owner` still holds it."""

    tenant: str
    subscription_id: str
    sent: int
    failed: int
    last_notification: str | None
    last_success: str | None
    last_failure: str | None
    ok: bool
    error: str | None
    next_attempt_at: str | None
    next_periodic_at: str | None
    owner: str


def status_change(outcome: Delivered) -> StatusChange:
    sent = outcome.at if outcome.sent else None
    return StatusChange(
        tenant=outcome.tenant,
        subscription_id=outcome.subscription_id,
        sent=int(outcome.sent) if outcome.ok else 1,
        failed=0 if outcome.ok else 1,
        last_notification=sent if outcome.ok else outcome.at,
        last_success=sent if outcome.ok else None,
        last_failure=None if outcome.ok else outcome.at,
        ok=outcome.ok,
        error=None if outcome.ok else outcome.error,
        next_attempt_at=outcome.next_attempt_at,
        next_periodic_at=outcome.next_periodic_at if outcome.ok else None,
        owner=outcome.owner,
    )


SUBSCRIPTION_COLUMNS = (
    "id, doc, context, created_at, modified_at, expires_at, is_active, periodic, tenant, "
    "times_sent, times_failed, last_notification, last_success, last_failure, last_error, "
    "consecutive_errors"
)


def subscription_from_row(row: Any, doc: dict[str, Any], context: Any) -> SubscriptionRecord:
    return SubscriptionRecord(
        id=row[0],
        doc=doc,
        context=context,
        created_at=row[3],
        modified_at=row[4],
        expires_at=row[5],
        is_active=bool(row[6]),
        periodic=bool(row[7]),
        tenant=row[8],
        times_sent=row[9],
        times_failed=row[10],
        last_notification=row[11],
        last_success=row[12],
        last_failure=row[13],
        last_error=row[14],
        consecutive_errors=row[15],
    )
