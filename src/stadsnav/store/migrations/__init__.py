"""Versioned schema migrations: one folder per backend, files applied in name order."""

from __future__ import annotations

from importlib import resources


def migration_files(backend: str) -> list[tuple[int, str]]:
    """(version, SQL text) for every migration of a backend, oldest first."""
    folder = resources.files("stadsnav.store.migrations").joinpath(backend)
    found: list[tuple[int, str]] = []
    for item in folder.iterdir():
        if item.name.endswith(".sql"):
            found.append((int(item.name.split("_", 1)[0]), item.read_text("utf-8")))
    return sorted(found)
