"""The simulation's schedule, as a reproducible stream and as live traffic over HTTP or MQTT.

Every device reports on a fixed interval from its own phase, as real devices do, and its frame
counter is the number of intervals since the simulation's reference instant: a restarted run
continues the counters instead of repeating them, and the n-th uplink of a device is the same
frame in every run. Each uplink draws its noise and faults from a generator seeded by (seed,
device, frame counter), so ``uplinks`` gives the same bytes for the same window whatever else
is simulated, and ``run`` sends exactly those bytes, paced against the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import random
import signal
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol
from urllib.parse import unquote, urlsplit

import aiomqtt
import httpx

from stadsnav.ingest.lorawan import Network
from stadsnav.sim import encoders, world
from stadsnav.sim.envelopes import Message, envelope
from stadsnav.sim.faults import Faults
from stadsnav.sim.fleet import Device

__all__ = ["Counters", "Message", "Target", "run", "uplinks"]

log = logging.getLogger("stadsnav.sim")

# Frame counters count intervals from this instant; it lies before any simulated window.
EPOCH = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
_REQUEST_TIMEOUT = 30.0
# On a stop, uplinks already handed to a sender get this long to be delivered.
_GRACE = 5.0

Kind = Literal["uplink", "garbage", "duplicate"]


@dataclass(frozen=True, slots=True)
class Target:
    """Where uplinks go: ``http(s)://host:port[/prefix]`` (the platform's ingest endpoints) or
    ``mqtt(s)://[user:password@]host[:port]`` (the broker the platform subscribes to)."""

    url: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https", "mqtt", "mqtts") or not parts.hostname:
            raise ValueError(
                f"{self.url!r} is no target: expected http(s)://host:port or mqtt(s)://host:port"
            )

    @property
    def transport(self) -> Literal["http", "mqtt"]:
        return "mqtt" if urlsplit(self.url).scheme.startswith("mqtt") else "http"


@dataclass
class Counters:
    """What a run did. ``by_status`` counts HTTP status codes ("202") or MQTT acknowledgements
    ("puback"); ``failed`` the deliveries that got no answer, by error under "error:<name>"."""

    sent: int = 0
    failed: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    # How far the simulated clock got, and how far behind its schedule delivery fell (a
    # receiver or link too slow for the chosen speed).
    simulated_until: datetime | None = None
    behind_s: float = 0.0


@dataclass(frozen=True, slots=True)
class _Scheduled:
    at: int  # Unix seconds, simulated
    kind: Kind
    message: Message


def _phase(device: Device) -> int:
    return random.Random(f"phase:{device.dev_eui}").randrange(device.interval_s)


def _uplink_rng(seed: int, device: Device, f_cnt: int) -> random.Random:
    # An integer seed: cheaper than a string and the same on every platform.
    return random.Random((seed << 96) | (int(device.dev_eui, 16) << 32) | f_cnt)


def _frames(
    device: Device, at: int, f_cnt: int, faults: Faults, seed: int, network: Network
) -> list[_Scheduled]:
    """The deliveries of the device's uplink number ``f_cnt``, due at ``at``: one, or two if
    it is duplicated."""
    rng = _uplink_rng(seed, device, f_cnt)
    when = datetime.fromtimestamp(at, UTC)
    frame = encoders.encode(
        device.model, world.observe(device, when, rng), at=at, serial=int(device.dev_eui[-4:], 16)
    )
    garbage = faults.damage(frame.payload, rng)
    kind: Kind = "uplink" if garbage is None else "garbage"
    payload = frame.payload if garbage is None else garbage
    # Devices wake within a second of their slot, not on the exact second.
    message = envelope(
        network,
        device,
        f_cnt=f_cnt % (1 << 32),
        fport=frame.fport,
        payload=payload,
        sent_at=at + rng.random(),
        rng=rng,
    )
    scheduled = [_Scheduled(at, kind, message)]
    if faults.repeats(rng):
        scheduled.append(_Scheduled(at, "duplicate", message))
    return scheduled


def _schedule(
    fleet: Sequence[Device],
    start: datetime,
    end: datetime | None,
    faults: Faults,
    seed: int,
    network: Network,
) -> Iterator[_Scheduled]:
    """Every delivery in [start, end), in time order (ties in fleet order); endless without an
    end."""
    first = math.ceil(start.timestamp())
    last = math.inf if end is None else end.timestamp()
    if first < EPOCH:
        raise ValueError(
            f"the simulation starts at {datetime.fromtimestamp(EPOCH, UTC)} at the earliest"
        )
    queue: list[tuple[int, int, int]] = []
    for index, device in enumerate(fleet):
        if faults.is_silent(device.dev_eui, seed):
            continue
        phase = _phase(device)
        f_cnt = math.ceil((first - EPOCH - phase) / device.interval_s)
        queue.append((EPOCH + phase + f_cnt * device.interval_s, index, f_cnt))
    heapq.heapify(queue)
    while queue:
        at, index, f_cnt = queue[0]
        if at >= last:
            return
        device = fleet[index]
        yield from _frames(device, at, f_cnt, faults, seed, network)
        heapq.heapreplace(queue, (at + device.interval_s, index, f_cnt + 1))


def uplinks(
    fleet: Sequence[Device],
    start: datetime,
    end: datetime,
    *,
    faults: Faults | None = None,
    seed: int = 0,
    network: Network = "chirpstack",
) -> Iterator[Message]:
    """Every message the fleet delivers in the simulated window [start, end), in time order,
    as (topic, http_path, body). The same arguments give the same bytes."""
    for scheduled in _schedule(fleet, start, end, faults or Faults(), seed, network):
        yield scheduled.message


# -- delivery ----------------------------------------------------------------------------------


class _Sender(Protocol):
    async def send(self, message: Message) -> str:
        """Deliver one message; the answer's status, or an exception if there was none."""
        ...


class _HttpSender:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(self, message: Message) -> str:
        response = await self._client.post(
            message.http_path,
            content=message.body,
            headers={"Content-Type": "application/json"},
        )
        return str(response.status_code)


class _MqttSender:
    def __init__(self, client: aiomqtt.Client) -> None:
        self._client = client

    async def send(self, message: Message) -> str:
        await self._client.publish(message.topic, message.body, qos=1, timeout=_REQUEST_TIMEOUT)
        return "puback"


@contextlib.asynccontextmanager
async def _connect(target: Target, concurrency: int, seed: int) -> AsyncIterator[_Sender]:
    if target.transport == "http":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=target.url, limits=limits, timeout=_REQUEST_TIMEOUT
        ) as client:
            yield _HttpSender(client)
        return
    parts = urlsplit(target.url)
    secure = parts.scheme == "mqtts"
    async with aiomqtt.Client(
        parts.hostname or "",
        parts.port or (8883 if secure else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        # Unique per process: a broker drops a client when another connects with its id.
        identifier=f"stadsnav-sim-{seed}-{random.getrandbits(32):08x}",
        tls_context=ssl.create_default_context() if secure else None,
        max_inflight_messages=concurrency,
    ) as client:
        yield _MqttSender(client)


async def run(
    target: Target,
    fleet: Sequence[Device],
    *,
    speed: float = 1.0,
    duration: float | None = None,
    rate_limit: float | None = None,
    faults: Faults | None = None,
    seed: int = 0,
    network: Network = "chirpstack",
    start: datetime | None = None,
    concurrency: int = 8,
    counters: Counters | None = None,
) -> Counters:
    """Deliver the fleet's uplinks to ``target`` as the simulated clock reaches them.

    ``speed`` is simulated seconds per real second (60: an hour a minute; ``math.inf``: as fast
    as the receiver takes them); ``duration`` is in simulated seconds, None to run until
    stopped; ``rate_limit`` caps deliveries per real second; ``start`` is the simulated start,
    now by default. At most ``concurrency`` deliveries are under way at once (over HTTP, more
    than about 8 costs more in httpx's connection pool than it gains). SIGINT (where the
    loop can take signals) or cancellation stops the run: what is under way gets a few seconds
    to finish, and the counters (``counters``, if given, are kept up to date during the run)
    say what was done.
    """
    if speed <= 0 or (rate_limit is not None and rate_limit <= 0) or concurrency < 1:
        raise ValueError("speed, rate_limit and concurrency must be positive")
    counters = counters if counters is not None else Counters()
    begin = start or datetime.now(UTC).replace(microsecond=0)
    end = None if duration is None else begin + timedelta(seconds=duration)
    schedule = _schedule(fleet, begin, end, faults or Faults(), seed, network)
    stop = asyncio.Event()
    queue: asyncio.Queue[_Scheduled] = asyncio.Queue(maxsize=4 * concurrency)
    async with _connect(target, concurrency, seed) as sender:
        workers = [
            asyncio.create_task(_deliver(sender, queue, counters)) for _ in range(concurrency)
        ]
        with _stopping_on_sigint(stop):
            try:
                await _produce(schedule, queue, stop, counters, begin, speed, rate_limit)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.join(), None if not stop.is_set() else _GRACE)
            except asyncio.CancelledError:
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(queue.join()), _GRACE)
                raise
            finally:
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
    return counters


async def _produce(
    schedule: Iterator[_Scheduled],
    queue: asyncio.Queue[_Scheduled],
    stop: asyncio.Event,
    counters: Counters,
    begin: datetime,
    speed: float,
    rate_limit: float | None,
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    origin = begin.timestamp()
    next_slot = started
    for item in schedule:
        due = started + (item.at - origin) / speed
        if rate_limit is not None:
            due = max(due, next_slot)
            next_slot = due + 1 / rate_limit
        delay = due - loop.time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        if stop.is_set():
            return
        await queue.put(item)
        counters.by_kind[item.kind] += 1
        counters.simulated_until = datetime.fromtimestamp(item.at, UTC)
        counters.behind_s = max(0.0, loop.time() - due)


async def _deliver(sender: _Sender, queue: asyncio.Queue[_Scheduled], counters: Counters) -> None:
    while True:
        item = await queue.get()
        try:
            status = await sender.send(item.message)
        # Whatever goes wrong with one delivery is counted, never allowed to end the worker:
        # the run waits for every queued uplink to be handled.
        except Exception as error:
            counters.failed += 1
            counters.by_status[f"error:{type(error).__name__}"] += 1
            log.debug("delivering %s failed: %s", item.message.topic, error)
        else:
            counters.sent += 1
            counters.by_status[status] += 1
        finally:
            queue.task_done()


@contextlib.contextmanager
def _stopping_on_sigint(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT sets ``stop`` for the run and is given back afterwards. Loops that cannot take
    signals (outside the main thread, on Windows) keep their handler; cancelling still stops."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    except (NotImplementedError, RuntimeError, ValueError):
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
