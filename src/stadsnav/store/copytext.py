"""Values in PostgreSQL's COPY text format, for the stores that load rows by COPY."""

from __future__ import annotations

from typing import Any

import orjson


def copy_text(value: str) -> bytes:
    """A value in COPY's text format."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value.encode()


def copy_json(value: Any) -> bytes:
    """JSON in COPY's text format: JSON text has no raw control characters, only backslashes."""
    return orjson.dumps(value).replace(b"\\", b"\\\\")
