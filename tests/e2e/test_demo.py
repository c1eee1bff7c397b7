"""`cspgraph demo` end to end, with a small world: emulator, setup, onboarding, sync, report."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from typer.testing import CliRunner

from cspgraph.cli import demo_cmd
from cspgraph.fleet.store import Store


def cli() -> typer.Typer:
    """The demo command as `cspgraph` registers it."""
    app = typer.Typer()
    app.command("demo")(demo_cmd.demo)

    @app.callback()
    def main() -> None:
        """cspgraph"""

    return app


def test_demo_runs_the_whole_story(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        cli(), ["demo", "--dir", str(out), "--customers", "3"], env={"COLUMNS": "160"}
    )
    assert result.exit_code == 0, result.output
    text = result.output
    for heading in ("1. The emulated cloud", "3. The partner-managed app", "4. Onboarding",
                    "5. Fleet sync", "6. The fleet report", "Where things are"):  # fmt: skip
        assert heading in text
    # Set-up found the apps in place and granted what the admin count needs.
    assert text.count("AdminAgents        already done") == 2
    assert "RoleManagement.Read.Directory (application)" in text
    # The propagation shortcut is said out loud, and the new customer got through it.
    assert "Demo shortcut" in text and "5s" in text
    assert f"{demo_cmd.NEW_CUSTOMER_DOMAIN}: tenant" in text and "— done" in text
    # 3 DAP customers, the new one, and the four reseller customers of the GDAP half (the other
    # three GDAP tenants are no reseller customers, so Partner Center does not list them).
    assert re.search(r"customers\s+8\s+8 ok", text), text
    assert "demo finished in" in text

    report = out / "report.html"
    assert report.is_file() and "Tailwind Traders" in report.read_text(encoding="utf-8")
    with Store.open(f"sqlite:///{out / 'cspgraph.db'}") as store:
        customers = store.customer_summaries()
    assert len(customers) == 8
    assert all(c.status == "ok" for c in customers)
    # Admins are counted (set-up granted RoleManagement.Read.Directory), the new customer too.
    assert all(c.admins == 1 for c in customers)
    new = next(c for c in customers if c.domain == demo_cmd.NEW_CUSTOMER_DOMAIN)
    assert "no Intune licence" in (new.status_reason or "")
    assert (out / "config.toml").is_file()
    assert (out / "secrets" / "NA.secret").stat().st_mode & 0o077 == 0

    # A second run starts from a fresh world and ends the same way.
    again = CliRunner().invoke(cli(), ["demo", "--dir", str(out), "--customers", "3"])
    assert again.exit_code == 0, again.output
    with Store.open(f"sqlite:///{out / 'cspgraph.db'}") as store:
        assert len(store.customer_summaries()) == 8
