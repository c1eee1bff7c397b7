"""What people take away from the store: CSV and Excel exports, and notifications to a Teams or
Slack channel (to a local HTTP receiver, which gets exactly the new findings, once)."""

from __future__ import annotations

import asyncio
import csv
import json
import stat
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from csp_emulator import wellknown
from csp_emulator.server import Emulator
from csp_emulator.world.objects import user_json
from csp_emulator.world.worldfile import add_role_member
from cspgraph.cli.main import app
from cspgraph.fleet.checks import Severity, run_checks
from cspgraph.fleet.notify import channel, notify
from cspgraph.fleet.store import Store
from cspgraph.http.errors import BadRequestError, TransientError
from cspgraph.http.retry import RetryPolicy
from tests.e2e.conftest import Planted
from tests.e2e.fleet_world import NAMES, RISKY, planted_world
from tests.fleet_helpers import config_for, run_sync

RISKY_LTD = NAMES[RISKY]


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


# --- exports --------------------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_export_has_every_table_unknown_as_empty_and_private_files(
    planted: Planted, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    result = invoke("export", "--db", planted.url, "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert sorted(Path(p).name for p in data["written"]) == [
        "admins.csv", "customers.csv", "devices.csv", "findings.csv", "licences.csv",
    ]  # fmt: skip
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # tenant data: the owner's only

    customers = {r["customer"]: r for r in read_csv(out / "customers.csv")}
    assert set(customers) == set(NAMES.values())
    no_intune = customers[NAMES["nointune.example"]]
    assert no_intune["managed_devices"] == "" and no_intune["noncompliant"] == ""  # unknown
    risky = customers[RISKY_LTD]
    # Five Global Administrators: the disabled sixth is in admins.csv, not in the count.
    assert (risky["global_admins"], risky["guests"], risky["licences_unused"]) == ("5", "2", "15")
    assert risky["worst_finding"] == "high"

    with Store.open(planted.url) as store:
        expected = run_checks(store)
    findings = read_csv(out / "findings.csv")
    assert len(findings) == len(expected.findings) == data["rows"]["findings"]
    assert {r["key"] for r in findings} == {f.key for f in expected.findings}
    admins = [r for r in read_csv(out / "admins.csv") if r["customer"] == RISKY_LTD]
    assert {(r["holder"], r["enabled"]) for r in admins if r["role"] == "Global Administrator"} >= {
        (f"oldadmin@{RISKY}", "false"), (f"ga0@{RISKY}", "true"),
    }  # fmt: skip
    devices = {r["device"]: r for r in read_csv(out / "devices.csv")}
    assert devices["RISKY-WIN10"]["os_support"].startswith("Windows 10 22H2: out of support")
    assert devices["RISKY-UNENCRYPTED"]["encrypted"] == "false"
    licences = [r for r in read_csv(out / "licences.csv") if r["customer"] == RISKY_LTD]
    assert [(r["sku"], r["bought"], r["assigned"], r["unused"]) for r in licences] == [
        ("SPB", "20", "5", "15")
    ]


def test_xlsx_export_is_one_workbook_with_a_sheet_per_table(
    planted: Planted, tmp_path: Path
) -> None:
    out = tmp_path / "fleet.xlsx"
    result = invoke(
        "export", "--format", "xlsx", "--db", planted.url, "--out", str(out),
        "--only", "customers,devices", "--customer", "risky", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    book = load_workbook(out, read_only=True)
    assert book.sheetnames == ["customers", "devices"]
    rows = list(book["customers"].iter_rows(values_only=True))
    header, only = rows[0], rows[1:]
    assert len(only) == 1 and only[0][header.index("customer")] == RISKY_LTD
    assert only[0][header.index("guests")] == 2  # a number, not text
    devices = list(book["devices"].iter_rows(values_only=True))
    assert len(devices) == 1 + 6  # Risky's six devices
    last = devices[0].index("last_check_in")
    assert all(hasattr(row[last], "year") for row in devices[1:])  # dates as dates


def test_a_name_that_looks_like_a_formula_stays_text(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with Store.open(url) as store:
        store.upsert_customer("t1", domain="x.example", display_name="=HYPERLINK(1)", region=None)
        store.set_status("t1", "ok")
    out = tmp_path / "csv"
    assert invoke("export", "--db", url, "--out", str(out), "--only", "customers").exit_code == 0
    assert read_csv(out / "customers.csv")[0]["customer"] == "'=HYPERLINK(1)"
    book_path = tmp_path / "x.xlsx"
    assert invoke("export", "--db", url, "--format", "xlsx", "--out", str(book_path)).exit_code == 0
    cell = load_workbook(book_path)["customers"]["A2"]
    assert cell.value == "=HYPERLINK(1)" and cell.data_type == "s"  # a string, never a formula


def test_export_refuses_what_it_cannot_do(planted: Planted, tmp_path: Path) -> None:
    bad = invoke("export", "--db", planted.url, "--format", "pdf")
    assert bad.exit_code == 2 and "expected csv or xlsx" in bad.stderr
    unknown = invoke("export", "--db", planted.url, "--only", "mailboxes")
    assert unknown.exit_code == 2 and "unknown ['mailboxes']" in unknown.stderr
    (tmp_path / "file").write_text("x")
    onto = invoke("export", "--db", planted.url, "--out", str(tmp_path / "file"))
    assert onto.exit_code == 2 and "csv needs a folder" in onto.stderr


# --- notifications --------------------------------------------------------------------------------


class Receiver:
    """A local incoming webhook: records every POST body, answers as told."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                outer.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(outer.status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"1")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhookb2/secret-part"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def teams_lines(body: dict[str, Any]) -> list[str]:
    """The finding lines of a Teams message (its Adaptive Card's bold TextBlocks)."""
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.2"
    return [b["text"] for b in card["body"][1:] if b.get("weight") == "Bolder"]


def slack_lines(body: dict[str, Any]) -> list[str]:
    assert isinstance(body["text"], str) and body["blocks"][0]["type"] == "header"
    return [b["text"]["text"].split("\n")[0] for b in body["blocks"][1:]]


def test_the_receiver_gets_exactly_the_new_findings_once(
    planted: Planted, tmp_path: Path, receiver: Receiver
) -> None:
    url = planted.copy_of(tmp_path / "fleet.db")
    ch = channel(receiver.url, "teams")
    with Store.open(url) as store:
        expected = [f for f in run_checks(store).findings if f.severity >= Severity.LOW]
        first = notify(store, ch)
        assert [f.key for f in first.sent] == [f.key for f in expected] and first.messages == 1
        lines = [line for body in receiver.bodies for line in teams_lines(body)]
        assert len(lines) == len(expected)
        assert f"[HIGH] {RISKY_LTD}: 3 devices on a version without security updates" in lines
        # Again: nothing new, nothing posted.
        again = notify(store, ch)
        assert again.sent == [] and again.already_sent == len(expected)
        assert len(receiver.bodies) == 1
        # Another channel has heard nothing yet.
        other = notify(store, channel(receiver.url.replace("secret-part", "other"), "slack"))
        assert len(other.sent) == len(expected)
        assert len(slack_lines(receiver.bodies[-1])) == len(expected)


async def test_a_new_finding_after_a_sync_is_sent_alone(
    make_emulator: Callable[..., Emulator], tmp_path: Path, receiver: Receiver
) -> None:
    emu = make_emulator(planted_world)
    config = config_for(emu, tmp_path)
    ch = channel(receiver.url, "slack")
    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as store:
        assert (await run_sync(config, store)).ok
        await asyncio.to_thread(notify, store, ch)
        told = len(receiver.bodies)
        risky = emu.world.tenant(RISKY)
        assert risky is not None

        def new_admin() -> None:
            admin = risky.add("users", user_json(risky, f"midnight@{RISKY}"))
            add_role_member(risky, wellknown.ROLE_GLOBAL_ADMIN, admin["id"])

        emu.call(new_admin)
        assert (await run_sync(config, store)).ok
        news = await asyncio.to_thread(notify, store, ch)
    assert [f.check_id for f in news.sent] == ["changes.new_global_admin"]
    assert len(receiver.bodies) == told + 1
    assert slack_lines(receiver.bodies[-1]) == [
        f"*[HIGH] {RISKY_LTD}: 1 new Global Administrator since the sync before*"
    ]


def test_a_failed_post_remembers_nothing_and_the_next_run_sends_it(
    planted: Planted, tmp_path: Path, receiver: Receiver
) -> None:
    url = planted.copy_of(tmp_path / "fleet.db")
    ch = channel(receiver.url, "teams")
    receiver.status = 503
    with Store.open(url) as store:
        with pytest.raises(TransientError):
            notify(store, ch, retry=RetryPolicy(max_retries=0))
        receiver.status = 200
        sent = notify(store, ch, retry=RetryPolicy(max_retries=0))
    assert len(sent.sent) > 0 and len(receiver.bodies) == 2  # the refused one, then the real one


def test_the_notify_command_keeps_the_webhook_secret(
    planted: Planted, tmp_path: Path, receiver: Receiver
) -> None:
    url = planted.copy_of(tmp_path / "fleet.db")
    env = {"CSPGRAPH_WEBHOOK": receiver.url}
    dry = invoke("notify", "--db", url, "--kind", "teams", "--dry-run", "--json", env=env)
    assert dry.exit_code == 0, dry.output
    assert receiver.bodies == [] and len(json.loads(dry.stdout)["sent"]) > 0
    sent = invoke("notify", "--db", url, "--kind", "teams", "--min-severity", "high", env=env)
    assert sent.exit_code == 0, sent.output
    assert "secret-part" not in sent.output and "secret-part" not in sent.stderr
    with Store.open(url) as store:
        high = [f.key for f in run_checks(store).findings if f.severity is Severity.HIGH]
    data = json.loads(sent.stdout)
    assert data["sent"] == high and data["channel"].startswith("sha256:")
    lines = [line for body in receiver.bodies for line in teams_lines(body)]
    assert len(lines) == len(high) and all(line.startswith("[HIGH]") for line in lines)
    missing = invoke("notify", "--db", url, env={"CSPGRAPH_WEBHOOK": ""})
    assert missing.exit_code == 2 and "set $CSPGRAPH_WEBHOOK" in missing.stderr


def test_a_bad_webhook_url_is_named_by_where_it_came_from(planted: Planted, tmp_path: Path) -> None:
    url = planted.copy_of(tmp_path / "fleet.db")
    from_env = invoke("notify", "--db", url, env={"CSPGRAPH_WEBHOOK": "http://example.com/hook"})
    assert from_env.exit_code == 2
    assert "$CSPGRAPH_WEBHOOK: a webhook URL is a secret and must use https" in from_env.stderr
    assert "--webhook" not in from_env.stderr
    given = invoke("notify", "--db", url, "--webhook", "https://hooks.example.com/x", env={})
    assert given.exit_code == 2 and "--webhook: cannot tell whether" in given.stderr


def test_webhook_urls_are_checked_before_anything_is_sent() -> None:
    with pytest.raises(BadRequestError, match="must use https"):
        channel("http://example.com/hook")
    with pytest.raises(BadRequestError, match="cannot tell whether"):
        channel("https://hooks.example.com/x")
    assert channel("https://hooks.slack.com/services/T/B/x").kind == "slack"
    assert channel("https://contoso.webhook.office.com/webhookb2/x").kind == "teams"
    assert "x/y" not in repr(channel("https://hooks.slack.com/x/y"))
