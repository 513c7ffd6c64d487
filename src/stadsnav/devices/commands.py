"""`stadsnav devices …`: the registry on the command line.

Each command opens the database itself (like `stadsnav get`) and goes through the same Registry
as the HTTP API, so a device registered here is checked exactly as one registered over HTTP. A
running server notices a change within its device cache time (ingestion reads records again
after a few seconds).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import orjson
import typer

from stadsnav.settings import Settings

if TYPE_CHECKING:
    from stadsnav.devices.profiles import Profile
    from stadsnav.devices.registry import Registry
    from stadsnav.store.base import DeviceRecord

T = TypeVar("T")

app = typer.Typer(
    help="The device registry: register, list, move through the lifecycle, check co-use, "
    "import a fleet.",
    no_args_is_help=True,
)

Database = Annotated[
    str | None,
    typer.Option(help="sqlite:///path/file.db or postgresql://… [env STADSNAV_DATABASE]."),
]
Tenant = Annotated[str, typer.Option(help="NGSILD-Tenant the devices belong to.")]
Actor = Annotated[
    str | None,
    typer.Option(help="Organisation making the change, for the audit trail (default: owner)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Key = Annotated[str, typer.Argument(help="The device's DevEUI (16 hexadecimal digits).")]


def _settings(database: str | None) -> Settings:
    # The flag wins over STADSNAV_DATABASE, which wins over the default.
    return Settings() if database is None else Settings(database=database)


@asynccontextmanager
async def _opened(database: str | None) -> AsyncIterator[Registry]:
    """A Registry on the configured database, closed afterwards."""
    from stadsnav.broker import Broker
    from stadsnav.devices.registry import Registry
    from stadsnav.store.opening import open_store

    settings = _settings(database)
    store = open_store(settings)
    await store.open()
    try:
        yield Registry(Broker(store), radius=settings.devices_couse_radius)
    finally:
        await store.close()


def _run(database: str | None, work: Callable[[Registry], Awaitable[T]]) -> T:
    """Run `work` with a Registry; a refusal is printed with its reason and exits with 1."""
    from stadsnav.ngsild.errors import NgsiLdError

    async def run() -> T:
        async with _opened(database) as registry:
            return await work(registry)

    try:
        return asyncio.run(run())
    except NgsiLdError as error:
        typer.echo(f"{error.title}: {error.detail}", err=True)
        raise typer.Exit(1) from None


def _print_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    Console(width=160).print(table)


@app.command()
def register(
    dev_eui: Annotated[str, typer.Option("--dev-eui", help="16 hexadecimal digits.")],
    model: Annotated[str, typer.Option(help="Device model (see `stadsnav devices profiles`).")],
    owner: Annotated[str, typer.Option(help="Owning organisation's identifier.")],
    lon: Annotated[float, typer.Option(help="Longitude, degrees.")],
    lat: Annotated[float, typer.Option(help="Latitude, degrees.")],
    state: Annotated[str, typer.Option(help="planned, installed or active.")] = "planned",
    purpose: Annotated[
        list[str] | None,
        typer.Option("--property", help="controlledProperty (repeat); default: the profile's."),
    ] = None,
    co_user: Annotated[
        list[str] | None, typer.Option("--co-user", help="Organisation also using it (repeat).")
    ] = None,
    target_id: Annotated[str | None, typer.Option(help="Entity it measures into.")] = None,
    target_type: Annotated[str | None, typer.Option(help="That entity's type.")] = None,
    bin_depth: Annotated[float | None, typer.Option(help="Metres to the bin's bottom.")] = None,
    sensor_height: Annotated[
        float | None, typer.Option(help="Metres above the water level's zero.")
    ] = None,
    interval: Annotated[int | None, typer.Option(help="Seconds between uplinks.")] = None,
    name: Annotated[str | None, typer.Option(help="A name people know it by.")] = None,
    district: Annotated[str | None, typer.Option(help="District it stands in.")] = None,
    installed_at: Annotated[str | None, typer.Option(help="ISO 8601 date-time.")] = None,
    override: Annotated[
        str | None, typer.Option(help="Why a duplicate of a device on site is needed.")
    ] = None,
    database: Database = None,
    tenant: Tenant = "",
    actor: Actor = None,
) -> None:
    """Register a device, checked against its model's profile and for duplicates."""
    from stadsnav.devices.views import device_json

    body: dict[str, Any] = {
        "devEUI": dev_eui,
        "model": model,
        "owner": owner,
        "location": [lon, lat],
        "state": state,
    }
    settings = {
        key: value
        for key, value in (
            ("binDepth", bin_depth),
            ("sensorHeight", sensor_height),
            ("reportingInterval", interval),
        )
        if value is not None
    }
    optional = {
        "controlledProperty": purpose or None,
        "coUsers": co_user or None,
        "settings": settings or None,
        "target": None
        if target_id is None and target_type is None
        else {"id": target_id, "type": target_type},
        "name": name,
        "district": district,
        "installedAt": installed_at,
        "override": None if override is None else {"reason": override},
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    device = _run(database, lambda registry: registry.register(tenant, body, actor))
    _print_json(device_json(device))


@app.command("list")
def list_devices(
    owner: Annotated[str | None, typer.Option(help="Only this owner's.")] = None,
    state: Annotated[str | None, typer.Option(help="Only devices in this state.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    purpose: Annotated[
        str | None, typer.Option("--property", help="Only devices measuring this.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many.")] = None,
    database: Database = None,
    tenant: Tenant = "",
    as_json: AsJson = False,
) -> None:
    """List registered devices."""
    from stadsnav.devices.registration import device_query
    from stadsnav.devices.views import device_json

    async def work(registry: Registry) -> list[DeviceRecord]:
        query = device_query(
            owner=owner, state=state, model=model, controlled_property=purpose, limit=limit
        )
        return await registry.find(tenant, query)

    found = _run(database, work)
    if as_json:
        _print_json([device_json(d) for d in found])
        return
    _table(
        f"{len(found)} devices",
        ["devEUI", "model", "owner", "state", "purpose", "target", "lon", "lat"],
        [
            [
                d.key,
                d.model,
                d.owner,
                d.state,
                ", ".join(d.controlled_property),
                d.target_id,
                *(d.location or (None, None)),
            ]
            for d in found
        ],
    )


@app.command()
def show(key: Key, database: Database = None, tenant: Tenant = "") -> None:
    """One device, with when it was last heard, its battery and its signal."""
    from stadsnav.devices.views import device_json

    found = _run(database, lambda registry: registry.get(tenant, key))
    _print_json(device_json(found.device, found.status))


@app.command()
def transition(
    key: Key,
    to: Annotated[str, typer.Argument(help="installed, active, maintenance or retired.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
    database: Database = None,
    tenant: Tenant = "",
    actor: Actor = None,
) -> None:
    """Move a device through its lifecycle (planned → installed → active ↔ maintenance,
    any → retired)."""
    from stadsnav.devices.views import device_json

    body = {"to": to, **({"reason": reason} if reason is not None else {})}
    device = _run(database, lambda registry: registry.transition(tenant, key, body, actor))
    _print_json(device_json(device))


@app.command()
def history(key: Key, database: Database = None, tenant: Tenant = "") -> None:
    """A device's audit trail: registration, transitions, changes, overrides."""
    from stadsnav.devices.views import event_json

    events = _run(database, lambda registry: registry.history(tenant, key))
    _print_json([event_json(e) for e in events])


@app.command()
def check(
    lon: Annotated[float, typer.Option(help="Longitude of the planned device.")],
    lat: Annotated[float, typer.Option(help="Latitude of the planned device.")],
    purpose: Annotated[
        list[str] | None, typer.Option("--property", help="controlledProperty (repeat).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Or the model whose default purpose to check.")
    ] = None,
    radius: Annotated[float | None, typer.Option(help="Metres [default: the setting].")] = None,
    target_id: Annotated[str | None, typer.Option(help="Asset it would measure.")] = None,
    target_type: Annotated[str | None, typer.Option(help="That asset's type.")] = None,
    database: Database = None,
    tenant: Tenant = "",
    as_json: AsJson = False,
) -> None:
    """Which devices on site already measure what a planned device would, nearby: co-use them
    instead of buying."""
    from stadsnav.devices.views import conflict_json

    body: dict[str, Any] = {"location": [lon, lat]}
    if purpose:
        body["controlledProperty"] = purpose
    if model is not None:
        body["model"] = model
    if radius is not None:
        body["radius"] = radius
    if target_id is not None or target_type is not None:
        body["target"] = {"id": target_id, "type": target_type}
    question, found = _run(database, lambda registry: registry.check(tenant, body))
    if as_json:
        _print_json([conflict_json(c) for c in found])
        return
    if not found:
        typer.echo(
            f"No device on site measures {', '.join(sorted(question.planned.properties))} "
            f"within {question.radius:g} m."
        )
        return
    _table(
        f"Already measured within {question.radius:g} m: co-use before buying",
        ["devEUI", "model", "owner", "state", "measures", "distance (m)"],
        [
            [
                c.device.key,
                c.device.model,
                c.device.owner,
                c.device.state,
                ", ".join(c.properties),
                c.distance,
            ]
            for c in found
        ],
    )


@app.command("import")
def import_fleet(
    path: Annotated[Path, typer.Argument(help="CSV, or GeoJSON if it ends in .geojson/.json.")],
    owner: Annotated[
        str | None, typer.Option(help="Owner of rows that name none (a simulator's fleet).")
    ] = None,
    state: Annotated[
        str | None, typer.Option(help="State of rows that name none [default: planned].")
    ] = None,
    database: Database = None,
    tenant: Tenant = "",
    actor: Actor = None,
    as_json: AsJson = False,
) -> None:
    """Import a fleet: every row checked, the good ones registered, a report of the rest.
    Exits with 1 if any row was rejected."""
    from rich.console import Console
    from rich.progress import Progress

    from stadsnav.devices import importing
    from stadsnav.ngsild.errors import NgsiLdError

    kind: Literal["csv", "geojson"] = (
        "geojson" if path.suffix.lower() in (".geojson", ".json") else "csv"
    )
    try:
        rows = importing.read_file(
            path.read_bytes(), kind, importing.Defaults(owner=owner, state=state)
        )
    except NgsiLdError as error:
        typer.echo(f"{error.title}: {error.detail}", err=True)
        raise typer.Exit(1) from None
    except OSError as error:
        typer.echo(f"Cannot read {path}: {error.strerror}", err=True)
        raise typer.Exit(1) from None
    # On stderr, so that the report on stdout stays clean for a pipe.
    console = Console(stderr=True)
    with Progress(console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task(f"Importing {path.name}", total=len(rows))

        def advance(count: int) -> None:
            progress.advance(task, count)

        report = _run(
            database,
            lambda registry: importing.import_rows(
                registry, tenant, rows, actor=actor, progress=advance
            ),
        )
    rejected = [r for r in report.results if r.outcome == "rejected"]
    if as_json:
        _print_json(report.as_json())
    else:
        typer.echo(
            f"{len(report.results)} rows: {report.count('registered')} registered, "
            f"{report.count('already-registered')} already registered, {len(rejected)} rejected"
        )
        if rejected:
            _table(
                "Rejected rows",
                ["row", "devEUI", "reason"],
                [[r.row, r.dev_eui, r.reason] for r in rejected],
            )
    if rejected:
        raise typer.Exit(1)


@app.command()
def profiles(
    model: Annotated[str | None, typer.Argument(help="One model's profile, in full.")] = None,
    as_json: AsJson = False,
) -> None:
    """The device profiles: what each model must provide before it may be registered."""
    from stadsnav.devices.profiles import PROFILES
    from stadsnav.devices.views import profile_json

    if model is not None:
        if model not in PROFILES:
            typer.echo(f"No profile for {model}; known: {', '.join(sorted(PROFILES))}", err=True)
            raise typer.Exit(1)
        _print_json(profile_json(PROFILES[model]))
        return
    if as_json:
        _print_json([profile_json(p) for p in PROFILES.values()])
        return
    _table(
        "Device profiles",
        ["model", "purposes (optional in brackets)", "feeds", "interval (s)", "battery", "network"],
        [
            [
                p.model,
                _purposes(p),
                ", ".join(sorted(t or "its Device only" for t in p.targets)),
                p.reporting.expected,
                p.battery,
                p.security.transport,
            ]
            for p in PROFILES.values()
        ],
    )


def _purposes(profile: Profile) -> str:
    names = [p.property for p in profile.purposes if p.primary]
    optional = [p.property for p in profile.purposes if not p.primary]
    return ", ".join(names) + (f" ({', '.join(optional)})" if optional else "")


@app.command("mqtt-sync")
def mqtt_sync(database: Database = None) -> None:
    """Write Mosquitto's password and ACL files from the registry; reload it if they changed."""
    from stadsnav.devices.credentials import sync_from_settings

    try:
        report = asyncio.run(sync_from_settings(_settings(database)))
    except ValueError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(2) from None
    for key, why in report.skipped.items():
        typer.echo(f"No account for {key}: {why}", err=True)
    done = "reloaded" if report.reloaded else "written" if report.changed else "unchanged"
    typer.echo(f"{len(report.accounts)} MQTT accounts; files {done}")


@app.command("rotate-secret")
def rotate_secret(key: Key, database: Database = None, tenant: Tenant = "") -> None:
    """Give a device a new MQTT secret and print it: it is shown this once."""
    from stadsnav.devices import credentials
    from stadsnav.ngsild.errors import NgsiLdError
    from stadsnav.store.opening import open_store

    async def run() -> str:
        store = open_store(_settings(database))
        await store.open()
        try:
            return await credentials.rotate_secret(store, tenant, key.lower())
        finally:
            await store.close()

    try:
        typer.echo(asyncio.run(run()))
    except NgsiLdError as error:
        typer.echo(f"{error.title}: {error.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo("Run `stadsnav devices mqtt-sync` for Mosquitto to take it.", err=True)
