"""Debian's Chromium, driven by Playwright: `make test` installs the browser (its `browser`
target); Playwright's own browser download needs a network this project does not assume.

The steps the browser tests share live here: Chromium trusting one emulator's server key and no
other certificate, a sign-in form filled in, and the CLI run beside Playwright's event loop."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner, Result

from csp_emulator.server import LocalCA
from cspgraph.cli.main import app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

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


def server_key_pin(state_dir: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of the server certificate of emulators that keep
    their state in ``state_dir`` (created now if missing)."""
    cert = x509.load_pem_x509_certificate(LocalCA(state_dir).cert_path.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@contextmanager
def pinned_chromium(state_dir: Path) -> Iterator[Browser]:
    """Headless Chromium that trusts the server key of the emulators keeping their state in
    ``state_dir`` alone (``--ignore-certificate-errors-spki-list``), not every certificate."""
    from playwright.sync_api import sync_playwright

    pin = server_key_pin(state_dir)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={pin}"],
        )
        try:
            yield browser
        finally:
            browser.close()


def open_and_sign_in(page: Page, url: str, username: str, password: str, button: str) -> str:
    """Open ``url``, fill the emulator's sign-in form and press ``button``; the page's text once
    it shows a result or an error."""
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#signin")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click(button)
    page.wait_for_selector("#result, #error")
    return page.inner_text("body")


def run_cli(args: Sequence[str], env: Mapping[str, str] | None = None) -> Result:
    """Run the `cspgraph` CLI on a thread of its own: Playwright's sync API keeps an event loop
    on this one, and the command runs asyncio itself."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(CliRunner().invoke, app, list(args), env=env).result()
