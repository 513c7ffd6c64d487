"""Validation of the identifiers NGSI-LD payloads and URLs carry: URIs, names, dates."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

from stadsnav.ngsild.errors import BadRequestData

# RFC 3986 scheme followed by a non-empty remainder without whitespace or characters that
# are never legal in a URI.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
# Clause 4.6.2: attribute and type names must not contain these characters.
_FORBIDDEN_NAME = re.compile(r"[\s<>\"'=;()\\\x00-\x1f\x7f]")
# The form devices and stadsnav itself send: UTC with a Z, whole or fractional seconds.
_UTC_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$")
MAX_ID_LENGTH = 2048
MAX_NAME_LENGTH = 1024


def is_uri(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_ID_LENGTH and bool(_URI.match(value))


def check_uri(value: object, what: str) -> str:
    if not is_uri(value):
        raise BadRequestData(f"{what} must be a URI, got {value!r:.200}")
    assert isinstance(value, str)
    return value


def is_valid_name(value: object) -> bool:
    return isinstance(value, str) and _valid_name(value)


@lru_cache(maxsize=8192)
def _valid_name(value: str) -> bool:
    return 0 < len(value) <= MAX_NAME_LENGTH and not _FORBIDDEN_NAME.search(value)


def check_name(value: object, what: str) -> str:
    if not is_valid_name(value):
        raise BadRequestData(f"{what} is not a valid name: {value!r:.200}")
    assert isinstance(value, str)
    return value


def parse_datetime(value: object, what: str) -> datetime:
    """Parse an NGSI-LD DateTime (ISO 8601, UTC when no offset is given)."""
    if not isinstance(value, str) or not _DATETIME.match(value):
        raise BadRequestData(f"{what} must be an ISO 8601 date-time, got {value!r:.100}")
    text = value.replace("Z", "+00:00")
    if "." in text:
        # Python accepts at most microseconds; NGSI-LD allows nanoseconds.
        head, _, tail = text.partition(".")
        digits = re.match(r"\d+", tail)
        assert digits is not None
        frac = digits.group(0)
        text = head + "." + (frac + "000000")[:6] + tail[len(frac) :]
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        # OverflowError: an offset that moves the year out of range (0001-01-01T00:00+01:00).
        raise BadRequestData(f"{what} is not a valid date-time: {value!r:.100}") from exc


def format_datetime(moment: datetime) -> str:
    """The canonical form stadsnav writes: UTC, microseconds, a trailing Z."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@lru_cache(maxsize=4096)
def _normalized(value: str) -> str:
    utc = _UTC_DATETIME.match(value)
    if utc is None:
        return format_datetime(parse_datetime(value, "date-time"))
    # Already UTC: only the calendar needs checking and the fraction padding to microseconds.
    try:
        datetime.fromisoformat(utc.group(1))
    except ValueError:
        raise BadRequestData(f"Not a valid date-time: {value!r:.100}") from None
    return f"{utc.group(1)}.{((utc.group(2) or '') + '000000')[:6]}Z"


def normalize_datetime(value: object, what: str) -> str:
    """The canonical form of a DateTime; devices repeat timestamps, so results are cached."""
    if not isinstance(value, str):
        raise BadRequestData(f"{what} must be an ISO 8601 date-time, got {value!r:.100}")
    try:
        return _normalized(value)
    except BadRequestData:
        raise BadRequestData(f"{what} must be an ISO 8601 date-time, got {value!r:.100}") from None
