"""docs/cli.md's contract, command by command, with the real CLI against the emulator.

For every command: the exit status for each error class it can meet (one table for all: 0 done,
1 partly done, 2 bad input or configuration, 3 needs a person, 4 propagating, 5 transient, 130
interrupted), and JSON on stdout when stdout is not a terminal or ``--json`` asks for it. Commands
run in-process through Typer's runner (its stdout is not a terminal, like a pipe), or as child
processes where a signal (Ctrl-C) or a terminal is part of the case.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import DEMO_PARTNERS, demo_world
from cspgraph.cli.common import EXIT_BY_ERROR_CLASS, Exit
from cspgraph.cli.main import app
from cspgraph.graph.scope import CSP_RULE
from cspgraph.http.errors import ErrorClass
from tests.client.conftest import Control
from tests.client.partner_helpers import sign_in_browser
from tests.terminal import CSPGRAPH, run_on_terminal

NEW_CUSTOMER = "contractco.onmicrosoft.com"  # created by the fixture: its relationship is young
CUSTOMER = "customer.com"


@dataclass
class House:
    """One emulator and the configurations the cases use."""

    emu: Emulator
    root: Path
    config: Path  # the demo world's partner configuration
    bad_secret: Path  # the same, with wrong client secrets: token requests need a person
    down: Path  # the same, naming an emulator that is not running
    db: str  # a store the fixture synced
    one_retry: Path  # the same, retrying a failed token request once only (token_retries = 1)

    def fill(self, args: list[str]) -> list[str]:
        marks = {
            "{config}": str(self.config),
            "{bad_secret}": str(self.bad_secret),
            "{down}": str(self.down),
            "{one_retry}": str(self.one_retry),
            "{db}": self.db,
            "{root}": str(self.root),
            "{endpoints}": str(self.emu.endpoints_file),
        }
        out = []
        for arg in args:
            for mark, value in marks.items():
                arg = arg.replace(mark, value)
            out.append(arg)
        return out


def invoke(args: list[str], **kwargs: Any) -> Result:
    result = CliRunner().invoke(app, args, **kwargs)
    # Never a traceback: whatever happened ended in a status the command chose.
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception,
        result.output,
    )
    return result


def copy_config(config: Path, to: Path) -> Path:
    shutil.copytree(config.parent, to)
    return to / config.name


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.fixture(scope="module")
def house(tmp_path_factory: pytest.TempPathFactory) -> Iterator[House]:
    root = tmp_path_factory.mktemp("cli-contract")
    with Emulator(lambda: demo_world(customers=2), state_dir=root / "emulator") as emu:
        config = root / "cfg" / "config.toml"
        init = ["config", "init", "--from-emulator", str(emu.endpoints_file), "--config"]
        assert invoke([*init, str(config)]).exit_code == 0

        bad_secret = copy_config(config, root / "bad-secret")
        for region in DEMO_PARTNERS:
            (bad_secret.parent / "secrets" / f"{region}.secret").write_text("not-the-secret")

        down = copy_config(config, root / "down")
        gone = f"https://127.0.0.1:{closed_port()}"
        endpoints = json.loads(emu.endpoints_file.read_text())
        endpoints.update(authority_host=gone, graph=gone, partner_center=gone, control=gone)
        (down.parent / "endpoints.json").write_text(json.dumps(endpoints))
        down.write_text(
            down.read_text().replace(json.dumps(str(emu.endpoints_file)), '"endpoints.json"')
        )

        one_retry = copy_config(config, root / "one-retry")
        one_retry.write_text("token_retries = 1\n" + one_retry.read_text())

        # A new customer: its partner relationship takes the world's 3 minutes to reach it.
        created = invoke(
            ["customers", "create", "--domain", NEW_CUSTOMER, "--name", "Contract Co",
             "--region", "NA", "--password-file", str(root / "new-admin.txt"),
             "--config", str(config)]
        )  # fmt: skip
        assert created.exit_code == 0, created.output
        db = f"sqlite:///{root / 'fleet.db'}"
        synced = invoke(["sync", "--customers", CUSTOMER, "--db", db, "--config", str(config)])
        assert synced.exit_code == 0, synced.output
        yield House(emu, root, config, bad_secret, down, db, one_retry)


def browser(emu: Emulator, who: str, *, opens: bool = True) -> Callable[[str], bool]:
    """The browser of the demo world's partner agent or administrator, filling the emulator's
    sign-in page on another thread (the command waits for the answer on this one). With
    ``opens=False`` no browser opened: the command shows the URL, and the person pastes it."""
    fill = sign_in_browser(emu, f"{who}@partner.com", f"P@ssw0rd-{who}")

    def open_browser(url: str) -> bool:
        threading.Thread(target=fill, args=(url,), daemon=True).start()
        return opens

    return open_browser


# -- exit statuses ---------------------------------------------------------------------------------

EMULATOR_DOWN = "is the emulator running?"


@dataclass(frozen=True)
class Case:
    command: str  # the command's path, e.g. "customers list"
    args: list[str]  # after the command's path; {config}, {down}, … are filled in
    status: Exit
    says: str  # on stderr
    fault: dict[str, Any] | None = None  # an emulator fault for this case only
    browser: str | None = None  # "agent" or "admin": who signs in when the command asks
    # The status is about the result, which is printed even so (`check --fail-on`: findings).
    prints_result: bool = False

    @property
    def id(self) -> str:
        return f"{self.command}: {self.status.value} {self.status.name.lower()} ({self.says})"


CASES = [
    Case("config init", ["--config", "{root}/fresh/config.toml"], Exit.DONE, ""),
    Case("config init", ["--config", "{config}"], Exit.BAD_INPUT, "exists; use --force"),
    Case("config init", ["--from-emulator", "{config}", "--config", "{root}/x/c.toml"],
         Exit.BAD_INPUT, "as an endpoints file"),
    Case("config show", ["--config", "{config}"], Exit.DONE, ""),
    Case("config show", ["--config", "{root}/absent.toml"], Exit.BAD_INPUT,
         "no such configuration file"),
    Case("token", ["--customer", CUSTOMER, "--config", "{config}"], Exit.DONE, ""),
    Case("token", ["--customer", "nowhere.example", "--config", "{config}"], Exit.BAD_INPUT,
         "AADSTS90002"),
    Case("token", ["--customer", CUSTOMER, "--config", "{down}"], Exit.BAD_INPUT, EMULATOR_DOWN),
    Case("token", ["--customer", CUSTOMER, "--config", "{bad_secret}"], Exit.NEEDS_PERSON,
         "error: needs_person:"),
    # A token request is retried (token_retries): it fails only when the retries fail too.
    Case("token", ["--customer", CUSTOMER, "--config", "{one_retry}"], Exit.TRANSIENT,
         "error: transient:", fault={"host": "login", "kind": "503", "count": 2}),
    Case("token", ["--customer", CUSTOMER, "--config", "{config}"], Exit.DONE, "",
         fault={"host": "login", "kind": "503", "count": 1}),
    Case("login", ["--customer", CUSTOMER, "--no-browser", "--config", "{down}"], Exit.BAD_INPUT,
         EMULATOR_DOWN),
    Case("login", ["--customer", CUSTOMER, "--no-browser", "--timeout", "0", "--config",
                   "{config}"], Exit.BAD_INPUT, "no sign-in came back within 0 s"),
    Case("login", ["--customer", CUSTOMER, "--no-browser", "--timeout=-5", "--config",
                   "{config}"], Exit.BAD_INPUT, "expected a number of seconds, 0 or more"),
    Case("login", ["--customer", CUSTOMER, "--no-browser", "--timeout", "nan", "--config",
                   "{config}"], Exit.BAD_INPUT, "expected a number of seconds, 0 or more"),
    Case("login", ["--customer", CUSTOMER, "--timeout", "30", "--config", "{bad_secret}"],
         Exit.NEEDS_PERSON, "error: needs_person:", browser="agent"),
    Case("logout", ["--agent-user", "nobody@partner.com", "--config", "{down}"],
         Exit.BAD_INPUT, "--agent-user nobody@partner.com: not signed in here (signed in: nobody)"),
    Case("logout", ["--config", "{root}/absent.toml"], Exit.BAD_INPUT,
         "no such configuration file"),
    Case("whoami", ["--config", "{down}"], Exit.DONE, ""),  # reads the cache, calls nothing
    Case("whoami", ["--config", "{root}/absent.toml"], Exit.BAD_INPUT,
         "no such configuration file"),
    Case("call", ["GET", "/users", "--top", "1", "-c", CUSTOMER, "--config", "{config}"],
         Exit.DONE, ""),
    # The CSP scope guard refuses before anything is sent: the emulator need not even run.
    Case("call", ["GET", "/v1.0/users/x/messages", "-c", "a.example", "--config", "{down}"],
         Exit.BAD_INPUT, CSP_RULE),
    Case("call", ["GET", "/users", "-c", CUSTOMER, "--config", "{down}"], Exit.BAD_INPUT,
         EMULATOR_DOWN),
    Case("call", ["GET", "/beta/users", "-c", CUSTOMER, "--agent", "--config", "{config}"],
         Exit.NEEDS_PERSON, "code=NotSignedIn"),
    Case("call", ["GET", "/users", "-c", NEW_CUSTOMER, "--config", "{config}"], Exit.PROPAGATING,
         "error: propagating:"),
    Case("call", ["POST", "/groups", "-c", CUSTOMER, "-d", '{"displayName": "g"}', "--config",
                  "{config}"],
         Exit.TRANSIENT, "error: transient:", fault={"host": "graph", "kind": "drop", "count": 1}),
    Case("setup", ["--region", "NA", "--permissions", "Mail.Read", "--config", "{down}"],
         Exit.BAD_INPUT, CSP_RULE),
    Case("setup", ["--region", "NA", "--config", "{down}"], Exit.BAD_INPUT, EMULATOR_DOWN),
    Case("customers list", ["--config", "{config}"], Exit.DONE, ""),
    Case("customers list", ["--config", "{down}"], Exit.BAD_INPUT, EMULATOR_DOWN),
    Case("customers list", ["--config", "{bad_secret}"], Exit.NEEDS_PERSON,
         "error: needs_person:"),
    Case("customers list", ["--region", "AS", "--config", "{config}"], Exit.BAD_INPUT,
         "regions.AS: not configured"),
    Case("customers create", ["--domain", NEW_CUSTOMER, "--name", "Contract Co", "--region", "NA",
                              "--password-file", "{root}/pw.txt", "--config", "{config}"],
         Exit.DONE, ""),
    Case("customers create", ["--domain", "x.onmicrosoft.com", "--name", "X", "--region", "NA",
                              "--config", "{config}"], Exit.BAD_INPUT,
         "stderr is not one: pass --password-file FILE"),
    Case("customers create", ["--domain", "x.onmicrosoft.com", "--name", "X", "--region", "NA",
                              "--password-file", "{root}/pw.txt", "--config", "{bad_secret}"],
         Exit.NEEDS_PERSON, "error: needs_person:"),
    Case("customers create", ["--domain", "x.onmicrosoft.com", "--name", "X", "--region", "NA",
                              "--config", "{down}"], Exit.BAD_INPUT, EMULATOR_DOWN),
    Case("onboard", ["--domain", "y.onmicrosoft.com", "--name", "Y", "--region", "NA",
                     "--password-file", "{root}/pw.txt", "--config", "{bad_secret}"],
         Exit.NEEDS_PERSON, "error: needs_person:"),
    Case("onboard", ["--domain", "y.onmicrosoft.com", "--name", "Y", "--region", "NA",
                     "--config", "{config}"], Exit.BAD_INPUT,
         "stderr is not one: pass --password-file FILE"),
    Case("onboard", ["--domain", "y.onmicrosoft.com", "--name", "Y", "--region", "NA",
                     "--config", "{down}"], Exit.BAD_INPUT, EMULATOR_DOWN),
    Case("onboard", ["--domain", "y.onmicrosoft.com", "--name", "Y", "--budget", "soon",
                     "--config", "{config}"], Exit.BAD_INPUT, "expected a duration"),
    Case("onboard", ["--gdap", "--config", "{config}"], Exit.BAD_INPUT, "needs --domain"),
    Case("onboard", ["--domain", "y.onmicrosoft.com", "--config", "{config}"], Exit.BAD_INPUT,
         "needs --domain and --name"),
    Case("onboard", ["--status", "--state-dir", "{root}/no-onboarding"], Exit.DONE, ""),
    Case("customers invite", ["--region", "NA", "--config", "{config}"], Exit.NEEDS_PERSON,
         "cspgraph login"),  # App+User only: nobody signed in
    Case("customers invite", ["--region", "NA", "--service-account", "--config", "{config}"],
         Exit.BAD_INPUT, "no service account is configured"),
    Case("service-account sign-in", ["--at", "partner.com", "--config", "{config}"],
         Exit.BAD_INPUT, "no service account is configured"),
    Case("service-account status", ["--config", "{config}"], Exit.BAD_INPUT,
         "no service account is configured"),
    Case("service-account sign-out", ["--config", "{config}"], Exit.BAD_INPUT,
         "no service account is configured"),
    Case("onboard", ["--existing", "y.onmicrosoft.com", "--domain", "y.onmicrosoft.com",
                     "--config", "{config}"], Exit.BAD_INPUT, "choose one"),
    Case("sync", ["--customers", CUSTOMER, "--db", "{db}", "--config", "{config}"], Exit.DONE,
         ""),
    Case("sync", ["--customers", f"{CUSTOMER},nobody.example", "--db", "{db}", "--config",
                  "{config}"], Exit.PARTLY_DONE, ""),
    Case("sync", ["--customers", NEW_CUSTOMER, "--db", "{db}", "--config", "{config}"],
         Exit.PARTLY_DONE, ""),  # propagating: the customer's status says so, the run goes on
    Case("sync", ["--resources", "mailboxes", "--config", "{config}"], Exit.BAD_INPUT,
         "unknown ['mailboxes']"),
    Case("sync", ["--db", "{db}", "--config", "{down}"], Exit.BAD_INPUT, EMULATOR_DOWN),
    Case("sync", ["--engine", "celery", "--db", "{db}", "--config", "{config}"], Exit.BAD_INPUT,
         "--engine celery needs --broker"),
    Case("sync", ["--engine", "spark", "--db", "{db}", "--config", "{config}"], Exit.BAD_INPUT,
         "expected local or celery"),
    # The worker runs until stopped: tests/scale runs it against the real services.
    Case("worker", ["--db", "{db}", "--config", "{config}"], Exit.BAD_INPUT,
         "Missing option '--broker'"),
    Case("worker", ["--broker", "amqp://127.0.0.1:1//", "--db", "mysql://x/y", "--config",
                    "{config}"], Exit.BAD_INPUT, "--db"),
    Case("sync", ["--follow", "0" * 32, "--db", "{db}"], Exit.BAD_INPUT, "add --engine celery"),
    Case("sync", ["--engine", "celery", "--follow", "0" * 32, "--db", "{db}"], Exit.BAD_INPUT,
         "no run 000"),
    Case("runs", ["--db", "{db}"], Exit.DONE, ""),
    Case("runs", ["--db", "sqlite:///{root}/none.db"], Exit.BAD_INPUT, "no store at"),
    Case("report", ["--db", "{db}"], Exit.DONE, ""),
    Case("check", ["--db", "{db}"], Exit.DONE, ""),
    Case("check", ["--db", "{db}", "--fail-on", "info"], Exit.NEEDS_PERSON, "at or above info",
         prints_result=True),
    Case("check", ["--db", "{db}", "--fail-on", "urgent"], Exit.BAD_INPUT, "unknown severity"),
    Case("check", ["--db", "sqlite:///{root}/none.db"], Exit.BAD_INPUT, "no store at"),
    Case("export", ["--db", "{db}", "--out", "{root}/export"], Exit.DONE, ""),
    Case("export", ["--db", "{db}", "--format", "pdf"], Exit.BAD_INPUT, "expected csv or xlsx"),
    Case("notify", ["--db", "{db}", "--webhook-env", "CSPGRAPH_TEST_UNSET"], Exit.BAD_INPUT,
         "no webhook"),
    Case("notify", ["--db", "{db}", "--webhook", "http://example.com/x"], Exit.BAD_INPUT,
         "must use https"),
    Case("report", ["--db", "sqlite:///{root}/none.db"], Exit.BAD_INPUT, "no store at"),
    Case("report", ["--db", "{db}", "--html", "{root}/absent/x.html"], Exit.BAD_INPUT,
         "no folder"),
    Case("report", ["--db", "{db}", "--html", "{root}"], Exit.BAD_INPUT, "a folder; name the file"),
    Case("serve", ["--db", "sqlite:///{root}/none.db"], Exit.BAD_INPUT, "no store at"),
    Case("serve", ["--db", "{config}", "--port", "0"], Exit.BAD_INPUT, "file is not a database"),
    Case("demo", ["--dir", "{config}/below-a-file"], Exit.BAD_INPUT, "cannot create it"),
    Case("gdap roles", [], Exit.DONE, ""),
    Case("gdap invite", ["--roles", "Global Administrator", "--auto-extend", "--name", "GA",
                         "--config", "{down}"], Exit.BAD_INPUT, "does not auto-extend"),
    Case("gdap invite", ["--roles", "Directory Readerz", "--name", "x", "--config", "{config}"],
         Exit.BAD_INPUT, "not a built-in role"),
    Case("gdap invite", ["--roles", "Directory Readers", "--name", "x", "--config", "{config}"],
         Exit.BAD_INPUT, "pick one with --region"),
    Case("gdap invite", ["--roles", "Directory Readers", "--name", "x", "--region", "NA",
                         "--config", "{config}"], Exit.NEEDS_PERSON, "code=NotSignedIn"),
    Case("gdap assign", ["--config", "{config}"], Exit.BAD_INPUT, "--customer or --relationship"),
    Case("gdap assign", ["--customer", CUSTOMER, "--group", "x", "--config", "{config}"],
         Exit.BAD_INPUT, "expected ROLE=GROUP"),
    Case("gdap assign", ["--customer", CUSTOMER, "--region", "NA", "--config", "{config}"],
         Exit.NEEDS_PERSON, "code=NotSignedIn"),
    Case("gdap consent", ["--customer", CUSTOMER, "--retry-every", "0", "--config", "{config}"],
         Exit.BAD_INPUT, "more than 0 seconds"),
    Case("gdap consent", ["--customer", CUSTOMER, "--region", "NA", "--config", "{config}"],
         Exit.NEEDS_PERSON, "code=NotSignedIn"),
    Case("gdap status", ["--config", "{down}"], Exit.BAD_INPUT, EMULATOR_DOWN),
    Case("gdap status", ["--expiring-within", "soon", "--config", "{config}"], Exit.BAD_INPUT,
         "expected a span"),
    Case("gdap status", ["--region", "NA", "--config", "{config}"], Exit.NEEDS_PERSON,
         "code=NotSignedIn"),
    Case("emulator serve", ["--host", "10.1.2.3"], Exit.BAD_INPUT, "loopback only"),
    Case("emulator serve", ["--world", "{root}/absent.toml"], Exit.BAD_INPUT,
         "no such world file"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_command_exits_with_the_status_of_what_happened(
    house: House, case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case.browser is not None:
        monkeypatch.setattr("webbrowser.open", browser(house.emu, case.browser))
    control = Control(house.emu)
    if case.fault is not None:
        control.send("POST", "faults", case.fault)
    try:
        result = invoke([*case.command.split(), *house.fill(case.args)])
    finally:
        if case.fault is not None:
            control.send("DELETE", "faults", {})
    assert result.exit_code == case.status, result.output
    assert case.says in " ".join(result.stderr.split()), result.stderr
    if case.status not in (Exit.DONE, Exit.PARTLY_DONE) and not case.prints_result:
        assert result.stdout == "", result.stdout  # a failure prints no half result
        # One error line (Click's own for an option it parses), whatever progress came before.
        assert any(line.startswith(("error: ", "Error: ")) for line in result.stderr.splitlines())
    # Only what is known of code, status, tenant and request id: never "code=none".
    assert not re.search(r"\b(code|tenant|request-id|status)=(none|unknown)\b", result.stderr)


def test_the_exit_table_covers_every_error_class() -> None:
    assert set(EXIT_BY_ERROR_CLASS) == {c.value for c in ErrorClass}
    assert len(set(EXIT_BY_ERROR_CLASS.values())) == len(ErrorClass)
    assert {Exit.DONE, Exit.PARTLY_DONE, Exit.INTERRUPTED}.isdisjoint(EXIT_BY_ERROR_CLASS.values())


def test_a_config_path_nobody_typed_says_where_it_came_from(house: House) -> None:
    absent = house.root / "from-env.toml"
    result = invoke(["config", "show"], env={"CSPGRAPH_CONFIG": str(absent)})
    assert result.exit_code == Exit.BAD_INPUT
    assert f"{absent} (from $CSPGRAPH_CONFIG): no such configuration file" in result.stderr
    empty = house.root / "no-regions.toml"
    empty.write_text('cloud = "global"\n')
    result = invoke(["whoami"], env={"CSPGRAPH_CONFIG": str(empty)})
    assert result.exit_code == Exit.BAD_INPUT
    assert "(from $CSPGRAPH_CONFIG): regions: no region is configured" in result.stderr
    assert "run `cspgraph setup --region NA" in result.stderr


# -- Ctrl-C ----------------------------------------------------------------------------------------


Start = Callable[[list[str]], "subprocess.Popen[str]"]


@pytest.fixture
def start() -> Iterator[Start]:
    """``start(args)`` runs ``cspgraph ARGS`` as a child; a child a failed test left running is
    killed afterwards."""
    started: list[subprocess.Popen[str]] = []

    def run(args: list[str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [CSPGRAPH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def interrupt(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def read_stderr_until(proc: subprocess.Popen[str], text: str) -> str:
    assert proc.stderr is not None
    seen = ""
    while text not in seen:
        line = proc.stderr.readline()
        assert line, f"{proc.args} ended before saying {text!r}: {seen}"
        seen += line
    return seen


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def whole_url_line(text: str) -> str:
    """The sign-in URL's line: the whole URL on one line, however long (never wrapped)."""
    line = next(line for line in text.splitlines() if "/authorize?" in line)
    assert len(line) > 200, line
    for part in ("response_type=code", "redirect_uri=http", "code_challenge_method=S256"):
        assert part in line, line
    return line


def test_ctrl_c_while_login_waits_for_the_browser_exits_130(house: House, start: Start) -> None:
    proc = start(["login", "-c", CUSTOMER, "--no-browser", "--config", str(house.config)])
    whole_url_line(read_stderr_until(proc, "code_challenge_method"))
    status, err = interrupt(proc)
    assert status == Exit.INTERRUPTED, err
    assert "interrupted" in err and "Traceback" not in err


def test_ctrl_c_while_onboarding_waits_exits_130_and_says_how_to_continue(
    house: House, start: Start
) -> None:
    proc = start(["onboard", "--domain", "ctrlc.onmicrosoft.com", "--name", "Ctrl C",
                  "--region", "NA", "--state-dir", str(house.root / "onboarding"),
                  "--password-file", str(house.root / "ctrlc-admin.txt"),
                  "--config", str(house.config)])  # fmt: skip
    read_stderr_until(proc, "created")  # then the real 3-minute wait begins
    status, err = interrupt(proc)
    assert status == Exit.INTERRUPTED, err
    assert "run the same command again to continue" in err and "Traceback" not in err


def test_ctrl_c_during_a_sync_exits_130_and_says_it_resumes(house: House, start: Start) -> None:
    control = Control(house.emu)
    issued = len(control.tokens())
    control.send("POST", "faults", {"host": "graph", "kind": "latency", "latency": 2.0})
    try:
        proc = start(["sync", "--db", f"sqlite:///{house.root / 'ctrl-c.db'}", "--full",
                      "--config", str(house.config)])  # fmt: skip
        # A token issued for the run: it is past start-up and waiting on Graph.
        wait_for(lambda: len(control.tokens()) > issued, "a token for the sync")
        status, err = interrupt(proc)
    finally:
        control.send("DELETE", "faults", {})
    assert status == Exit.INTERRUPTED, err
    assert "run the same command again to resume" in err and "Traceback" not in err


# -- JSON when piped, or with --json ---------------------------------------------------------------


@dataclass(frozen=True)
class Data:
    command: str
    args: list[str]
    shows: Callable[[Any], bool]  # something the JSON must hold
    browser: str | None = None  # "agent" or "admin": a sign-in the command opens a browser for


DATA = [
    Data("config init", ["--config", "{root}/json-init/config.toml"],
         lambda d: d["written"].endswith("config.toml")),
    Data("config show", ["--config", "{config}"], lambda d: set(d["regions"]) == {"NA", "EU"}),
    Data("token", ["-c", CUSTOMER, "--config", "{config}"],
         lambda d: d["appid"] == DEMO_PARTNERS["NA"]["client_id"]),
    Data("login", ["-c", CUSTOMER, "--timeout", "30", "--config", "{root}/agent/config.toml"],
         lambda d: d["username"] == "agent@partner.com", browser="agent"),
    Data("logout", ["--config", "{config}"], lambda d: d["still_signed_in"] == []),
    Data("whoami", ["--config", "{config}"], lambda d: set(d["identities"]) == {"NA", "EU"}),
    Data("call", ["GET", "/organization", "-c", CUSTOMER, "--config", "{config}"],
         lambda d: len(d["value"]) == 1),
    Data("setup", ["--region", "NA", "--dry-run", "--config", "{config}"],
         lambda d: d["client_id"] == DEMO_PARTNERS["NA"]["client_id"], browser="admin"),
    Data("customers list", ["--config", "{config}"],
         lambda d: NEW_CUSTOMER in {c["domain"] for c in d}),
    Data("customers create", ["--domain", NEW_CUSTOMER, "--name", "Contract Co", "--region", "NA",
                              "--password-file", "{root}/pw.txt", "--config", "{config}"],
         lambda d: d["created"] is False),
    Data("sync", ["--customers", CUSTOMER, "--db", "{db}", "--config", "{config}"],
         lambda d: d["totals"]["status"] == {"ok": 1}),
    Data("report", ["--db", "{db}"], lambda d: d["fleet"]["customers"] >= 1),
    Data("runs", ["--db", "{db}"],
         lambda d: d["runs"] and not any(r["on_workers"] for r in d["runs"])),
    Data("check", ["--db", "{db}"], lambda d: {"findings", "unknown", "changes"} <= set(d)),
    Data("export", ["--db", "{db}", "--out", "{root}/export-json"],
         lambda d: d["rows"]["customers"] >= 1),
    Data("notify", ["--db", "{db}", "--webhook", "https://hooks.slack.com/services/T/B/x",
                    "--dry-run"], lambda d: d["dry_run"] is True and d["kind"] == "slack"),
    Data("gdap roles", [], lambda d: len(d["roles"]) >= 15 and d["cspgraph_needs"]),
]  # fmt: skip


@pytest.mark.parametrize("flag", [[], ["--json"]], ids=["piped", "--json"])
@pytest.mark.parametrize("data", DATA, ids=lambda d: d.command)
def test_each_command_prints_json_when_piped_or_asked(
    house: House, data: Data, flag: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if data.browser is not None:
        monkeypatch.setattr("webbrowser.open", browser(house.emu, data.browser))
    if data.browser == "agent" and not (house.root / "agent").exists():
        copy_config(house.config, house.root / "agent")  # its own token cache: others see no agent
    args = house.fill(data.args)
    if data.command == "config init":
        shutil.rmtree(Path(args[1]).parent, ignore_errors=True)
    result = invoke([*data.command.split(), *args, *flag])
    assert result.exit_code == Exit.DONE, result.output
    assert data.shows(json.loads(result.stdout)), result.stdout


@pytest.mark.parametrize(
    "args", [["config", "show"], ["whoami"], ["customers", "list"], ["token", "-c", CUSTOMER]]
)
def test_json_on_a_terminal_when_asked_and_people_s_text_otherwise(
    house: House, args: list[str]
) -> None:
    asked = run_on_terminal([*args, "--json", "--config", str(house.config)])
    assert asked.returncode == 0, asked.output
    assert isinstance(json.loads(asked.output), dict | list)
    shown = run_on_terminal([*args, "--config", str(house.config)])
    assert shown.returncode == 0, shown.output
    with pytest.raises(ValueError):
        json.loads(shown.output)


def test_token_times_show_the_time_on_a_terminal(house: House) -> None:
    shown = run_on_terminal(["token", "-c", CUSTOMER, "--config", str(house.config)])
    assert shown.returncode == 0, shown.output
    exp = next(line for line in shown.output.splitlines() if " exp " in f" {line} ")
    assert re.search(r"\d{10} \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, in \d+ min\)", exp), exp


def test_setup_prints_its_sign_in_url_whole_into_a_file(
    house: House, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("webbrowser.open", browser(house.emu, "admin", opens=False))
    result = invoke(["setup", "--region", "NA", "--dry-run", "--config", str(house.config)])
    assert result.exit_code == Exit.DONE, result.output
    assert whole_url_line(result.stderr).startswith("https://127.0.0.1:")


def test_onboard_prints_its_outcome_as_json_when_piped(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = make_emulator(lambda: demo_world(customers=1))
    config = tmp_path / "config.toml"
    init = ["config", "init", "--from-emulator", str(emu.endpoints_file), "--config", str(config)]
    assert invoke(init).exit_code == 0
    result = invoke(
        ["onboard", "--domain", "piped.onmicrosoft.com", "--name", "Piped", "--region", "NA",
         "--emulator-clock", "--initial-wait", "3m", "--retry-every", "30s", "--budget", "10m",
         "--state-dir", str(tmp_path / "state"), "--password-file", str(tmp_path / "pw.txt"),
         "--config", str(config)]
    )  # fmt: skip
    assert result.exit_code == Exit.DONE, result.output
    assert json.loads(result.stdout)["state"] == "done"


def test_demo_tells_its_story_on_stderr_and_prints_what_it_made_as_json(tmp_path: Path) -> None:
    result = invoke(["demo", "--dir", str(tmp_path / "demo"), "--customers", "1"])
    assert result.exit_code == Exit.DONE, result.output
    made = json.loads(result.stdout)
    assert made["sync"]["ok"] is True and made["onboarding"]["state"] == "done"
    assert Path(made["report"]).is_file()
    assert "1. The emulated cloud" in result.stderr and "Where things are" in result.stderr


def test_the_emulator_prints_its_origins_as_json_and_stops_on_ctrl_c(
    tmp_path: Path, start: Start
) -> None:
    proc = start(["emulator", "serve", "--customers", "1", "--state-dir", str(tmp_path)])
    assert proc.stdout is not None
    text = ""
    while not text.rstrip().endswith("}"):
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        text += line
    origins = json.loads(text)
    assert origins["graph"].startswith("https://127.0.0.1:")
    assert origins["endpoints_file"] == str((tmp_path / "endpoints.json").resolve())
    # The ports are bound when the origins are printed; the file follows once they serve.
    wait_for(Path(origins["endpoints_file"]).is_file, "the endpoints file")
    read_stderr_until(proc, "Ctrl-C to stop.")
    status, err = interrupt(proc)
    assert status == Exit.DONE, err  # Ctrl-C is how the emulator stops


# -- every command ---------------------------------------------------------------------------------


def command_paths(group: Any = None, prefix: tuple[str, ...] = ()) -> list[str]:
    group = group or typer.main.get_command(app)
    paths = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            paths += command_paths(command, (*prefix, name))
        else:
            paths.append(" ".join((*prefix, name)))
    return sorted(paths)


# Commands that print nothing but their result's JSON when asked, and those covered above by
# their own tests (onboard, demo and the emulator need a world clock, a run or a process; the
# gdap commands a signed-in technician: tests/gdap; the worker prints no result, it runs until
# stopped: tests/scale; serve runs until Ctrl-C: tests/dashboard/test_serve_command.py).
OWN_JSON_TESTS = {
    "worker",
    "onboard",
    "demo",
    "emulator serve",
    "gdap invite",
    "gdap status",
    "gdap assign",
    "gdap consent",
    "serve",
}
# The GDAP fleet's commands need a signed-in service account and a GDAP world:
# tests/fleet_gdap (test_delegated.py, test_onboard_existing.py) hold their JSON.
OWN_JSON_TESTS |= {
    "customers invite",
    "service-account sign-in",
    "service-account status",
    "service-account sign-out",
}


def test_every_command_has_its_exit_and_json_cases() -> None:
    commands = set(command_paths())
    assert commands == {c.command for c in CASES}
    assert commands == {d.command for d in DATA} | OWN_JSON_TESTS


@pytest.mark.parametrize("path", command_paths())
def test_help_answers_to_h_and_names_values_not_types(path: str) -> None:
    shown = invoke([*path.split(), "-h"])
    assert shown.exit_code == 0, shown.output
    usage = shown.stdout.splitlines()[0]
    assert usage.startswith(f"Usage: cspgraph {path} [OPTIONS]") and "{" not in usage, usage
    listed = shown.stdout.split("Arguments:")[-1]
    for python_type in ("<str>", "<int", "<float", "<path>", "<list[", "range>", "<bool>"):
        assert python_type not in listed, shown.stdout
    assert "--path" not in shown.stdout  # the old spelling of --config is read, not shown


def test_an_80_column_terminal_folds_long_domains_and_names_and_never_cuts_them(
    house: House,
) -> None:
    # The onmicrosoft domains are longer than their column; Rich's default ends them in "…".
    args = ["customers", "list", "--config", str(house.config)]
    listed = json.loads(invoke([*args, "--json"]).stdout)
    shown = run_on_terminal(args, columns=80)
    assert shown.returncode == Exit.DONE, shown.output
    assert "…" not in shown.output
    rows = [line.split("│") for line in shown.output.splitlines() if line.startswith("│")]
    for column, key in ((2, "domain"), (3, "company_name")):
        cells = "".join(row[column].replace(" ", "") for row in rows)  # folded pieces rejoined
        for customer in listed:
            assert customer[key].replace(" ", "") in cells
