"""Debian's Chromium, driven by Playwright: `make test` installs the browser (its `browser`
target); Playwright's own browser download needs a network this project does not assume."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A guard against a hung browser, not a measurement.
STEP_TIMEOUT_MS = 30_000

requires_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"Debian's chromium is not installed at {CHROMIUM}; `make test` installs it "
    "(its `browser` target)",
)


def keep_for_docs(name: str, png: bytes) -> None:
    """With CSPGRAPH_DOCS_IMG=1, keep a screenshot as docs/img/NAME (how the docs' pictures are
    made: `CSPGRAPH_DOCS_IMG=1 pytest tests/e2e -k browser`); otherwise nothing."""
    import os

    if os.environ.get("CSPGRAPH_DOCS_IMG") == "1":
        (Path(__file__).parents[2] / "docs" / "img" / name).write_bytes(png)
