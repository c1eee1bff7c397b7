"""The fleet report: JSON, terminal tables, the self-contained HTML page, and the CLI command."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from cspgraph.cli.report_cmd import DEFAULT_DB, report
from cspgraph.fleet.report import report_data
from cspgraph.fleet.report_html import COMPLIANCE_CHART_ROWS, donut_chart, render_html
from cspgraph.fleet.report_terminal import render_terminal
from cspgraph.fleet.store import Store
from tests.terminal import run_on_terminal
from tests.unit import pg_fixture
from tests.unit.pg_fixture import ALPHA, BRAVO, CHARLIE, DELTA, ECHO, FOXTROT, build_known_fleet

pg_database = pg_fixture.pg_database
pg_schema_url = pg_fixture.pg_schema_url
pg_url = pg_fixture.pg_url
store_backend_url = pg_fixture.store_backend_url
store = pg_fixture.store

NAMES = ["Alpha Ltd", "Bravo GmbH", "Charlie SA", "Delta Inc", "Echo BV", "Foxtrot AB"]


@pytest.fixture
def sqlite_fleet(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'fleet.db'}")
    build_known_fleet(opened)
    yield opened
    opened.close()


class Page(HTMLParser):
    """What the tests need to know about an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> tuple[str, Page]:
    source = path.read_text(encoding="utf-8")
    page = Page()
    page.feed(source)
    return source, page


# --- JSON ---------------------------------------------------------------------------------------


def test_report_data_has_the_known_numbers_in_needs_action_order(store: Store) -> None:
    build_known_fleet(store)
    data = orjson.loads(orjson.dumps(report_data(store)))  # JSON-ready as it stands
    # Worst finding first, then sync status: the customer whose sync needs a person leads, the
    # failed one follows, the never-synced one (information only) comes last.
    assert [c["tenant_id"] for c in data["customers"]] == [
        FOXTROT, BRAVO, ALPHA, DELTA, CHARLIE, ECHO,
    ]  # fmt: skip
    actions = data["needs_action"]
    assert [(a["severity"], a["title"]) for a in actions[:2]] == [
        ("high", "Foxtrot AB"), ("medium", "Bravo GmbH"),
    ]  # fmt: skip
    assert actions[0]["next_step"] and actions[0]["findings"][0]["check"] == "sync.failing"
    fleet = data["fleet"]
    assert (fleet["customers"], fleet["users"], fleet["users_disabled"], fleet["admins"]) == (
        6, 11, 1, 3,
    )  # fmt: skip
    assert fleet["noncompliant"] == 4
    assert fleet["os_mix"] == {"Windows": 6, "macOS": 2, "iOS": 1, "Android": 1}
    alpha = next(c for c in data["customers"] if c["tenant_id"] == ALPHA)
    assert alpha["compliance"] == {"compliant": 2, "noncompliant": 1}
    assert alpha["admins"] == 2 and alpha["status"] == "ok"
    assert alpha["last_sync_at"] is not None and alpha["last_sync_at"].startswith("20")
    bravo = next(c for c in data["customers"] if c["tenant_id"] == BRAVO)
    assert (bravo["status"], bravo["admins"], bravo["last_sync_at"]) == ("failed", None, None)
    # Never synced successfully: its counts are unknown, not 0.
    assert (bravo["users"], bravo["managed_devices"], bravo["synced"]) == (None, None, False)
    assert fleet["admins_unknown_customers"] == 1  # Delta: synced, its roles never were


# --- terminal -----------------------------------------------------------------------------------


def test_terminal_report_lists_every_customer_problems_first(sqlite_fleet: Store) -> None:
    console = Console(record=True, width=220, color_system=None)
    render_terminal(sqlite_fleet, console)
    text = console.export_text()
    for name in NAMES:
        assert name in text
    assert text.index("Needs action") < text.index("Customers (")  # needs action first
    customers_section = text[text.index("Customers (") : text.index("Sync problems")]
    order = [customers_section.index(n) for n in ("Foxtrot AB", "Bravo GmbH", "Alpha Ltd")]
    assert order == sorted(order)
    assert customers_section.index("Alpha Ltd") < customers_section.index("Charlie SA")
    assert "HTTP 500 from Graph (transient)" in text
    assert "GDAP relationship missing" in text
    assert "Needs a person" in text


def test_terminal_report_fits_a_narrow_terminal_and_keeps_detail_when_wide(
    sqlite_fleet: Store,
) -> None:
    narrow = Console(record=True, width=80, color_system=None)
    render_terminal(sqlite_fleet, narrow)
    text = narrow.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "Non-compl." in text and "OS mix" not in text
    wide = Console(record=True, width=220, color_system=None)
    render_terminal(sqlite_fleet, wide)
    wide_text = wide.export_text()
    assert "OS mix" in wide_text and "Last sync" in wide_text


def test_terminal_report_of_an_empty_store(tmp_path: Path) -> None:
    console = Console(record=True, width=160, color_system=None)
    with Store.open(str(tmp_path / "empty.db")) as empty:
        render_terminal(empty, console)
    assert "0 customers" in console.export_text()


# --- HTML ---------------------------------------------------------------------------------------


def test_html_report_is_self_contained_with_charts_and_every_customer(
    sqlite_fleet: Store, tmp_path: Path
) -> None:
    out = render_html(sqlite_fleet, tmp_path / "out" / "report.html")
    source, page = parse(out)

    external = [link for link in page.links if re.match(r"(?i)(https?:)?//", link)]
    assert external == []
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert not re.search(r"(?i)url\(|@import", source)  # nothing fetched from CSS either
    assert "style" in page.tags

    assert page.tags.count("svg") == 3  # compliance by customer, OS mix, sync health
    # Needs action opens the page, before the cards and the charts.
    assert source.index('id="needs-action"') < source.index('id="fleet"') < source.index("<svg")
    assert "tr.attention" not in source  # no red border on most rows any more
    assert source.count('aria-label="Compliance of managed devices by customer"') == 1
    text = " ".join(page.text)
    for name in NAMES:
        assert name in text
    # The failed customer's row comes first in the customers table.
    table = source[source.index('<table class="customers">') :]
    assert table.index("Bravo GmbH") < table.index("Charlie SA")
    assert "HTTP 500 from Graph" in text


def test_html_escapes_what_tenants_named_themselves(tmp_path: Path) -> None:
    with Store.open(str(tmp_path / "fleet.db")) as opened:
        opened.upsert_customer(
            "t1", domain="x.example", display_name="<script>alert(1)</script> & Co", region=None
        )
        opened.upsert_objects("t1", "managedDevices", [
            {"id": "m1", "operatingSystem": "<b>OS</b>", "complianceState": "noncompliant"},
        ])  # fmt: skip
        opened.set_status("t1", "failed", reason="<img src=x>")
        out = render_html(opened, tmp_path / "report.html")
    source, page = parse(out)
    assert "<script>" not in source and "<img" not in source and "<b>" not in source
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in source
    assert "script" not in page.tags and "img" not in page.tags


def test_compliance_chart_shows_the_worst_customers_of_a_large_fleet(tmp_path: Path) -> None:
    with Store.open(str(tmp_path / "fleet.db")) as opened:
        for i in range(COMPLIANCE_CHART_ROWS + 10):
            tenant = f"tenant-{i:03d}"
            opened.upsert_customer(
                tenant, domain=None, display_name=f"Customer {i:03d}", region=None
            )
            devices = [
                {"id": f"m{j}", "operatingSystem": "Windows", "complianceState": "noncompliant"}
                for j in range(i)
            ] + [{"id": "ok", "operatingSystem": "iOS", "complianceState": "compliant"}]
            opened.upsert_objects(tenant, "managedDevices", devices)
        out = render_html(opened, tmp_path / "report.html")
    source, _ = parse(out)
    chart = source[source.index("<svg") : source.index("</svg>")]  # the first chart
    assert "Customer 039" in chart  # the most non-compliant devices
    assert "Customer 009" not in chart  # too few to make the cut
    assert f"The {COMPLIANCE_CHART_ROWS} customers with the most non-compliant devices" in source


def test_donut_folds_small_slices_into_other_and_handles_a_single_slice() -> None:
    many = {f"OS {i}": 100 - i for i in range(10)}
    svg = donut_chart(many, "OS mix", ["#000000"] * 10)
    assert "Other" in svg and "OS 5" in svg and "OS 6" not in svg
    assert svg.count("<circle") == 1 + 7  # the track and seven slices

    whole = donut_chart({"Windows": 5}, "OS mix", ["#123456"])
    assert 'stroke-dasharray="100.000 0.000"' in whole
    assert "Nothing to show" in donut_chart({}, "OS mix", [])


# --- CLI ----------------------------------------------------------------------------------------


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(report)
    return app


def test_cli_prints_json(cli: typer.Typer, sqlite_fleet: Store, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{tmp_path / 'fleet.db'}", "--json"])
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["fleet"]["customers"] == 6


def test_cli_writes_html_and_prints_tables_on_a_terminal(
    sqlite_fleet: Store, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    shown = run_on_terminal(["report", "--db", str(tmp_path / "fleet.db"), "--html", str(out)])
    assert shown.returncode == 0, shown.output
    assert "Customers (in needs-action order)" in shown.output
    assert "Needs action (worst first)" in shown.output
    assert "Bravo GmbH" in shown.output
    assert f"HTML report written to {out}" in shown.output
    assert "<svg" in out.read_text(encoding="utf-8")


def test_cli_prints_json_when_piped_and_says_where_the_html_went_on_stderr(
    cli: typer.Typer, sqlite_fleet: Store, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "fleet.db"), "--html", str(out)])
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)  # stdout is one JSON document
    assert "Bravo GmbH" in {c["display_name"] for c in data["customers"]}
    assert f"HTML report written to {out}" in result.stderr
    assert "<svg" in out.read_text(encoding="utf-8")


def test_cli_refuses_a_missing_store_instead_of_creating_one(
    cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CSPGRAPH_DB", raising=False)
    assert DEFAULT_DB == "sqlite:///cspgraph.db"
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 2  # bad input (docs/cli.md's table; it exited 1 before)
    assert "no store at cspgraph.db" in result.stderr
    assert not (tmp_path / "cspgraph.db").exists()
