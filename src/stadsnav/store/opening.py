"""The one way to open a store: from the database URL in the settings."""

from __future__ import annotations

from stadsnav.settings import Settings
from stadsnav.store.base import Store


def sqlite_path(url: str) -> str:
    """sqlite:///relative/file.db, sqlite:////absolute/file.db or sqlite:///:memory:."""
    path = url.removeprefix("sqlite://")
    if path.startswith("/"):
        path = path[1:]
    if not path:
        raise ValueError(f"No file in database URL {url!r}")
    return path


def open_store(settings: Settings) -> Store:
    url = settings.database
    if url.startswith("sqlite:"):
        from stadsnav.store.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url), synchronous=settings.sqlite_synchronous)
    if url.startswith(("postgresql:", "postgres:")):
        # Imported here so that an embedded (SQLite) installation never loads the driver.
        from stadsnav.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"Unsupported database URL {url!r}: use sqlite:/// or postgresql://")
