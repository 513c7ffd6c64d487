"""Docs that cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

from stadsnav.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_settings_doc_lists_every_setting_with_its_variable() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    for name in Settings.model_fields:
        assert f"`{name}`" in text
        assert f"`STADSNAV_{name.upper()}`" in text


def test_api_doc_names_every_route() -> None:
    from stadsnav.api.app import create_app

    text = (ROOT / "docs" / "api.md").read_text()
    app = create_app(Settings())
    for route in app.routes:
        path = getattr(route, "path", "")
        shown = path.replace(":path}", "}")
        assert shown in text, f"docs/api.md does not mention {shown}"
