"""Names a customer chose, printed where the partner reads them: a company name and an admin's
display name carrying Rich markup (a link), emoji codes, terminal escape sequences (a window
title, clear screen), a right-to-left override and HTML. On a terminal they are shown as text,
escapes visible, never interpreted; in the HTML report they are escaped; in JSON, encoded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import demo_world_data, load_world_data
from cspgraph.cli.common import Exit
from cspgraph.cli.main import app
from tests.terminal import run_on_terminal

# Rich markup, an emoji code, OSC 0 (window title) ended by BEL, CSI 2J (clear screen), a
# right-to-left override, and HTML.
PAYLOAD = "[link=https://evil.example]Pay[/link]:warning:\x1b]0;pwned\x07\x1b[2J\u202eZ<b>x</b>"
COMPANY = f"Hostile {PAYLOAD}"
ADMIN = f"Admin {PAYLOAD}"
INTERPRETED = ("\x1b]0;", "\x1b]8;", "\x1b[2J", "\u202e", "\x07", "⚠")  # what must never arrive
SHOWN = "[link=https://evil.example]Pay[/link]:warning:\\x1b]0;pwned\\x07\\x1b[2J\\u202eZ<b>x</b>"


@dataclass(frozen=True)
class Hostile:
    emu: Emulator
    config: Path
    db: str
    domain: str
    root: Path


def invoke(args: list[str]) -> Result:
    result = CliRunner().invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    root = tmp_path_factory.mktemp("hostile")
    data: dict[str, Any] = demo_world_data(2, seed=11, gdap=False)
    tenant = next(t for t in data["tenant"] if t["kind"] == "customer" and t["domain"] !=
                  "customer.com")  # fmt: skip
    tenant["display_name"] = COMPANY
    tenant.setdefault("user", []).append(
        {"upn": f"evil@{tenant['domain']}", "password": "P@ssw0rd-evil", "display_name": ADMIN,
         "roles": ["Global Administrator"]}
    )  # fmt: skip
    with Emulator(lambda: load_world_data(data, source="<hostile world>"),
                  state_dir=root / "emu") as emu:  # fmt: skip
        config = root / "config.toml"
        made = invoke(["config", "init", "--from-emulator", str(emu.endpoints_file), "--config",
                       str(config)])  # fmt: skip
        assert made.exit_code == 0, made.output
        db = f"sqlite:///{root / 'fleet.db'}"
        synced = invoke(["sync", "--db", db, "--config", str(config)])
        assert synced.exit_code == Exit.DONE, synced.output
        yield Hostile(emu, config, db, tenant["domain"], root)


def assert_shown_not_interpreted(raw: str, output: str) -> None:
    for sequence in INTERPRETED:
        assert sequence not in raw, (sequence, raw)
    assert SHOWN in output.replace("\n", ""), output


@pytest.mark.parametrize(
    "command",
    [
        ["report", "--db", "{db}"],
        ["customers", "list", "--config", "{config}"],
        ["sync", "--db", "{db}", "--config", "{config}"],
    ],
    ids=["report", "customers list", "sync"],
)
def test_a_hostile_company_name_is_shown_as_text_on_a_terminal(
    hostile: Hostile, command: list[str]
) -> None:
    args = [a.format(db=hostile.db, config=hostile.config, domain=hostile.domain) for a in command]
    shown = run_on_terminal(args, columns=400)
    assert shown.returncode == Exit.DONE, shown.output
    assert_shown_not_interpreted(shown.raw, shown.output)


def test_a_hostile_admin_name_is_shown_as_text_by_check(hostile: Hostile) -> None:
    shown = run_on_terminal(["check", "--db", hostile.db], columns=400)
    assert shown.returncode == Exit.DONE, shown.output
    for sequence in INTERPRETED:
        assert sequence not in shown.raw
    assert "Hostile [link=https://evil.example]Pay[/link]" in shown.output


def test_the_html_report_escapes_hostile_names(hostile: Hostile) -> None:
    page = hostile.root / "report.html"
    made = invoke(["report", "--db", hostile.db, "--html", str(page)])
    assert made.exit_code == Exit.DONE, made.output
    html = page.read_text(encoding="utf-8")
    assert "Z&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert "evil.example" in html and 'href="https://evil.example' not in html


def test_json_output_encodes_control_characters(hostile: Hostile) -> None:
    listed = invoke(["report", "--db", hostile.db, "--json"])
    assert listed.exit_code == Exit.DONE
    assert "\x1b" not in listed.stdout and "\x07" not in listed.stdout
    names = {c["display_name"] for c in json.loads(listed.stdout)["customers"]}
    assert COMPANY in names  # the data itself is kept as the customer wrote it
