"""The dashboard in headless Chromium at 1,280 px: needs action first, nothing wider than the
window, search, filter, sort and pages that work by clicking, a customer page with its data,
and a hostile display name shown as text. The pictures in docs/report.md are made by the last
test here: `CSPGRAPH_DOCS_IMG=1 pytest tests/dashboard -k screenshots`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cspgraph.dashboard import queries
from cspgraph.dashboard.server import serve
from cspgraph.fleet.checks import run_checks
from cspgraph.fleet.store import Store
from tests.dashboard.conftest import EXTRA, HOSTILE_NAME, Dashboard
from tests.e2e.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    STEP_TIMEOUT_MS,
    keep_for_docs,
    requires_chromium,
)
from tests.e2e.conftest import Planted
from tests.e2e.fleet_world import CLEAN, NAMES, RISKY

pytestmark = requires_chromium
WIDTH = 1280
RANKS = ["high", "medium", "low", "info"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(STEP_TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert errors == []


def fits(page: Any) -> None:
    assert page.evaluate("document.scrollingElement.scrollWidth") <= WIDTH


def follow(page: Any, target: Any) -> None:
    """Click a link or a submit button and wait for the page it loads: a read right after a
    bare click can meet the page in between (it read no rows once, on a quiet machine)."""
    with page.expect_navigation():
        target.click()


def rows(page: Any) -> list[str]:
    return page.locator("table.customers tbody tr td:first-child a").all_inner_texts()


def test_the_overview_opens_with_needs_action_worst_first(dashboard: Dashboard, page: Any) -> None:
    page.goto(dashboard.url)
    assert page.locator("h2").first.inner_text() == "Needs action"
    fits(page)
    items = page.locator("li.action")
    severities = [items.nth(i).locator(".badge").first.inner_text() for i in range(items.count())]
    assert severities and severities[0] == "high"
    assert severities == sorted(severities, key=RANKS.index)
    # Risky Ltd has the most high findings of the planted customers.
    with Store.open(dashboard.db) as store:
        worst = run_checks(store).findings[0]
    assert worst.severity.label == "high"
    text = page.locator("#needs-action").inner_text()
    assert NAMES[RISKY] in text and "Next step:" in text
    # The severity filter leaves only the high items.
    follow(page, page.get_by_role("link", name="high and worse"))
    shown = page.locator("li.action .head .badge:first-child").all_inner_texts()
    assert shown and set(shown) == {"high"}
    # A customer's item leads to its page.
    follow(page, page.locator("li.action a.title", has_text=NAMES[RISKY]))
    assert page.locator("h1").inner_text() == NAMES[RISKY]


def test_search_filter_sort_and_pages_by_clicking(dashboard: Dashboard, page: Any) -> None:
    page.goto(dashboard.url + "customers")
    fits(page)
    with Store.open(dashboard.db) as store, store.reading() as conn:
        every = queries.list_customers(conn, queries.ListQuery(per_page=1000)).rows
    assert page.locator("#matched").inner_text().startswith(f"{len(every)} customers")
    assert len(rows(page)) == queries.PER_PAGE
    # Pages: the second page holds the rest, none of the first.
    first = rows(page)
    follow(page, page.get_by_role("link", name="next →"))
    second = rows(page)
    assert len(first) + len(second) == len(every) and not set(first) & set(second)
    # Search by part of a domain.
    page.goto(dashboard.url + "customers")
    page.get_by_label("Search customers").fill("RISKY.onMicro")
    follow(page, page.get_by_role("button", name="Search"))
    assert rows(page) == [NAMES[RISKY]]
    # Filter: the never-synced customers, in the NA region.
    page.get_by_label("Search customers").fill("")
    page.get_by_label("Sync status").select_option("never")
    page.get_by_label("Region").select_option("NA")
    follow(page, page.get_by_role("button", name="Search"))
    assert page.locator("#matched").inner_text().startswith(f"{EXTRA} customers")
    assert all(name.startswith("Extra ") for name in rows(page))
    # Sort by users, the most first; the same header again turns the order.
    page.goto(dashboard.url + "customers")
    follow(page, page.locator("th a", has_text="Users"))
    users = [
        int(t.replace(",", ""))
        for t in page.locator("table.customers tbody tr td:nth-child(5)").all_inner_texts()
        if t.strip() != "—"
    ]
    known = sorted((r.users for r in every if r.users is not None), reverse=True)
    assert users == known and len(users) >= 4
    follow(page, page.locator("th a", has_text="Users"))
    again = page.locator("table.customers tbody tr td:nth-child(5)").all_inner_texts()
    assert [int(t) for t in again[: len(known)]] == sorted(known)


def test_the_customer_page_shows_its_data(dashboard: Dashboard, page: Any) -> None:
    page.goto(dashboard.url + "customers?q=risky")
    follow(page, page.get_by_role("link", name=NAMES[RISKY], exact=True))
    fits(page)
    assert page.locator("h1").inner_text() == NAMES[RISKY]
    admins = page.locator("#admins").inner_text()
    for i in range(4):
        assert f"ga{i}@{RISKY}" in admins
    assert f"oldadmin@{RISKY}" in admins and "disabled" in admins
    assert "SPB" in page.locator("#licences").inner_text()
    assert f"leaver@{RISKY}" in page.locator("#users").inner_text()
    devices = page.locator("#devices").inner_text()
    assert "RISKY-NONCOMPLIANT" in devices and "noncompliant" in devices
    findings = page.locator("#findings").inner_text()
    assert "Global Administrators" in findings and "Next step:" in findings
    # Two syncs: two runs in its history, newest first, with its figures.
    history = page.locator("#history tbody tr")
    assert history.count() == 2
    assert "OK" in history.first.inner_text()
    page.goto(dashboard.url + "customers?q=" + CLEAN.split(".")[0])
    follow(page, page.get_by_role("link", name=NAMES[CLEAN], exact=True))
    clean = page.locator("#findings").inner_text()
    assert "No findings." in clean
    # The planted world's app may not read GDAP relationships: the three GDAP checks are said
    # unknown, with their one reason given once.
    [unknown] = [line for line in clean.splitlines() if line.startswith("Could not tell:")]
    assert unknown.startswith("Could not tell: gdap.expiring, gdap.ended, gdap.approval_waiting (")
    assert unknown.count("DelegatedAdminRelationship.Read.All") == 1


def test_a_hostile_display_name_is_text(dashboard: Dashboard, page: Any) -> None:
    page.goto(dashboard.url + "customers?q=hostile")
    fits(page)
    assert rows(page) == [HOSTILE_NAME]
    assert page.locator("body script, body img").count() == 0
    assert page.evaluate("typeof window.pwned") == "undefined"
    follow(page, page.locator("table.customers tbody a").first)
    assert page.locator("h1").inner_text() == HOSTILE_NAME
    assert page.locator("body script, body img").count() == 0
    assert page.evaluate("typeof window.pwned") == "undefined"


def test_screenshots_of_each_page_fit_the_window(planted: Planted, page: Any) -> None:
    """The planted fleet as a partner would see it (docs/img/dashboard-*.png with
    CSPGRAPH_DOCS_IMG=1): each page fits 1,280 px; only the first screen is kept (small files)."""
    with Store.open(planted.url) as store:
        server = serve(store)
        server.serve_in_thread()
        try:
            with store.reading() as conn:
                [risky] = queries.list_customers(conn, queries.ListQuery(search="risky")).rows
            for name, path in (
                ("dashboard-overview.png", ""),
                ("dashboard-customers.png", "customers"),
                ("dashboard-customer.png", f"customers/{risky.tenant_id}"),
            ):
                page.goto(server.url + path)
                fits(page)
                # The first 720 px: what a reader needs to see, at about 100 KB a picture.
                shot = page.screenshot(clip={"x": 0, "y": 0, "width": WIDTH, "height": 720})
                assert shot[:8] == b"\x89PNG\r\n\x1a\n"
                keep_for_docs(name, shot)
        finally:
            server.shutdown()
            server.server_close()
