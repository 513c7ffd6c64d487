"""Subscriptions' notifications: which changes a subscription is told of (matching), the
durable outbox, and delivery over HTTP and MQTT."""
