"""The HTML report, opened in headless Chromium: it renders offline, with its charts."""

from __future__ import annotations

import struct
from pathlib import Path

from cspgraph.fleet.report_html import render_html
from cspgraph.fleet.store import Store
from tests.e2e.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    STEP_TIMEOUT_MS,
    keep_for_docs,
    requires_chromium,
)
from tests.e2e.conftest import Planted
from tests.unit.pg_fixture import build_known_fleet

pytestmark = requires_chromium

CUSTOMERS = ("Alpha Ltd", "Bravo GmbH", "Charlie SA", "Delta Inc")
LONG_ID = "00000009-0000-0000-0000-000000000000"
LONG_NAME = "Averyveryverylongcompanynamewithoutanyspacesthatcouldstretchatable" * 2


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_html_report_renders_with_its_charts_and_no_network(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as store:
        build_known_fleet(store)
        # A name with no place to break, and a long reason: the page must still fit 1,280 px.
        store.upsert_customer(LONG_ID, domain="long.example", display_name=LONG_NAME, region="EU")
        store.set_status(LONG_ID, "failed", reason="x" * 400, error_class="transient")
        page_path = render_html(store, tmp_path / "fleet-report.html")

    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.on("request", lambda request: requests.append(request.url))
            page.goto(page_path.as_uri())
            page.wait_for_load_state("load")
            # Every chart is an inline SVG that the browser laid out with a real size.
            charts = page.locator("svg")
            assert charts.count() == 3
            for i in range(3):
                box = charts.nth(i).bounding_box()
                assert box is not None and box["width"] > 50 and box["height"] > 50
            # The charts draw something: bars and slices, not empty frames.
            assert page.locator("svg rect, svg path, svg circle").count() > 6
            text = page.inner_text("body")
            for name in CUSTOMERS:
                assert name in text
            # Needs action first, and nothing wider than the window.
            assert page.locator("h2").first.inner_text() == "Needs action"
            assert page.evaluate("document.scrollingElement.scrollWidth") <= 1280
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    (tmp_path / "report.png").write_bytes(shot)
    width, height = png_size(shot)
    assert width == 1280 and height > 900
    # Nothing but the page itself was loaded: the report needs no network to open.
    assert requests == [page_path.as_uri()]


def test_the_report_of_a_fleet_with_findings_opens_with_needs_action(
    planted: Planted, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    with Store.open(planted.url) as store:
        page_path = render_html(store, tmp_path / "fleet-report.html")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.goto(page_path.as_uri())
            page.wait_for_load_state("load")
            assert page.evaluate("document.scrollingElement.scrollWidth") <= 1280
            first = page.locator("section").first
            assert first.locator("h2").inner_text() == "Needs action"
            items = page.locator("li.action")
            # The worst first: every high item before any medium one.
            severities = [
                items.nth(i).locator(".badge").first.inner_text() for i in range(items.count())
            ]
            ranks = ["high", "medium", "low", "info"]
            assert severities == sorted(severities, key=ranks.index) and severities[0] == "high"
            assert "Next step:" in items.first.inner_text()
            shot = page.screenshot(full_page=False)
        finally:
            browser.close()
    keep_for_docs("report.png", shot)
    assert png_size(shot) == (1280, 900)
