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
