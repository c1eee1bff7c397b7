"""Every command's output, piped and on a terminal, and the log and audit files they write, scanned
for the secrets of a real set-up: the partner apps' client secrets, the store's database password,
a new customer's admin password, a webhook URL, and the access tokens the commands used (no
JWT-shaped string at all). The commands run as a person runs them (the installed `cspgraph`,
`--verbose --log-file`), against the emulator and a PostgreSQL store whose URL carries a password.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import DEMO_PARTNERS, load_world_data
from cspgraph.cli.common import Exit
from tests.security.test_call_audit import writing_world
from tests.terminal import CSPGRAPH, run_on_terminal
from tests.unit import pg_fixture

pg_database = pg_fixture.pg_database
pytestmark = pytest.mark.reliability  # two dozen command runs; `make test` runs it

DB_PASSWORD = "Scan-Db-Pa55-91ab"
WEBHOOK_SECRET = "XyZwebhookSecret0123456789"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.")

# Each command as a person types it; {out} is a directory of this run's own.
# fmt: off
COMMANDS: list[list[str]] = [
    ["config", "show"],
    ["whoami"],
    ["token", "--customer", "customer.com"],
    ["customers", "list"],
    ["customers", "create", "--domain", "{mode}-scan.onmicrosoft.com", "--name", "Scan Co",
     "--region", "NA", "--password-file", "{out}/admin-password.txt"],
    ["sync", "--customers", "customer.com"],
    ["report"],
    ["check"],
    ["export", "--out", "{out}/export"],
    ["notify", "--dry-run", "--webhook-env", "SCAN_WEBHOOK", "--kind", "slack"],
    ["gdap", "roles"],
    ["gdap", "status", "--region", "NA"],
    ["call", "GET", "/users", "--top", "2", "--customer", "customer.com"],
    ["call", "POST", "/groups", "--customer", "customer.com", "--data",
     '{"displayName": "Scan {mode}", "mailEnabled": false, "mailNickname": "scan{mode}", '
     '"securityEnabled": true}'],
]
# fmt: on
# `gdap status` exits 3 when a customer's GDAP needs a person (none has GDAP in this world).
ALLOWED = {"gdap status": {Exit.DONE, Exit.NEEDS_PERSON}}


@dataclass
class SetUp:
    root: Path
    env: dict[str, str]
    log: Path
    audit: Path
    secrets: dict[str, str] = field(default_factory=dict)

    def args(self, command: list[str], mode: str) -> list[str]:
        out = self.root / mode
        out.mkdir(exist_ok=True)
        filled = [a.replace("{out}", str(out)).replace("{mode}", mode) for a in command]
        return ["--verbose", "--log-file", str(self.log), *filled]

    def assert_clean(self, text: str, where: str) -> None:
        for name, value in self.secrets.items():
            assert value not in text, f"the {name} is in {where}"
        assert not JWT.search(text), f"a token is in {where}: {JWT.search(text)}"


@pytest.fixture(scope="module")
def setup(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SetUp]:
    root = tmp_path_factory.mktemp("secret-scan")
    config = root / "config.toml"
    db = make_url(pg_database).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    env = {
        **os.environ,
        "CSPGRAPH_CONFIG": str(config),
        "CSPGRAPH_DB": db,  # the local server trusts local connections: the password rides along
        "CSPGRAPH_AUDIT_FILE": str(root / "audit.jsonl"),
        "SCAN_WEBHOOK": f"https://hooks.slack.com/services/T000/B000/{WEBHOOK_SECRET}",
    }
    world = writing_world()
    with Emulator(
        lambda: load_world_data(world, source="<scan>"), state_dir=root / "emu"
    ) as emulator:
        yield from _set_up(emulator, root, env)


def _set_up(emulator: Emulator, root: Path, env: dict[str, str]) -> Iterator[SetUp]:
    made = subprocess.run([CSPGRAPH, "config", "init", "--from-emulator",
                           str(emulator.endpoints_file)], env=env, capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = subprocess.run([CSPGRAPH, "token", "--raw", "--customer", "customer.com"], env=env,
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert token.returncode == 0 and JWT.match(token.stdout), token.stderr
    scan = SetUp(root, env, root / "cspgraph.log", root / "audit.jsonl")
    scan.secrets = {
        **{f"{r} client secret": p["client_secret"] for r, p in DEMO_PARTNERS.items()},
        "database password": DB_PASSWORD,
        "webhook secret": WEBHOOK_SECRET,
        "access token": token.stdout.strip(),  # the cached one the commands below use
    }
    yield scan


def run_all(setup: SetUp, mode: str) -> dict[str, str]:
    """Every command once, piped or on a terminal: its output as the reader got it."""
    outputs: dict[str, str] = {}
    for command in COMMANDS:
        args = setup.args(command, mode)
        name = " ".join(command[:2])
        if mode == "piped":
            done = subprocess.run([CSPGRAPH, *args], env=setup.env, capture_output=True,
                                  text=True, timeout=300, check=False)  # fmt: skip
            status, text = done.returncode, done.stdout + done.stderr
        else:
            shown = run_on_terminal(args, env=setup.env, columns=200)
            status, text = shown.returncode, shown.raw
        assert status in ALLOWED.get(name, {Exit.DONE}), (name, mode, text)
        assert "Traceback" not in text, (name, mode, text)
        outputs[f"`{name}` ({mode})"] = text
    password_file = setup.root / mode / "admin-password.txt"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    setup.secrets[f"{mode} admin password"] = password_file.read_text().strip()
    return outputs


def test_no_output_log_or_audit_line_holds_a_secret(setup: SetUp) -> None:
    outputs = {**run_all(setup, "piped"), **run_all(setup, "terminal")}
    for where, text in outputs.items():
        setup.assert_clean(text, f"the output of {where}")

    log = setup.log.read_text(encoding="utf-8")
    audit = setup.audit.read_text(encoding="utf-8")
    # Something was logged: every Graph request, by method and path, and the audit of the writes.
    assert "GET /v1.0/users: 200" in log and "audit: app " in log
    setup.assert_clean(log, "the log file")
    setup.assert_clean(audit, "the audit file")
    for path in (setup.log, setup.audit):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    entries = [json.loads(line) for line in audit.splitlines()]
    assert [(e["method"], e["path"], e["status"], e["via"]) for e in entries] == [
        ("POST", "/v1.0/groups", 201, "app")
    ] * 2  # one per mode; reads are not audited
    assert all(e["tenant"] and e["partner_tenant"] == "partner.com" for e in entries)

    # Everything the commands wrote — configuration, secrets, the discovery cache,
    # password files, exports, log, audit — is readable by its owner only.
    written = {
        p.relative_to(setup.root).as_posix(): stat.S_IMODE(p.stat().st_mode)
        for p in setup.root.rglob("*")
        if p.is_file() and not p.is_symlink() and "emu" not in p.relative_to(setup.root).parts
    }
    assert {"config.toml", "secrets/NA.secret", "discovery.json", "cspgraph.log", "audit.jsonl",
            "piped/admin-password.txt"} <= set(written)  # fmt: skip
    assert any(name.startswith("piped/export/") for name in written)
    assert {name: mode for name, mode in written.items() if mode & 0o077} == {}
