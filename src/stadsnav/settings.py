"""The one settings object. Built by the CLI at start-up (flags > STADSNAV_* environment >
defaults) and passed down; nothing reads the environment at import time."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE = "sqlite:///var/stadsnav.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STADSNAV_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(8000, description="Port the HTTP server listens on.")
    database: str = Field(
        DEFAULT_DATABASE,
        description="Where data lives: sqlite:///path/to/file.db or postgresql://user@host/db.",
    )
    workers: int = Field(1, ge=1, description="Number of API worker processes.")
    sqlite_synchronous: str = Field(
        "FULL",
        pattern="^(FULL|NORMAL|EXTRA)$",
        description="SQLite synchronous mode; FULL makes every acknowledged write durable.",
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024, description="Largest request body accepted (413 beyond)."
    )
    query_max_limit: int = Field(
        1000, description="Largest `limit` a query may ask for (TooManyResults beyond)."
    )
    query_default_limit: int = Field(20, description="`limit` when a query gives none.")
    batch_max_entities: int = Field(
        10_000, description="Most entities one batch operation may carry."
    )
    context_cache_entries: int = Field(
        256, description="How many remote @context documents are kept in memory."
    )
    context_cache_seconds: int = Field(
        3600, description="How long a fetched remote @context is reused before refetching."
    )
    context_max_bytes: int = Field(
        1024 * 1024, description="Largest remote @context document fetched."
    )
    context_fetch_timeout: float = Field(
        5.0, description="Seconds to wait for a remote @context before LdContextNotAvailable."
    )
    context_allow_private_networks: bool = Field(
        False,
        description="Allow fetching @context documents from loopback and private addresses "
        "(off by default, so a request cannot make the server probe the internal network).",
    )
    expiry_interval: float = Field(
        5.0, description="Seconds between sweeps that delete expired transient entities."
    )
    history_api_writes: Literal["all", "observed", "off"] = Field(
        "observed",
        description="Which attribute instances written through the NGSI-LD API are kept in "
        "history (the temporal API): `observed`, those with an observedAt (measurements, as "
        "with device data); `all`, every one (a batch write then costs about twice as much); "
        "`off`, none (device data and the temporal write operations still are).",
    )
    ingest_batch_max: int = Field(
        500, ge=1, description="Most device messages stored together in one transaction."
    )
    temporal_max_instances: int = Field(
        1000,
        ge=1,
        description="Most instances per attribute a temporal request returns; beyond, the "
        "answer is 206 with a Content-Range of the time range returned whole.",
    )
    history_retention: dict[str, str] = Field(
        default_factory=dict,
        description="How long history is kept per entity type, as ISO 8601 durations, e.g. "
        '{"WasteContainer": "P2Y", "*": "P5Y"} ("*": every other type; a short name is '
        "expanded with the core @context, else give the type's IRI); empty keeps all.",
    )
    history_retention_interval: float = Field(
        3600.0, description="Seconds between sweeps that delete history past its retention."
    )
    mqtt_url: str | None = Field(
        None,
        description="MQTT broker to take device data from, mqtt://user:password@host:port; "
        "unset, device data comes over HTTP only.",
    )
    mqtt_client_id: str = Field(
        "stadsnav-ingest",
        description="MQTT client id; its session (and what the broker queues for it while "
        "stadsnav is down) outlives restarts. Each worker adds its number.",
    )
    mqtt_share_group: str = Field(
        "stadsnav",
        description="MQTT v5 shared-subscription group: the workers split the device traffic.",
    )
    mqtt_network_server_username: str | None = Field(
        None,
        description="MQTT user of the LoRaWAN network server (ChirpStack) in the generated "
        "Mosquitto password and ACL files: it may publish and subscribe under application/# "
        "and v3/#. Unset, no network server account is written.",
    )
    mqtt_network_server_password: str | None = Field(
        None, description="Password of mqtt_network_server_username (only its hash is written)."
    )
    mqtt_password_file: str | None = Field(
        None,
        description="Mosquitto password_file that `sync_mosquitto` writes from the device "
        "registry (devices' secret hashes, the ingestion and network-server users).",
    )
    mqtt_acl_file: str | None = Field(
        None,
        description="Mosquitto acl_file that `sync_mosquitto` writes: each device may publish "
        "on its own topic only, the ingestion user may read what it subscribes to.",
    )
    mqtt_broker_pid_file: str | None = Field(
        None,
        description="Mosquitto's pid file: after changing its files, `sync_mosquitto` sends "
        "that process SIGHUP so that it reads them again.",
    )
    mqtt_reload_command: str | None = Field(
        None,
        description="Command that makes Mosquitto read its files again, used instead of "
        "mqtt_broker_pid_file (e.g. `docker kill --signal HUP mosquitto`).",
    )
    health_interval: float = Field(
        60.0, gt=0, description="Seconds between device health sweeps (alarms as Alert entities)."
    )
    health_silence_factor: float = Field(
        3.0,
        ge=1,
        description="A device is silent once it has sent nothing for this many times its "
        "reporting interval (its reportingInterval setting, else its model profile's).",
    )
    health_battery_threshold: float = Field(
        0.2,
        ge=0,
        le=1,
        description="A batteryLevel below this (0..1) raises a low-battery alarm.",
    )
    devices_couse_radius: float = Field(
        50.0,
        gt=0,
        le=10_000,
        description="Metres within which a device on site that measures the same property makes "
        "a new registration a duplicate (refused without an override and its reason).",
    )
    mqtt_sync_interval: float = Field(
        10.0,
        gt=0,
        description="Seconds between checks that rewrite Mosquitto's password and ACL files "
        "when the registry changed (only with mqtt_password_file and mqtt_acl_file set).",
    )
    simulate_devices: int = Field(
        0,
        ge=0,
        description="Run the simulated Stockholm fleet of this many devices against this server "
        "(`make run` uses 300); 0 runs no simulator.",
    )
    notify_poll_interval: float = Field(
        0.5,
        gt=0,
        description="Seconds between looks at the notification outbox (a worker is also woken "
        "at once by the changes it makes itself).",
    )
    notify_refresh_interval: float = Field(
        1.0,
        gt=0,
        description="Seconds between reloads of the subscriptions from the database, so that "
        "subscriptions made through another worker take effect.",
    )
    notify_timeout: float = Field(
        10.0, gt=0, description="Seconds a receiver has to take a notification (HTTP or MQTT)."
    )
    notify_retry_base: float = Field(
        1.0,
        gt=0,
        description="Seconds before retrying a failed notification; doubled per further "
        "consecutive failure, up to notify_retry_max.",
    )
    notify_retry_max: float = Field(
        60.0, gt=0, description="Longest wait between retries of a failing receiver."
    )
    notify_lease: float = Field(
        60.0,
        gt=0,
        description="Seconds a worker holds a subscription while delivering to it; a worker "
        "that dies mid-delivery leaves it to another after this long (at-least-once).",
    )
    notify_batch_max: int = Field(
        100, ge=1, description="Most entities (queued changes) in one notification."
    )
    notify_concurrency: int = Field(
        100, ge=1, description="Subscriptions a worker delivers to at once."
    )
    log_level: str = Field("info", description="Logging level: debug, info, warning, error.")
