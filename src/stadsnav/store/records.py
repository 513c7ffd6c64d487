"""The device registry's and ingestion's rows, as both backends lay them out.

Only how JSON travels differs: SQLite keeps it as text, PostgreSQL as jsonb and arrays that the
driver converts; each backend passes its own `decode` and `encode`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stadsnav.store.base import DeadLetter, DeviceRecord

DEVICE_COLUMNS = (
    "key, device_id, model, owner, state, target_id, target_type, settings, lon, lat, "
    "secret_hash, created_at, modified_at, name, district, controlled_property, co_users, "
    "installed_at"
)
EVENT_COLUMNS = "id, device, at, kind, actor, from_state, to_state, reason, detail"
LETTER_COLUMNS = (
    "id, received_at, transport, network, event, source, device, stage, reason, body, "
    "replayed_at, outcome"
)


def device_from_row(row: Any, decode: Callable[[Any], Any]) -> DeviceRecord:
    """A devices row in DEVICE_COLUMNS order; `decode` turns a stored JSON value into Python."""
    return DeviceRecord(
        key=row[0],
        device_id=row[1],
        model=row[2],
        owner=row[3],
        state=row[4],
        target_id=row[5],
        target_type=row[6],
        settings=decode(row[7]),
        location=None if row[8] is None else (row[8], row[9]),
        secret_hash=row[10],
        created_at=row[11],
        modified_at=row[12],
        name=row[13],
        district=row[14],
        controlled_property=tuple(decode(row[15])),
        co_users=tuple(decode(row[16])),
        installed_at=row[17],
    )


def device_values(
    tenant: str,
    device: DeviceRecord,
    encode: Callable[[Any], Any],
    encode_list: Callable[[list[str]], Any],
) -> tuple[Any, ...]:
    """The values of a devices row, in the order of `tenant, DEVICE_COLUMNS`."""
    lon, lat = device.location if device.location is not None else (None, None)
    return (
        tenant,
        device.key,
        device.device_id,
        device.model,
        device.owner,
        device.state,
        device.target_id,
        device.target_type,
        encode(device.settings),
        lon,
        lat,
        device.secret_hash,
        device.created_at,
        device.modified_at,
        device.name,
        device.district,
        encode_list(list(device.controlled_property)),
        encode_list(list(device.co_users)),
        device.installed_at,
    )


def letter_from_row(row: Any) -> DeadLetter:
    """A dead_letters row in LETTER_COLUMNS order."""
    return DeadLetter(
        id=row[0],
        received_at=row[1],
        transport=row[2],
        network=row[3],
        event=row[4],
        source=row[5],
        device=row[6],
        stage=row[7],
        reason=row[8],
        body=bytes(row[9]),
        replayed_at=row[10],
        outcome=row[11],
    )
