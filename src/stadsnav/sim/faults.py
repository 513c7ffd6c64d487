"""The faults of a real fleet, at chosen rates: devices that never report, payloads that arrive
as garbage, uplinks delivered twice.

Silence is a property of the device (a flat battery, a broken antenna), decided once per device
and seed; garbage and duplicates are drawn per uplink from the uplink's own generator, so a
stream is as reproducible with faults as without.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields

_NAMES = ("silent", "garbage", "duplicate")
# Garbage is at most this long: about the size of a real payload.
_GARBAGE_MAX = 24


@dataclass(frozen=True, slots=True)
class Faults:
    """Rates from 0 to 1: ``silent`` of the devices, ``garbage`` and ``duplicate`` of the
    uplinks."""

    silent: float = 0.0
    garbage: float = 0.0
    duplicate: float = 0.0

    def __post_init__(self) -> None:
        for field in fields(self):
            rate = getattr(self, field.name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"the {field.name} rate must be from 0 to 1, got {rate}")

    @classmethod
    def parse(cls, text: str) -> Faults:
        """``none``, or rates by name: ``silent=0.01,garbage=0.002,duplicate=0.005``; a name
        left out has rate 0."""
        if text.strip() == "none":
            return cls()
        rates: dict[str, float] = {}
        for part in text.split(","):
            name, equals, rate = part.partition("=")
            name = name.strip()
            if not equals or name not in _NAMES:
                raise ValueError(
                    f"{part.strip()!r} is not a fault rate; expected none or NAME=RATE with "
                    f"NAME one of {', '.join(_NAMES)}"
                )
            try:
                rates[name] = float(rate)
            except ValueError:
                raise ValueError(f"the {name} rate {rate.strip()!r} is not a number") from None
        return cls(**rates)

    def is_silent(self, dev_eui: str, seed: int) -> bool:
        """Whether this device sends nothing at all in runs with this seed."""
        return self.silent > 0 and random.Random(f"silent:{seed}:{dev_eui}").random() < self.silent

    def damage(self, payload: bytes, rng: random.Random) -> bytes | None:
        """What arrives instead of ``payload`` when the uplink is garbled, else None: half of
        the time the payload cut short (a firmware bug, a misconfigured length), otherwise
        random bytes (a device of another make behind the same DevEUI, memory corruption)."""
        if rng.random() >= self.garbage:
            return None
        if payload and rng.random() < 0.5:
            return payload[: rng.randrange(len(payload))]
        return rng.randbytes(rng.randint(1, _GARBAGE_MAX))

    def repeats(self, rng: random.Random) -> bool:
        """Whether this uplink is delivered a second time (an integration retrying after a lost
        acknowledgement): same frame counter, same body."""
        return rng.random() < self.duplicate
