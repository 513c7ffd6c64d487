"""Fault rates are honoured, over single draws and over a simulated stream."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from stadsnav.ingest import decoders, lorawan
from stadsnav.sim import runner
from stadsnav.sim.faults import Faults
from stadsnav.sim.fleet import build_fleet

SAMPLE = 20000


def within(count: int, rate: float, total: int) -> bool:
    """``count`` successes out of ``total`` agree with ``rate`` to five standard deviations."""
    spread = 5 * (total * rate * (1 - rate)) ** 0.5
    return abs(count - total * rate) <= spread + 1


@pytest.mark.parametrize("rate", [0.0, 0.01, 0.1, 0.5, 1.0])
def test_rates_are_honoured_over_a_large_sample(rate: float) -> None:
    faults = Faults(silent=rate, garbage=rate, duplicate=rate)
    rng = random.Random(1)
    payload = bytes(range(10))
    silent = sum(faults.is_silent(f"{i:016x}", seed=3) for i in range(SAMPLE))
    garbled = [faults.damage(payload, rng) for _ in range(SAMPLE)]
    repeats = sum(faults.repeats(rng) for _ in range(SAMPLE))
    damaged = [g for g in garbled if g is not None]
    assert within(silent, rate, SAMPLE)
    assert within(len(damaged), rate, SAMPLE)
    assert within(repeats, rate, SAMPLE)
    assert all(g != payload for g in damaged)
    if damaged:
        truncated = [g for g in damaged if payload.startswith(g)]
        assert within(len(truncated), 0.5, len(damaged))


def test_silence_is_decided_per_device_and_seed() -> None:
    faults = Faults(silent=0.5)
    euis = [f"{i:016x}" for i in range(200)]
    first = [faults.is_silent(eui, seed=1) for eui in euis]
    assert first == [faults.is_silent(eui, seed=1) for eui in euis]
    assert first != [faults.is_silent(eui, seed=2) for eui in euis]


def test_parse() -> None:
    assert Faults.parse("none") == Faults()
    assert Faults.parse("silent=0.02, garbage=0.01,duplicate=0.5") == Faults(0.02, 0.01, 0.5)
    assert Faults.parse("duplicate=0.1") == Faults(duplicate=0.1)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("silent", "not a fault rate"),
        ("loud=0.1", "not a fault rate"),
        ("", "not a fault rate"),
        ("silent=x", "not a number"),
        ("silent=2", "from 0 to 1"),
    ],
)
def test_parse_refuses_what_is_no_fault_rate(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Faults.parse(text)


def test_a_stream_carries_the_configured_faults() -> None:
    fleet = build_fleet(1000, seed=2)
    faults = Faults(silent=0.1, garbage=0.05, duplicate=0.05)
    start = datetime(2026, 11, 23, tzinfo=UTC)
    messages = list(runner.uplinks(fleet, start, start + timedelta(hours=1), faults=faults))
    models = {device.dev_eui: device.model for device in fleet}
    seen: Counter[tuple[str, int]] = Counter()
    undecodable: set[tuple[str, int]] = set()
    for message in messages:
        uplink = lorawan.parse_chirpstack("up", message.body)
        assert uplink is not None
        frame = uplink.dev_eui, uplink.f_cnt
        seen[frame] += 1
        try:
            decoders.decode(models[uplink.dev_eui], uplink.f_port or 0, uplink.payload)
        except decoders.DecodeError:
            undecodable.add(frame)
    frames = len(seen)
    assert set(seen.values()) <= {1, 2}
    assert within(len(messages) - frames, 0.05, frames)
    reporting = {eui for eui, _ in seen}
    assert within(len(fleet) - len(reporting), 0.1, len(fleet))
    # Random bytes may happen to decode, but rarely: nearly all garbage is refused.
    garbage = 0.05 * frames
    assert 0.6 * garbage < len(undecodable) < garbage + 5 * (garbage * 0.95) ** 0.5
