"""A device's lifecycle: the states it passes through and the transitions allowed between them.

    planned ─► installed ─► active ◄─► maintenance
       └───────────┴───────────┴───────────┴──► retired (final)

A device is registered as planned (bought or about to be), installed (on site, not yet
commissioned) or active (an existing fleet being imported). Retired is final: the hardware is
gone, and its record and history stay for the audit trail.
"""

from __future__ import annotations

from stadsnav.ngsild.errors import BadRequestData, OperationNotSupported

STATES = ("planned", "installed", "active", "maintenance", "retired")
INITIAL_STATES = frozenset({"planned", "installed", "active"})
# On site and on the network: what co-use is checked against, and the states in which a device
# counts as installed. Ingestion takes in data from these same states (RECEIVING_STATES of
# ingest/pipeline.py).
LIVE_STATES = frozenset({"installed", "active", "maintenance"})

_NEXT: dict[str, frozenset[str]] = {
    "planned": frozenset({"installed", "retired"}),
    "installed": frozenset({"active", "retired"}),
    "active": frozenset({"maintenance", "retired"}),
    "maintenance": frozenset({"active", "retired"}),
    "retired": frozenset(),
}


def check_state(state: object, allowed: frozenset[str] | tuple[str, ...] = STATES) -> str:
    if not isinstance(state, str) or state not in allowed:
        choices = ", ".join(s for s in STATES if s in allowed)
        raise BadRequestData(f"state must be one of {choices}, got {state!r:.50}")
    return state


def check_transition(current: str, wanted: str) -> None:
    """OperationNotSupported unless the lifecycle allows going from `current` to `wanted`."""
    if wanted == current:
        raise OperationNotSupported(f"The device is already {current}")
    allowed = _NEXT[current]
    if wanted not in allowed:
        if not allowed:
            raise OperationNotSupported(f"The device is {current}, which is final")
        choices = " or ".join(s for s in STATES if s in allowed)
        raise OperationNotSupported(
            f"A {current} device cannot become {wanted}; it can become {choices}"
        )
