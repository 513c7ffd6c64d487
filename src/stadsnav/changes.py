"""What an entity change brings with it: its history rows and the subscriptions' notifications.

The store calls the observer set on it inside every write transaction (store/base.py,
ChangeObserver), so the change, its history and its queued notifications are committed together:
a crash loses all three or none. Device data (Store.record) brings its own history rows, one per
observation, so only the notifications are taken from here for it.
"""

from __future__ import annotations

from typing import Any, Literal

from stadsnav.ngsild.entity import Entity
from stadsnav.store.base import ChangeObserver, Consequences, EntityChange, HistoryRow

# Which instances written through the API go to history: all of them, only observations
# (those with an observedAt, as with device data), or none.
HistoryMode = Literal["all", "observed", "off"]


class ChangeFeed:
    """The store's observer: history rows for API writes, notifications from `subscriptions`."""

    def __init__(
        self, subscriptions: ChangeObserver | None = None, *, history: HistoryMode = "observed"
    ) -> None:
        self.subscriptions = subscriptions
        self.history = history

    def watching(self, tenant: str) -> bool:
        return self.subscriptions is not None and self.subscriptions.watching(tenant)

    def consequences(self, tenant: str, changes: list[EntityChange], at: str) -> Consequences:
        found = (
            self.subscriptions.consequences(tenant, changes, at)
            if self.subscriptions is not None and self.subscriptions.watching(tenant)
            else Consequences()
        )
        if self.history != "off":
            observed = self.history == "observed"
            found.history = [
                row for change in changes for row in history_rows(change, at, observed=observed)
            ]
        return found


def history_rows(change: EntityChange, at: str, *, observed: bool = False) -> list[HistoryRow]:
    """The attribute instances a write put into an entity: each one that is not, as it is, in
    what the entity was before (all of them when the entity is new or was replaced whole);
    with `observed`, only those with an observedAt. An instance is dated by its observedAt,
    else by when it was written."""
    after = change.after
    if after is None:
        return []
    before = change.before
    rows: list[HistoryRow] = []
    for attr, instances in after.attrs.items():
        previous = [] if before is None else before.attrs.get(attr, [])
        for instance in instances:
            if (observed and "observedAt" not in instance) or instance in previous:
                continue
            when = instance.get("observedAt") or instance.get("modifiedAt") or at
            rows.append(_row(after, attr, instance, when))
    return rows


def _row(entity: Entity, attr: str, instance: dict[str, Any], observed: str) -> HistoryRow:
    return HistoryRow(
        entity.id,
        attr,
        instance.get("datasetId"),
        observed,
        instance,
        entity_type=entity.types[0] if entity.types else "",
    )
