"""Files the commands write for the user are written where asked and nowhere else: a link at an
output path is replaced, never followed (the file it points to is left as it was), and a file
given as a store that is not a database is not touched, not even its mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from typer.testing import CliRunner, Result

from csp_emulator.server import Emulator
from cspgraph.cli.main import app
from cspgraph.fleet.store import Store


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def empty_store(where: Path) -> Path:
    path = where / "fleet.db"
    Store.open(f"sqlite:///{path}").close()
    return path


def victim(where: Path) -> Path:
    path = where / "victim.txt"
    path.write_text("keep me\n")
    path.chmod(0o644)
    return path


def test_an_export_replaces_a_link_at_its_path_and_leaves_the_linked_file_alone(
    tmp_path: Path,
) -> None:
    db, target = empty_store(tmp_path), victim(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "admins.csv").symlink_to(target)
    result = invoke("export", "--db", str(db), "--out", str(out), "--only", "admins", "--json")
    assert result.exit_code == 0, result.output
    assert target.read_text() == "keep me\n" and stat.S_IMODE(target.stat().st_mode) == 0o644
    written = out / "admins.csv"
    assert not written.is_symlink()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert written.read_text(encoding="utf-8-sig").startswith("customer")


def test_the_html_report_replaces_a_link_at_its_path_and_leaves_the_linked_file_alone(
    tmp_path: Path,
) -> None:
    db, target = empty_store(tmp_path), victim(tmp_path)
    page = tmp_path / "report.html"
    page.symlink_to(target)
    result = invoke("report", "--db", str(db), "--html", str(page), "--json")
    assert result.exit_code == 0, result.output
    assert target.read_text() == "keep me\n" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not page.is_symlink() and "<html" in page.read_text()
    assert stat.S_IMODE(page.stat().st_mode) == 0o600


def test_a_store_that_is_not_a_database_is_refused_without_changing_its_mode(
    tmp_path: Path,
) -> None:
    notes = victim(tmp_path)
    result = invoke("report", "--db", str(notes))
    assert result.exit_code == 2, result.output
    assert "file is not a database" in result.output
    assert "narrowed" not in result.output
    assert stat.S_IMODE(notes.stat().st_mode) == 0o644 and notes.read_text() == "keep me\n"


def test_the_demo_refuses_a_state_directory_another_emulator_serves_from(
    tmp_path: Path,
) -> None:
    from csp_emulator.world.worldfile import demo_world

    demo = tmp_path / "demo"
    with Emulator(lambda: demo_world(customers=2), state_dir=demo / "emulator"):
        (demo / "config.toml").write_text("# the user's\n")
        result = invoke("demo", "--dir", str(demo))
    assert result.exit_code == 2, result.output
    assert "another emulator (pid" in result.output
    assert f"pid {os.getpid()}" in result.output
    assert (demo / "config.toml").read_text() == "# the user's\n"  # nothing cleared first
