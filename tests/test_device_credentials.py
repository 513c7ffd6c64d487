"""Device credentials against a real Mosquitto: the secrets stadsnav issues and the password and
ACL files it generates are what the broker enforces.

Each broker test starts a Mosquitto of its own with deploy/mosquitto/stadsnav.conf, the files
`sync_mosquitto` wrote and no anonymous access. Under CI=true a missing mosquitto binary fails
these tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from stadsnav.devices.credentials import (
    DEVICE_TOPICS,
    ServiceUser,
    SyncReport,
    device_topic,
    hash_secret,
    rotate_secret,
    sync_from_settings,
    sync_mosquitto,
    verify_secret,
)
from stadsnav.ngsild.errors import BadRequestData, ResourceNotFound
from stadsnav.settings import Settings
from stadsnav.store.base import DeviceRecord, Store
from stadsnav.store.opening import open_store
from tests import mosquitto as own_mosquitto

INGEST = ServiceUser("stadsnav-ingest", "ingest-secret", (("read", DEVICE_TOPICS),))
FIRST, SECOND = "a84041000181c4d1", "a84041000181c4d2"


def device(key: str, state: str = "active", secret_hash: str | None = None) -> DeviceRecord:
    return DeviceRecord(
        key=key,
        device_id=f"urn:ngsi-ld:Device:{key}",
        model="sensative-strips",
        owner="stadsbyggnadskontoret",
        state=state,
        secret_hash=secret_hash,
    )


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    opened = open_store(settings)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


# -- secrets -----------------------------------------------------------------------------------


def test_a_hash_is_what_mosquitto_passwd_writes_and_checks_the_secret() -> None:
    hashed = hash_secret("s3cret")
    assert re.fullmatch(r"\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==", hashed)
    assert verify_secret("s3cret", hashed)
    assert not verify_secret("s3cret!", hashed)
    # A fresh salt each time: equal secrets do not show as equal hashes.
    assert hash_secret("s3cret") != hashed
    for broken in ("", "$7$101$", "$6$101$c2FsdA==$aGFzaA==", "$7$0$" + hashed[7:], hashed[:-4]):
        assert not verify_secret("s3cret", broken)


def test_a_line_from_mosquitto_passwd_verifies(tmp_path: Path) -> None:
    passwd = own_mosquitto.binary("mosquitto_passwd")
    subprocess.run([passwd, "-c", "-b", str(tmp_path / "pw"), FIRST, "from-mosquitto"], check=True)
    username, hashed = (tmp_path / "pw").read_text().strip().split(":", 1)
    assert username == FIRST
    assert verify_secret("from-mosquitto", hashed)
    assert not verify_secret("something-else", hashed)


async def test_rotating_gives_a_new_secret_and_keeps_only_its_hash(store: Store) -> None:
    await store.put_device("", device(FIRST))
    first = await rotate_secret(store, "", FIRST)
    second = await rotate_secret(store, "", FIRST)
    assert len(first) >= 32
    assert first != second
    [record] = await store.devices("", [FIRST])
    assert record.secret_hash is not None
    assert verify_secret(second, record.secret_hash)
    assert not verify_secret(first, record.secret_hash)
    trail = [e.detail for e in await store.device_events("", FIRST) if e.kind == "changed"]
    assert trail == [{"mqttSecret": "issued"}, {"mqttSecret": "replaced"}]
    with pytest.raises(ResourceNotFound):
        await rotate_secret(store, "", "0000000000000000")
    await store.put_device("", device("bad/key"))
    with pytest.raises(BadRequestData):
        await rotate_secret(store, "", "bad/key")


# -- the files ---------------------------------------------------------------------------------


async def test_the_files_give_accounts_to_devices_on_the_network_only(
    store: Store, tmp_path: Path
) -> None:
    hashed = hash_secret("x")
    for record in (
        device(FIRST, secret_hash=hashed),
        device(SECOND, "maintenance", hashed),
        device("a84041000181c4d3", "retired", hashed),
        device("a84041000181c4d4"),  # a LoRaWAN device: no secret, no account
        device("stadsnav-ingest", secret_hash=hashed),
    ):
        await store.put_device("", record)
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    passwords, acl = folder / "passwords", folder / "acl"
    reloads: list[str] = []

    def reload() -> bool:
        reloads.append("reloaded")
        return True

    report = await sync_mosquitto(store, passwords, acl, services=[INGEST], reload=reload)
    assert report.accounts == ["stadsnav-ingest", FIRST, SECOND]
    assert report.skipped == {
        "a84041000181c4d3": "state retired",
        "stadsnav-ingest": "key is the username of a service user",
    }
    assert report.reloaded
    assert reloads == ["reloaded"]
    lines = [line for line in passwords.read_text().splitlines() if not line.startswith("#")]
    assert [line.split(":", 1)[0] for line in lines] == ["stadsnav-ingest", FIRST, SECOND]
    assert lines[1] == f"{FIRST}:{hashed}"
    assert f"user {FIRST}\ntopic write stadsnav/devices/{FIRST}/up\n" in acl.read_text()
    assert "user stadsnav-ingest\ntopic read stadsnav/devices/+/up\n" in acl.read_text()
    assert oct(passwords.stat().st_mode & 0o777) == "0o640"

    # Nothing changed: the files stay as they are (the service user's hash too), no reload.
    passwords.chmod(0o600)
    before = passwords.read_text(), acl.read_text()
    again = await sync_mosquitto(store, passwords, acl, services=[INGEST], reload=reload)
    assert not again.changed
    assert reloads == ["reloaded"]
    assert (passwords.read_text(), acl.read_text()) == before

    # A change replaces the file with the mode it had.
    await store.put_device("", device(SECOND, "retired", hashed))
    assert (await sync_mosquitto(store, passwords, acl, services=[INGEST])).changed
    assert SECOND not in passwords.read_text()
    assert oct(passwords.stat().st_mode & 0o777) == "0o600"
    # No temporary file is left behind.
    assert sorted(os.listdir(folder)) == ["acl", "passwords"]


async def test_settings_name_the_files_and_the_ingestion_user(
    settings: Settings, tmp_path: Path
) -> None:
    files = {"mqtt_password_file": str(tmp_path / "pw"), "mqtt_acl_file": str(tmp_path / "acl")}
    with pytest.raises(ValueError, match="mqtt_password_file"):
        await sync_from_settings(settings)
    with pytest.raises(ValueError, match="ingestion user"):
        await sync_from_settings(
            settings.model_copy(update={**files, "mqtt_url": "mqtt://127.0.0.1:1883"})
        )
    report = await sync_from_settings(
        settings.model_copy(
            update={
                **files,
                "mqtt_url": "mqtt://ingest:pw@127.0.0.1:1883",
                "mqtt_network_server_username": "chirpstack",
                "mqtt_network_server_password": "ns-secret",
            }
        )
    )
    assert report.accounts == ["ingest", "chirpstack"]
    acl = (tmp_path / "acl").read_text()
    assert "user ingest\ntopic read stadsnav/devices/+/up\n" in acl
    assert "topic read application/+/device/+/event/+\n" in acl
    assert "user chirpstack\ntopic readwrite application/#\ntopic readwrite v3/#\n" in acl


# -- against Mosquitto -------------------------------------------------------------------------


@dataclass
class Mosquitto:
    """A Mosquitto of the test's own: the deploy configuration, the generated files, no
    anonymous access. It starts once the files exist (it refuses to start without them)."""

    folder: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def password_file(self) -> Path:
        return self.folder / "passwords"

    @property
    def acl_file(self) -> Path:
        return self.folder / "acl"

    @property
    def pid_file(self) -> Path:
        return self.folder / "mosquitto.pid"

    def start(self) -> None:
        def conf(port: int) -> str:
            text = own_mosquitto.deploy_conf(port).replace("persistence true", "persistence false")
            # Started as root, Mosquitto would read the files as its own user, which cannot
            # enter the test's private folder; started as anyone else, `user` does nothing.
            return text + (
                f"\nallow_anonymous false\npassword_file {self.password_file}\n"
                f"acl_file {self.acl_file}\nuser root\n"
            )

        self.port, self.process = own_mosquitto.start(self.folder, conf)
        # Mosquitto writes a pid file only as a daemon; this one runs in the foreground.
        self.pid_file.write_text(f"{self.process.pid}\n")

    def client(self, username: str | None, password: str | None) -> aiomqtt.Client:
        return aiomqtt.Client(
            "127.0.0.1",
            self.port,
            username=username,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V5,
        )

    async def sync(self, settings: Settings) -> SyncReport:
        """Regenerate the files as the command line does, reloading by the pid file."""
        return await sync_from_settings(
            settings.model_copy(
                update={
                    "mqtt_url": f"mqtt://{INGEST.username}:{INGEST.password}@127.0.0.1",
                    "mqtt_password_file": str(self.password_file),
                    "mqtt_acl_file": str(self.acl_file),
                    "mqtt_broker_pid_file": str(self.pid_file),
                }
            )
        )


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    (tmp_path / "mosquitto").mkdir()
    broker = Mosquitto(tmp_path / "mosquitto")
    try:
        yield broker
    finally:
        if broker.process is not None:
            broker.process.terminate()
            broker.process.wait(10)


async def refused(broker: Mosquitto, username: str | None, password: str | None) -> bool:
    """Whether Mosquitto refuses the CONNECT as not authorised (MQTT v5 reason 135)."""
    try:
        async with broker.client(username, password):
            return False
    except aiomqtt.MqttCodeError as error:
        return error.rc == 135


async def next_message(client: aiomqtt.Client, seconds: float) -> aiomqtt.Message | None:
    async def first() -> aiomqtt.Message:
        async for message in client.messages:
            return message
        raise AssertionError("the subscription ended")

    try:
        return await asyncio.wait_for(first(), seconds)
    except TimeoutError:
        return None


async def test_a_device_publishes_with_its_secret_on_its_own_topic_only(
    settings: Settings, store: Store, mosquitto: Mosquitto
) -> None:
    await store.put_device("", device(FIRST))
    await store.put_device("", device(SECOND))
    first = await rotate_secret(store, "", FIRST)
    second = await rotate_secret(store, "", SECOND)
    # Before Mosquitto runs there is nothing to reload: it reads the files when it starts.
    assert not (await mosquitto.sync(settings)).reloaded
    mosquitto.start()

    async with mosquitto.client(INGEST.username, INGEST.password) as ingest:
        # As stadsnav subscribes: a shared subscription, which the ACL must allow too.
        await ingest.subscribe(f"$share/stadsnav/{DEVICE_TOPICS}", qos=1)
        async with mosquitto.client(FIRST, first) as sensor:
            await sensor.publish(device_topic(SECOND), b"forged", qos=1)
            # With the deploy configuration Mosquitto 2.0 also closes the connection of a
            # client that publishes where it may not (MQTT allows that or a silent drop);
            # waiting on the connection takes note of either.
            with contextlib.suppress(aiomqtt.MqttError):
                await next_message(sensor, 0.2)
        assert await next_message(ingest, 0.5) is None
        # So the device publishes where it may on a connection of its own: what arrives
        # first is that.
        async with (
            mosquitto.client(FIRST, first) as sensor,
            mosquitto.client(SECOND, second) as neighbour,
        ):
            # Mosquitto grants the subscription but delivers only what the reader may read.
            await neighbour.subscribe(DEVICE_TOPICS, qos=1)
            await sensor.publish(device_topic(FIRST), b"reading", qos=1)
            message = await next_message(ingest, 5)
            assert message is not None
            assert (message.topic.value, message.payload) == (device_topic(FIRST), b"reading")
            assert await next_message(neighbour, 0.3) is None

    assert await refused(mosquitto, FIRST, second)
    assert await refused(mosquitto, FIRST, "not-the-secret")
    assert await refused(mosquitto, None, None)
    assert await refused(mosquitto, "a84041000181c4d9", first)


async def test_after_a_rotation_the_old_secret_no_longer_connects(
    settings: Settings, store: Store, mosquitto: Mosquitto
) -> None:
    await store.put_device("", device(FIRST))
    old = await rotate_secret(store, "", FIRST)
    await mosquitto.sync(settings)
    mosquitto.start()
    async with mosquitto.client(FIRST, old) as connected:
        new = await rotate_secret(store, "", FIRST)
        report = await mosquitto.sync(settings)
        assert report.reloaded
        deadline = time.monotonic() + 5
        while not await refused(mosquitto, FIRST, old):
            assert time.monotonic() < deadline, "Mosquitto still takes the old secret"
            await asyncio.sleep(0.05)
        # Mosquitto also ends the sessions that the old secret opened.
        with pytest.raises(aiomqtt.MqttError):
            await next_message(connected, 5)
    async with mosquitto.client(FIRST, new) as sensor:
        await sensor.publish(device_topic(FIRST), b"reading", qos=1)


async def test_the_broker_files_follow_the_registry_without_a_command(
    store: Store, tmp_path: Path
) -> None:
    """The server's sync loop: a secret rotated anywhere reaches the password file by itself."""
    from stadsnav.devices.credentials import MosquittoFiles, keep_in_sync

    files = MosquittoFiles(tmp_path / "passwd", tmp_path / "acl", (INGEST,), None)
    await store.put_device("", device(FIRST))
    syncing = asyncio.create_task(keep_in_sync(files, store, 0.05))
    try:
        secret = await rotate_secret(store, "", FIRST)
        deadline = time.monotonic() + 10
        while True:
            text = files.password_file.read_text() if files.password_file.exists() else ""
            line = next((x for x in text.splitlines() if x.startswith(f"{FIRST}:")), None)
            if line is not None and verify_secret(secret, line.split(":", 1)[1]):
                break
            assert time.monotonic() < deadline, "the password file never took the new secret"
            await asyncio.sleep(0.05)
        assert f"stadsnav/devices/{FIRST}/up" in files.acl_file.read_text()
    finally:
        syncing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await syncing
