"""The command line: `stadsnav serve`, `stadsnav get`, and friends."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Annotated, Any

import typer

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
) -> None:
    """Run the NGSI-LD API server (creates and migrates the database on first start)."""
    import uvicorn

    settings = build_settings(
        host=host, port=port, database=database, workers=workers, mqtt_url=mqtt
    )
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


def main() -> None:
    app()
