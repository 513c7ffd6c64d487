"""The command line: `stadsnav serve`, `stadsnav get`, and friends."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from stadsnav.devices.commands import app as devices_app
from stadsnav.settings import Settings

app = typer.Typer(
    help="stadsnav: the city's common data platform (ETSI NGSI-LD context broker).",
    no_args_is_help=True,
    add_completion=False,
)

HostOption = Annotated[str | None, typer.Option(help="Address to listen on [env STADSNAV_HOST].")]
PortOption = Annotated[int | None, typer.Option(help="Port to listen on [env STADSNAV_PORT].")]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        help="sqlite:///path/file.db (default var/stadsnav.db) or postgresql://… "
        "[env STADSNAV_DATABASE]."
    ),
]
WorkersOption = Annotated[
    int | None, typer.Option(help="API worker processes [env STADSNAV_WORKERS].")
]
MqttOption = Annotated[
    str | None,
    typer.Option(
        "--mqtt",
        help="Take device data from this MQTT broker too, mqtt://[user:password@]host:port "
        "[env STADSNAV_MQTT_URL].",
    ),
]


def build_settings(**flags: Any) -> Settings:
    """Flags win over STADSNAV_* environment variables, which win over defaults."""
    return Settings(**{k: v for k, v in flags.items() if v is not None})


@app.command()
def serve(
    host: HostOption = None,
    port: PortOption = None,
    database: DatabaseOption = None,
    workers: WorkersOption = None,
    mqtt: MqttOption = None,
    simulate: Annotated[
        int | None,
        typer.Option(
            help="Also run the simulated Stockholm fleet of N devices against this server "
            "[env STADSNAV_SIMULATE_DEVICES]."
        ),
    ] = None,
) -> None:
    """Run the NGSI-LD API server (creates and migrates the database on first start)."""
    import uvicorn

    settings = build_settings(
        host=host,
        port=port,
        database=database,
        workers=workers,
        mqtt_url=mqtt,
        simulate_devices=simulate,
    )
    if settings.simulate_devices and settings.workers > 1:
        # Every worker would run its own copy of the fleet.
        raise typer.BadParameter("--simulate runs with one worker only")
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    if settings.workers > 1:
        # Worker processes rebuild the settings from the environment.
        for name, value in settings.model_dump().items():
            if value is not None:
                os.environ[f"STADSNAV_{name.upper()}"] = str(value)
        uvicorn.run(
            "stadsnav.api.app:create_app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
        )
        return
    from stadsnav.api.app import create_app

    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level
    )


@app.command()
def get(
    path: Annotated[str, typer.Argument(help="Path and query, e.g. /ngsi-ld/v1/types")],
    database: DatabaseOption = None,
    tenant: Annotated[str | None, typer.Option(help="NGSILD-Tenant to read.")] = None,
) -> None:
    """Answer one GET request in process, without starting a server, and print the body."""
    import httpx

    from stadsnav.api.app import create_app

    settings = build_settings(database=database)
    application = create_app(settings)

    async def run() -> None:
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://stadsnav") as client:
                headers = {"NGSILD-Tenant": tenant} if tenant else {}
                response = await client.get(path, headers=headers)
                typer.echo(response.text)
                if response.status_code >= 400:
                    raise typer.Exit(1)

    asyncio.run(run())


@app.command()
def migrate(database: DatabaseOption = None) -> None:
    """Create the database if needed and apply pending schema migrations, then exit."""
    from stadsnav.store.opening import open_store

    settings = build_settings(database=database)

    async def run() -> None:
        store = open_store(settings)
        await store.open()
        await store.close()

    asyncio.run(run())
    typer.echo(f"Database {settings.database} is up to date")


@app.command()
def simulate(
    url: Annotated[
        str | None,
        typer.Option(help="Send uplinks over HTTP to the platform at this base URL [default]."),
    ] = None,
    mqtt: Annotated[
        str | None,
        typer.Option(help="Publish uplinks to this broker instead: mqtt://[user:pw@]host:port."),
    ] = None,
    devices: Annotated[int, typer.Option(min=0, help="Fleet size.")] = 3000,
    speed: Annotated[
        float,
        typer.Option(
            help="Simulated seconds per real second: 60 is an hour a minute, inf as fast as "
            "the receiver takes them."
        ),
    ] = 1.0,
    duration: Annotated[
        float | None,
        typer.Option(
            help="Simulated seconds to run (at --speed 60, 3600 takes a minute); until Ctrl-C "
            "if left out."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="The fleet, its noise and faults follow from it.")] = 0,
    network: Annotated[
        Literal["chirpstack", "tts"],
        typer.Option(help="Envelopes of ChirpStack v4 or The Things Stack v3."),
    ] = "chirpstack",
    faults: Annotated[
        str,
        typer.Option(
            help="none, or rates: silent (share of devices), garbage and duplicate (shares of "
            "uplinks)."
        ),
    ] = "silent=0.01,garbage=0.002,duplicate=0.005",
    rate_limit: Annotated[
        float | None, typer.Option(help="At most this many uplinks per real second.")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            help="Simulated start, ISO 8601, UTC unless it has an offset; now if left out."
        ),
    ] = None,
    export_fleet: Annotated[
        Path | None,
        typer.Option(
            help="Write the fleet for the registry's bulk import (CSV, or GeoJSON if the name "
            "ends in .geojson) and exit."
        ),
    ] = None,
) -> None:
    """Simulate Stockholm: a fleet of LoRaWAN devices sending uplinks to the platform."""
    from datetime import UTC, datetime

    import aiomqtt

    from stadsnav.sim import fleet as sim_fleet
    from stadsnav.sim.faults import Faults
    from stadsnav.sim.runner import Counters, Target, run

    city = sim_fleet.build_fleet(devices, seed)
    if export_fleet is not None:
        sim_fleet.export(city, export_fleet)
        typer.echo(f"Wrote {len(city)} devices to {export_fleet}")
        return
    if url is not None and mqtt is not None:
        raise typer.BadParameter("give --url or --mqtt, not both")
    if speed <= 0 or (rate_limit is not None and rate_limit <= 0):
        raise typer.BadParameter("--speed and --rate-limit must be positive")
    try:
        target = Target(mqtt or url or "http://127.0.0.1:8000")
        fault_rates = Faults.parse(faults)
        begin = None if start is None else datetime.fromisoformat(start)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if begin is not None and begin.tzinfo is None:
        begin = begin.replace(tzinfo=UTC)
    counters = Counters()

    def report() -> None:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(counters.by_status.items()))
        typer.echo(
            f"simulated until {counters.simulated_until or '-'}: {counters.sent} sent, "
            f"{counters.failed} failed ({answers or 'no answers yet'})",
            err=True,
        )

    async def simulate_and_report() -> None:
        simulation = asyncio.create_task(
            run(
                target,
                city,
                speed=speed,
                duration=duration,
                rate_limit=rate_limit,
                faults=fault_rates,
                seed=seed,
                network=network,
                start=begin,
                counters=counters,
            )
        )
        while not simulation.done():
            await asyncio.wait({simulation}, timeout=10)
            report()
        simulation.result()

    typer.echo(f"Simulating {len(city)} devices, {network} uplinks to {target.url}", err=True)
    try:
        asyncio.run(simulate_and_report())
    except aiomqtt.MqttError as error:
        typer.echo(f"The MQTT broker at {target.url} refused the simulator: {error}", err=True)
        raise typer.Exit(1) from None
    if counters.failed and not counters.sent:
        raise typer.Exit(1)


app.add_typer(devices_app, name="devices")


def main() -> None:
    app()
