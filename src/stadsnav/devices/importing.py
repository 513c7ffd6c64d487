"""Bulk import of a fleet from CSV or GeoJSON, with a report of what happened to every row.

Every row becomes the same registration the API takes (devices/registration.py) and is checked
alike: its form, its model's profile, duplicates among the devices on site and the rows before
it. Rows that pass are registered in batches (one transaction each); a row that fails is
reported with its number and the reason, and the others go on. A device already registered is
reported as such, so importing the same file twice changes nothing and fails nothing.

CSV has a header row naming its columns (any order); GeoJSON is a FeatureCollection of Points
whose properties have the same names. ``row`` is the spreadsheet row in a CSV (the header is
row 1) and the feature's position in a GeoJSON file (the first is 1).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from stadsnav.broker import now
from stadsnav.devices import lifecycle
from stadsnav.devices.couse import Conflict
from stadsnav.devices.registration import Registration, parse_organisation, parse_registration
from stadsnav.devices.registry import Registry, planned
from stadsnav.ngsild.errors import BadRequestData, NgsiLdError

COLUMNS = (
    "dev_eui",
    "name",
    "model",
    "owner",
    "lon",
    "lat",
    "district",
    "target_id",
    "target_type",
    "bin_depth",
    "sensor_height",
    "interval_s",
    "state",
    "controlled_property",  # purposes separated by ";"
    "co_users",  # organisations separated by ";"
    "installed_at",
    "override_reason",
)
_REQUIRED = ("dev_eui", "model", "lon", "lat")
_NUMBERS = {
    "bin_depth": "binDepth",
    "sensor_height": "sensorHeight",
    "interval_s": "reportingInterval",
}
BATCH = 200

Outcome = Literal["registered", "already-registered", "rejected"]


@dataclass(frozen=True, slots=True)
class RowResult:
    row: int
    dev_eui: str | None
    outcome: Outcome
    reason: str | None = None


@dataclass
class Report:
    results: list[RowResult] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": len(self.results),
            "registered": self.count("registered"),
            "alreadyRegistered": self.count("already-registered"),
            "rejected": self.count("rejected"),
            "results": [
                {
                    "row": r.row,
                    "devEUI": r.dev_eui,
                    "outcome": r.outcome,
                    **({"reason": r.reason} if r.reason is not None else {}),
                }
                for r in self.results
            ],
        }


@dataclass(frozen=True, slots=True)
class Defaults:
    """What a row that leaves the owner or state empty gets (a simulator's fleet names no
    owner; an existing fleet is active rather than planned)."""

    owner: str | None = None
    state: str | None = None

    def __post_init__(self) -> None:
        if self.owner is not None:
            parse_organisation(self.owner, "The default owner")
        if self.state is not None:
            lifecycle.check_state(self.state, lifecycle.INITIAL_STATES)


@dataclass(frozen=True, slots=True)
class Row:
    number: int
    dev_eui: str | None  # as the row gives it, lower-cased, for the report
    body: dict[str, Any] | None  # the registration, or None when the row could not be read
    problem: str | None = None


def read_csv(text: str, defaults: Defaults) -> list[Row]:
    reader = csv.DictReader(io.StringIO(text))
    _check_columns(reader.fieldnames or [])
    rows: list[Row] = []
    for record in reader:
        number = reader.line_num
        if None in record:
            problem = "the row has more cells than the header has columns"
            rows.append(Row(number, _dev_eui(record.get("dev_eui")), None, problem))
            continue
        cells = {k: v.strip() for k, v in record.items() if v is not None and v.strip()}
        rows.append(_row(number, cells, defaults))
    return rows


def read_geojson(document: Any, defaults: Defaults) -> list[Row]:
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise BadRequestData("A GeoJSON import is a FeatureCollection")
    features = document.get("features")
    if not isinstance(features, list):
        raise BadRequestData("The FeatureCollection has no list of features")
    rows: list[Row] = []
    for number, feature in enumerate(features, start=1):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        properties = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(properties, dict):
            rows.append(Row(number, None, None, "the feature has no properties"))
            continue
        dev_eui = _dev_eui(properties.get("dev_eui"))
        unknown = sorted(set(properties) - set(COLUMNS))
        if unknown:
            problem = f"unknown properties {', '.join(unknown[:5])}"
            rows.append(Row(number, dev_eui, None, problem))
            continue
        if (
            not isinstance(geometry, dict)
            or geometry.get("type") != "Point"
            or not isinstance(geometry.get("coordinates"), list)
            or len(geometry["coordinates"]) < 2
        ):
            rows.append(Row(number, dev_eui, None, "the feature's geometry is not a Point"))
            continue
        cells = {k: v for k, v in properties.items() if v is not None and v != ""}
        cells["lon"], cells["lat"] = geometry["coordinates"][:2]
        rows.append(_row(number, cells, defaults))
    return rows


def read_file(data: bytes, kind: Literal["csv", "geojson"], defaults: Defaults) -> list[Row]:
    """The rows of an import file; BadRequestData if it is not a file of that kind at all."""
    if kind == "csv":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadRequestData("A CSV import is UTF-8 text") from None
        try:
            return read_csv(text, defaults)
        except csv.Error as error:
            raise BadRequestData(f"Not readable as CSV: {error}") from None
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise BadRequestData(f"A GeoJSON import is JSON: {error}") from None
    return read_geojson(document, defaults)


async def import_rows(
    registry: Registry,
    tenant: str,
    rows: list[Row],
    *,
    actor: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Register the rows that pass every check, in batches; `progress` is told how many rows
    each finished batch held."""
    report = Report()
    neighbourhood = await registry.neighbourhood(tenant)
    seen: dict[str, int] = {}
    for batch in _batches(rows):
        stamp = now()
        known = await registry.registered(tenant, [r.dev_eui for r in batch if r.dev_eui])
        results: dict[int, RowResult] = {}
        accepted: list[tuple[Row, Registration, list[Conflict]]] = []
        for row in batch:
            settled = _settled(row, known, seen)
            if settled is not None:
                results[row.number] = settled
                continue
            try:
                registration = parse_registration(row.body, stamp)
            except NgsiLdError as error:
                results[row.number] = RowResult(row.number, row.dev_eui, "rejected", error.detail)
                continue
            device = registration.device
            found = neighbourhood.conflicts(planned(device))
            if found and registration.override is None:
                nearest = found[0]
                reason = (
                    f"duplicate: {nearest.device.key} ({nearest.device.owner}) already measures "
                    f"{', '.join(nearest.properties)} {nearest.distance:g} m away; "
                    "give override_reason to register it anyway"
                )
                results[row.number] = RowResult(row.number, device.key, "rejected", reason)
                continue
            seen[device.key] = row.number
            if device.state in lifecycle.LIVE_STATES:
                neighbourhood.add(device)
            accepted.append((row, registration, found))
        added = await registry.add(tenant, [(r, f) for _, r, f in accepted], actor)
        for (row, registration, _), ok in zip(accepted, added, strict=True):
            outcome: Outcome = "registered" if ok else "already-registered"
            results[row.number] = RowResult(row.number, registration.device.key, outcome)
        report.results.extend(results[row.number] for row in batch)
        if progress is not None:
            progress(len(batch))
    return report


def _settled(row: Row, known: set[str], seen: dict[str, int]) -> RowResult | None:
    """The result of a row that needs no checking: unreadable, registered, or repeated."""
    if row.body is None:
        return RowResult(row.number, row.dev_eui, "rejected", row.problem)
    if row.dev_eui in known:
        return RowResult(row.number, row.dev_eui, "already-registered")
    if row.dev_eui in seen:
        return RowResult(
            row.number, row.dev_eui, "rejected", f"repeats the devEUI of row {seen[row.dev_eui]}"
        )
    return None


def _batches(rows: list[Row]) -> Iterator[list[Row]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


def _check_columns(header: Sequence[str]) -> None:
    unknown = [c for c in header if c not in COLUMNS]
    missing = [c for c in _REQUIRED if c not in header]
    if unknown or missing:
        problems = []
        if unknown:
            problems.append(f"unknown columns {', '.join(unknown[:5])}")
        if missing:
            problems.append(f"missing columns {', '.join(missing)}")
        raise BadRequestData(
            f"The CSV header has {' and '.join(problems)}; the columns are {', '.join(COLUMNS)}"
        )


def _row(number: int, cells: dict[str, Any], defaults: Defaults) -> Row:
    """A row's cells (text from CSV, JSON values from GeoJSON) as a registration."""
    try:
        body: dict[str, Any] = {
            "devEUI": cells.get("dev_eui"),
            "model": cells.get("model"),
            "owner": cells.get("owner", defaults.owner),
            "location": [_number(cells.get("lon"), "lon"), _number(cells.get("lat"), "lat")],
        }
        state = cells.get("state", defaults.state)
        if state is not None:
            body["state"] = state
        settings = {
            name: _number(cells[column], column)
            for column, name in _NUMBERS.items()
            if column in cells
        }
        if settings:
            body["settings"] = settings
        if "target_id" in cells or "target_type" in cells:
            body["target"] = {"id": cells.get("target_id"), "type": cells.get("target_type")}
        for column, member in (
            ("name", "name"),
            ("district", "district"),
            ("installed_at", "installedAt"),
        ):
            if column in cells:
                body[member] = cells[column]
        for column, member in (
            ("controlled_property", "controlledProperty"),
            ("co_users", "coUsers"),
        ):
            if column in cells:
                body[member] = _list(cells[column])
        if "override_reason" in cells:
            body["override"] = {"reason": cells["override_reason"]}
    except BadRequestData as error:
        return Row(number, _dev_eui(cells.get("dev_eui")), None, error.detail)
    return Row(number, _dev_eui(cells.get("dev_eui")), body)


def _dev_eui(raw: Any) -> str | None:
    return raw.strip().lower() if isinstance(raw, str) and raw.strip() else None


def _number(raw: Any, column: str) -> Any:
    """A number from a CSV cell; GeoJSON numbers are left to the registration's checks."""
    if not isinstance(raw, str):
        return raw
    try:
        value = float(raw)
    except ValueError:
        raise BadRequestData(f"{column} is a number, got {raw!r:.40}") from None
    return int(value) if value.is_integer() and column == "interval_s" else value


def _list(raw: Any) -> Any:
    if isinstance(raw, str):
        return [item.strip() for item in raw.split(";") if item.strip()]
    return raw
