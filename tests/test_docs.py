"""Docs that cannot drift from the code."""

from __future__ import annotations

import re
import subprocess
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


def test_the_readme_tour_runs_as_written(live_server: str) -> None:
    """Every curl command of the README's tour, against a real server, answers as the README
    says (the one 404 it shows is the unknown tenant; the undecodable uplink is a 202)."""
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("## A five-minute tour", 1)[1]
    script = tour.split("```sh", 1)[1].split("```", 1)[0]
    script = script.replace("http://127.0.0.1:8000", live_server)
    # Each call prints its status on a line of its own after the body.
    wrapper = "curl() { command curl -sS -w '\\n=%{http_code}\\n' \"$@\"; }\n"
    done = subprocess.run(
        ["bash", "-e", "-c", wrapper + script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    statuses = [line[1:] for line in done.stdout.splitlines() if re.fullmatch(r"=\d{3}", line)]
    assert len(statuses) == script.count("\ncurl "), done.stdout
    assert [s for s in statuses if not s.startswith("2")] == ["404"], done.stdout
    assert "NonexistentTenant" in done.stdout
    assert "urn:ngsi-ld:WasteContainer:slussen-1" in done.stdout
    # The device part: the uplink's decoded fill level on the bin, the bad one kept aside.
    assert '"fillingLevel":0.1536' in done.stdout
    assert '"stage":"decode"' in done.stdout
    # The subscription is listed, and the uplink's reading is in the bin's history.
    assert '"q":"fillingLevel>0.8"' in done.stdout
    compact = done.stdout.replace(" ", "")
    assert '"values":[[0.1536,"2026-11-23T08:00:00' in compact
    assert '"max":[[0.1536,"2026-11-23T00:00:00Z","2026-11-24T00:00:00Z"]]' in compact
