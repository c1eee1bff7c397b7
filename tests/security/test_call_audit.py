"""The audit trail of `cspgraph call`: a line for every write in a customer tenant, whatever its
outcome — a created group (201), a refused write (403), a deletion (204) — and none for reads;
in the audit file (0600) and in the log."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import demo_world_data
from cspgraph.cli.common import Exit
from cspgraph.cli.main import app
from tests.conftest import MakeEmulator


def writing_world() -> dict[str, Any]:
    """The demo world (one customer) whose partner apps may also write groups."""
    data: dict[str, Any] = demo_world_data(1, seed=3, gdap=False)
    for tenant in data["tenant"]:
        for registered in tenant.get("app", []):
            granted = registered["application_permissions"]
            registered["application_permissions"] = [*granted, "Group.ReadWrite.All"]
    return data


def invoke(args: list[str], env: dict[str, str]) -> Result:
    result = CliRunner().invoke(app, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_every_write_is_audited_with_its_status_and_reads_are_not(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu: Emulator = make_emulator(writing_world())
    config = tmp_path / "config.toml"
    audit = tmp_path / "state" / "audit.jsonl"
    log = tmp_path / "cspgraph.log"
    env = {"CSPGRAPH_CONFIG": str(config), "CSPGRAPH_AUDIT_FILE": str(audit)}
    assert (
        invoke(["config", "init", "--from-emulator", str(emu.endpoints_file)], env).exit_code == 0
    )
    call = ["--log-file", str(log), "call", "--customer", "customer.com"]
    group = {"displayName": "Audited", "mailEnabled": False, "mailNickname": "audited",
             "securityEnabled": True}  # fmt: skip

    assert invoke([*call, "GET", "/users", "--top", "1"], env).exit_code == Exit.DONE
    assert not audit.exists()  # a read leaves no audit line
    made = invoke([*call, "POST", "/groups", "--data", json.dumps(group)], env)
    assert made.exit_code == Exit.DONE, made.output
    group_id = json.loads(made.stdout)["id"]
    refused = invoke([*call, "PATCH", "/organization/none-such", "--data", "{}"], env)
    assert refused.exit_code != Exit.DONE
    gone = invoke([*call, "DELETE", f"/groups/{group_id}"], env)
    assert gone.exit_code == Exit.DONE, gone.output

    entries: list[dict[str, Any]] = [json.loads(x) for x in audit.read_text().splitlines()]
    assert [(e["method"], e["path"], e["status"], e["outcome"]) for e in entries] == [
        ("POST", "/v1.0/groups", 201, "ok"),
        ("PATCH", "/v1.0/organization/none-such", entries[1]["status"], entries[1]["outcome"]),
        ("DELETE", f"/v1.0/groups/{group_id}", 204, "ok"),
    ]
    assert entries[1]["status"] >= 400 and entries[1]["outcome"] != "ok"
    assert {e["who"] for e in entries} == {f"app {entries[0]['client_id']} (partner partner.com)"}
    assert all(e["tenant"] and e["at"].endswith("Z") for e in entries)
    assert "Audited" not in audit.read_text()  # the request body is never recorded
    assert stat.S_IMODE(audit.stat().st_mode) == 0o600
    assert stat.S_IMODE(audit.parent.stat().st_mode) == 0o700
    assert log.read_text().count("audit: app ") == 3
