"""Per-device MQTT credentials, and Mosquitto's password and ACL files made from the registry.

A device that speaks MQTT itself (one not behind a LoRaWAN network server) connects to Mosquitto
with its key as the username and a secret issued here. The secret is shown once, when issued;
the registry keeps only its hash, in the form Mosquitto's ``password_file`` reads, so the file is
the registry's hashes line by line and stadsnav never holds a device's secret after issuing it.

The topic layout (docs/devices-health-and-credentials.md):

    stadsnav/devices/{key}/up     what the device with this key reports, and nothing else

and what each user of the broker may do, as the generated ACL file says it:

- a device whose data ingestion takes (installed, active, maintenance) publishes on its own
  ``up`` topic and nowhere else: Mosquitto drops its other publications (and with
  deploy/mosquitto/stadsnav.conf closes its connection too), and delivers it nothing;
- stadsnav's ingestion user (the user of ``mqtt_url``) reads the devices' topics and the network
  servers' layouts, shared subscriptions included, and publishes nothing;
- the network server's user, when configured, publishes and subscribes under the ChirpStack and
  The Things Stack layouts;
- nobody else: the files are meant for a listener with ``allow_anonymous false``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from stadsnav.broker import now
from stadsnav.ingest import mqtt
from stadsnav.ingest.pipeline import RECEIVING_STATES
from stadsnav.ngsild.errors import BadRequestData, ResourceNotFound
from stadsnav.settings import Settings
from stadsnav.store.base import DEFAULT_TENANT, DeviceEvent, DeviceRecord, Store
from stadsnav.store.opening import open_store

log = logging.getLogger("stadsnav.devices.credentials")

# mosquitto_passwd's own choices (Mosquitto 2.0): PBKDF2-SHA512, 101 rounds, a 12-byte salt.
# So few rounds suffice for secrets of 192 random bits, which no guessing reaches, and keep each
# CONNECT cheap for the broker.
ITERATIONS = 101
_SALT_BYTES = 12
_DIGEST_BYTES = 64
_SECRET_BYTES = 24

DEVICE_TOPICS = "stadsnav/devices/+/up"
NETWORK_SERVER_TOPICS = ("application/#", "v3/#")
# A key becomes a username (":" ends it in the password file) and a topic level ("/", "+" and
# "#" are topic syntax), on one line of each file.
_MQTT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_HEADER = (
    "# Written by stadsnav from its device registry (stadsnav.devices.credentials); "
    "changes made here are overwritten.\n"
)

Access = Literal["read", "write", "readwrite"]


def device_topic(key: str) -> str:
    return f"stadsnav/devices/{key}/up"


def new_secret() -> str:
    return secrets.token_urlsafe(_SECRET_BYTES)


def hash_secret(secret: str) -> str:
    """The secret's hash as a Mosquitto password file holds it after ``username:``."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, ITERATIONS, _DIGEST_BYTES)
    return f"$7${ITERATIONS}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, hashed: str) -> bool:
    parts = hashed.split("$")
    if len(parts) != 5 or parts[:2] != ["", "7"] or not parts[2].isdigit() or parts[2] == "0":
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        digest = base64.b64decode(parts[4], validate=True)
    except binascii.Error:
        return False
    if not salt or len(digest) != _DIGEST_BYTES:
        return False
    computed = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, int(parts[2]), _DIGEST_BYTES)
    return hmac.compare_digest(computed, digest)


async def rotate_secret(store: Store, tenant: str, key: str, actor: str | None = None) -> str:
    """Give a device a new secret and return it: the only time anyone sees it. Works for the
    first secret too, and goes into the device's audit trail (without the hash). The old secret
    stops working when Mosquitto's files are next synced."""
    if not _MQTT_NAME.fullmatch(key):
        raise BadRequestData(f"Device key {key!r:.60} cannot be an MQTT username and topic level")
    secret = new_secret()
    hashed = hash_secret(secret)
    stamp = now()

    def apply(device: DeviceRecord) -> tuple[DeviceRecord, list[DeviceEvent]]:
        what = "issued" if device.secret_hash is None else "replaced"
        event = DeviceEvent(
            key, stamp, "changed", actor or device.owner, detail={"mqttSecret": what}
        )
        return replace(device, secret_hash=hashed, modified_at=stamp), [event]

    if await store.change_device(tenant, key, apply) is None:
        raise ResourceNotFound(f"No device {key} is registered")
    return secret


# -- Mosquitto's files -------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceUser:
    """A user of the broker that is not a device, with its password as configured."""

    username: str
    password: str
    topics: tuple[tuple[Access, str], ...]


@dataclass
class SyncReport:
    accounts: list[str] = field(default_factory=list)
    # Devices with a secret that got no account, and why.
    skipped: dict[str, str] = field(default_factory=dict)
    changed: bool = False
    reloaded: bool = False


async def sync_mosquitto(
    store: Store,
    password_file: Path,
    acl_file: Path,
    *,
    services: Sequence[ServiceUser],
    tenant: str = DEFAULT_TENANT,
    reload: Callable[[], bool] | None = None,
) -> SyncReport:
    """Write Mosquitto's password and ACL files from the registry and the service users, then
    have it read them again (`reload`) if either changed. Each file is replaced in one step, so
    the broker never reads half of one."""
    report = SyncReport()
    # A service password's hash is kept while it still matches: unchanged settings and registry
    # then leave both files as they are, and the broker is not reloaded for nothing.
    previous = _hashes(password_file)
    passwords = [_HEADER]
    rules = [_HEADER]
    for user in services:
        hashed = previous.get(user.username, "")
        if not verify_secret(user.password, hashed):
            hashed = hash_secret(user.password)
        passwords.append(f"{user.username}:{hashed}\n")
        rules.append(_rules(user.username, user.topics))
        report.accounts.append(user.username)
    taken = {user.username for user in services}
    for device in await store.devices(tenant):
        if device.secret_hash is None:
            continue
        why = _unfit(device, taken)
        if why is not None:
            report.skipped[device.key] = why
            continue
        passwords.append(f"{device.key}:{device.secret_hash}\n")
        rules.append(_rules(device.key, (("write", device_topic(device.key)),)))
        report.accounts.append(device.key)
    wrote_acl = _replace(acl_file, "".join(rules))
    wrote_passwords = _replace(password_file, "".join(passwords))
    report.changed = wrote_acl or wrote_passwords
    if report.changed and reload is not None:
        report.reloaded = reload()
    return report


def reload_mosquitto(*, pid_file: Path | None = None, command: str | None = None) -> bool:
    """Make Mosquitto read its password and ACL files again: by `command` if given, else by
    SIGHUP to the process in `pid_file`; Mosquitto then also disconnects the clients whose
    secret no longer matches. False when no Mosquitto runs (no pid file, or its process is
    gone): it reads the files when it starts."""
    if command:
        subprocess.run(shlex.split(command), check=True, timeout=30)
        return True
    if pid_file is None:
        return False
    try:
        os.kill(int(pid_file.read_text().strip()), signal.SIGHUP)
    except (FileNotFoundError, ProcessLookupError):
        return False
    return True


@dataclass(frozen=True)
class MosquittoFiles:
    """Where and how the broker's files are kept, as the settings say."""

    password_file: Path
    acl_file: Path
    services: tuple[ServiceUser, ...]
    reload: Callable[[], bool] | None

    async def sync(self, store: Store) -> SyncReport:
        return await sync_mosquitto(
            store,
            self.password_file,
            self.acl_file,
            services=self.services,
            reload=self.reload,
        )


def mosquitto_files(settings: Settings) -> MosquittoFiles:
    """The broker's files from the settings; ValueError says what is missing."""
    if not settings.mqtt_password_file or not settings.mqtt_acl_file:
        raise ValueError("Set mqtt_password_file and mqtt_acl_file: where Mosquitto reads them")
    if not settings.mqtt_url:
        raise ValueError("Set mqtt_url, with the user stadsnav takes device data as")
    address = mqtt.BrokerAddress.parse(settings.mqtt_url)
    if not address.username or not address.password:
        # Without it, anonymous access being off, stadsnav would lock itself out.
        raise ValueError("mqtt_url must name the ingestion user: mqtt://user:password@host")
    services = [
        ServiceUser(
            address.username,
            address.password,
            tuple(("read", topic) for topic in (DEVICE_TOPICS, *mqtt.TOPICS)),
        )
    ]
    if settings.mqtt_network_server_username:
        if not settings.mqtt_network_server_password:
            raise ValueError("mqtt_network_server_username needs mqtt_network_server_password")
        services.append(
            ServiceUser(
                settings.mqtt_network_server_username,
                settings.mqtt_network_server_password,
                tuple(("readwrite", topic) for topic in NETWORK_SERVER_TOPICS),
            )
        )
    reload = None
    if settings.mqtt_broker_pid_file or settings.mqtt_reload_command:
        pid_file = settings.mqtt_broker_pid_file
        reload = functools.partial(
            reload_mosquitto,
            pid_file=Path(pid_file) if pid_file else None,
            command=settings.mqtt_reload_command,
        )
    return MosquittoFiles(
        Path(settings.mqtt_password_file), Path(settings.mqtt_acl_file), tuple(services), reload
    )


async def sync_from_settings(settings: Settings) -> SyncReport:
    """`sync_mosquitto` as the command line runs it: files, users and reload from the settings."""
    files = mosquitto_files(settings)
    store = open_store(settings)
    await store.open()
    try:
        return await files.sync(store)
    finally:
        await store.close()


async def keep_in_sync(files: MosquittoFiles, store: Store, interval: float) -> None:
    """Rewrite the broker's files whenever the registry changed, from whichever worker or
    command changed it: a new secret or a retired device takes effect within `interval`
    seconds. A round that finds nothing changed writes nothing and reloads nothing."""
    while True:
        try:
            report = await files.sync(store)
        except Exception:
            log.exception("Writing Mosquitto's password and ACL files failed; retrying")
        else:
            if report.changed:
                log.info("Mosquitto's files now hold %d accounts", len(report.accounts))
        await asyncio.sleep(interval)


def _unfit(device: DeviceRecord, taken: set[str]) -> str | None:
    if device.state not in RECEIVING_STATES:
        return f"state {device.state}"
    if not _MQTT_NAME.fullmatch(device.key):
        return "key is not a valid MQTT username and topic level"
    if device.key in taken:
        return "key is the username of a service user"
    return None


def _rules(username: str, topics: Sequence[tuple[Access, str]]) -> str:
    lines = [f"\nuser {username}\n", *(f"topic {access} {topic}\n" for access, topic in topics)]
    return "".join(lines)


def _hashes(password_file: Path) -> dict[str, str]:
    try:
        text = password_file.read_text()
    except FileNotFoundError:
        return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        username, colon, hashed = line.partition(":")
        if colon and not line.startswith("#"):
            found[username] = hashed
    return found


def _replace(path: Path, text: str) -> bool:
    """Put `text` in `path` unless it is there already. The new file takes the old one's mode
    and, where allowed, its group: whoever deployed Mosquitto chose them so that it can read."""
    try:
        if path.read_text() == text:
            return False
        old = path.stat()
        mode, group = old.st_mode & 0o777, old.st_gid
    except FileNotFoundError:
        mode, group = 0o640, -1
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        with contextlib.suppress(PermissionError):
            os.chown(temporary, -1, group)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return True


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
