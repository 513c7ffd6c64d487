-- NGSI-LD subscriptions (doc: the subscription in internal form, its terms expanded; context:
-- the @context it was made with, to render it and its notifications) and their delivery state.
-- A notifier delivers a subscription only while it holds the lease (lease_owner until
-- lease_until); next_attempt_at defers delivery after a failure (back-off) or for throttling;
-- next_periodic_at is when a periodic (timeInterval) subscription is due next.
CREATE TABLE subscriptions (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    context TEXT NOT NULL,
    created_at TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    expires_at TEXT,
    is_active INTEGER NOT NULL DEFAULT 1,
    periodic INTEGER NOT NULL DEFAULT 0,
    times_sent INTEGER NOT NULL DEFAULT 0,
    times_failed INTEGER NOT NULL DEFAULT 0,
    last_notification TEXT,
    last_success TEXT,
    last_failure TEXT,
    last_error TEXT,
    consecutive_errors INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    next_periodic_at TEXT,
    lease_owner TEXT,
    lease_until TEXT,
    PRIMARY KEY (tenant, id)
);

-- The durable notification outbox: one row per (subscription, entity change), written in the
-- transaction of the change, deleted once delivered. Rows of a subscription go out in seq order.
CREATE TABLE notification_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    trigger TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notification_outbox_subscription ON notification_outbox (tenant, subscription_id, seq);
