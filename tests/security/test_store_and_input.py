"""The store and the command line against a careless operator: a database password never printed
(in the ``store:`` line, in errors), a database that cannot be used is one clear line with exit 2,
the store's files readable by their owner only, undecodable files and unusable URLs refused
without a traceback, and a new customer's admin password never on a pipe."""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from csp_emulator.server import Emulator
from cspgraph.cli.common import Exit
from cspgraph.cli.main import app
from cspgraph.config import write_private_file
from cspgraph.fleet.store import Store, StoreOpenError
from cspgraph.fleet.store_url import masked, open_error
from tests.terminal import run_on_terminal
from tests.unit import pg_fixture

pg_database = pg_fixture.pg_database

DB_PASSWORD = "Db-Pa55word-7f3c9e"  # the secret the tests look for
CUSTOMER = "customer.com"


def invoke(args: list[str], **kwargs: Any) -> Result:
    result = CliRunner().invoke(app, args, **kwargs)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception,
        result.output,
    )
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def config(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store-input") / "config.toml"
    made = invoke(["config", "init", "--from-emulator", str(emulator.endpoints_file), "--config",
                   str(path)])  # fmt: skip
    assert made.exit_code == 0, made.output
    return path


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which SQLite alone would create 0644 files."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the database password -------------------------------------------------------------------------


def test_a_password_in_a_store_url_is_masked_wherever_it_is_written() -> None:
    url = f"postgresql+psycopg://sync:{DB_PASSWORD}@db.example/fleet"
    assert masked(url) == "postgresql+psycopg://sync:***@db.example/fleet"
    assert masked(f"postgresql+psycopg://db/fleet?password={DB_PASSWORD}&sslmode=require") == (
        "postgresql+psycopg://db/fleet?password=***&sslmode=require"
    )
    assert masked("sqlite:///fleet.db") == "sqlite:///fleet.db" == masked("sqlite:///fleet.db")
    assert masked("postgresql+psycopg://sync@db/fleet") == "postgresql+psycopg://sync@db/fleet"
    # A driver that echoes the password (encoded or not) has it masked too.
    encoded = "p%40ss%2Fw0rd"
    echoed = open_error(f"postgresql+psycopg://u:{encoded}@h/d", ValueError("bad p@ss/w0rd"))
    assert "p@ss/w0rd" not in echoed and encoded not in echoed and "***" in echoed


@pytest.mark.parametrize("command", ["report", "check", "export", "notify"])
def test_an_unreachable_database_is_one_masked_line_and_exit_2(command: str) -> None:
    url = f"postgresql+psycopg://sync:{DB_PASSWORD}@127.0.0.1:1/fleet"
    extra = {
        "export": ["--out", "/nonexistent-export"],
        "notify": ["--dry-run", "--webhook", "https://hooks.slack.com/services/T/B/x"],
    }.get(command, [])
    for args, env in (([command, "--db", url, *extra], None),
                      ([command, *extra], {"CSPGRAPH_DB": url})):  # fmt: skip
        result = invoke(args, env=env)
        assert result.exit_code == Exit.BAD_INPUT, result.output
        assert DB_PASSWORD not in result.output
        assert "postgresql+psycopg://sync:***@127.0.0.1:1/fleet" in result.stderr
        assert "Connection refused" in result.stderr and result.stderr.count("\n") == 1


def test_sync_to_an_unreachable_database_is_exit_2_without_its_password(config: Path) -> None:
    url = f"postgresql+psycopg://sync:{DB_PASSWORD}@127.0.0.1:1/fleet"
    result = invoke(["sync", "--customers", CUSTOMER, "--db", url, "--config", str(config)])
    assert result.exit_code == Exit.BAD_INPUT and DB_PASSWORD not in result.output
    assert "sync:***@" in result.stderr


def test_the_store_line_after_a_sync_on_a_terminal_masks_the_password(
    config: Path, pg_database: str
) -> None:
    # The local server trusts local connections, so the password is carried but not needed.
    url = make_url(pg_database).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    shown = run_on_terminal(["sync", "--customers", CUSTOMER, "--config", str(config)],
                            env={"CSPGRAPH_DB": url})  # fmt: skip
    assert shown.returncode == Exit.DONE, shown.output
    assert DB_PASSWORD not in shown.output
    # (the hint names the command as this shell can run it: .venv/bin/cspgraph, or cspgraph)
    store = re.escape(masked(url))
    assert re.search(rf"store: {store}   next: \S*cspgraph report --db {store}", shown.output)


# -- unusable URLs and paths -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"mysql://root:{DB_PASSWORD}@127.0.0.1/test", "unsupported database 'mysql'"),
        (f"oracle://u:{DB_PASSWORD}@h/d", "unsupported database 'oracle'"),
        ("sqlite:////proc/cspgraph-cannot-be-here/fleet.db", "sqlite:////proc/"),
    ],
)
def test_a_store_that_cannot_be_opened_is_refused_with_a_clear_line(
    config: Path, url: str, says: str
) -> None:
    result = invoke(["sync", "--customers", CUSTOMER, "--db", url, "--config", str(config)])
    assert result.exit_code == Exit.BAD_INPUT, result.output
    assert says in result.stderr and DB_PASSWORD not in result.output
    with pytest.raises(StoreOpenError):
        Store.open(url)


def test_an_unwritable_store_directory_is_exit_2(config: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        where = "/proc/1/cspgraph/fleet.db"  # root writes anywhere but in /proc
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        where = str(locked / "sub" / "fleet.db")
    result = invoke(["sync", "--customers", CUSTOMER, "--db", where, "--config", str(config)])
    assert result.exit_code == Exit.BAD_INPUT, result.output
    assert result.stderr.startswith("error: --db: sqlite:///") and result.stderr[-1] == "\n"


def test_report_on_a_file_that_is_not_a_database_is_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(4096))
    result = invoke(["report", "--db", str(junk)])
    assert result.exit_code == Exit.BAD_INPUT
    assert "file is not a database" in result.stderr


# -- undecodable files -----------------------------------------------------------------------------


def test_a_configuration_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_bytes(b'cloud = "gl\xffobal"\n')
    for args in (["config", "show", "--config", str(bad)], ["whoami", "--config", str(bad)]):
        result = invoke(args)
        assert result.exit_code == Exit.BAD_INPUT, result.output
        assert "not UTF-8 text (undecodable byte at offset 11)" in result.stderr


def test_a_customers_file_that_is_not_utf8_is_a_clear_error(config: Path, tmp_path: Path) -> None:
    listed = tmp_path / "customers.txt"
    listed.write_bytes(b"customer.com\n\xfe\xffbad\n")
    result = invoke(["sync", "--customers-file", str(listed), "--db", str(tmp_path / "f.db"),
                     "--config", str(config)])  # fmt: skip
    assert result.exit_code == Exit.BAD_INPUT, result.output
    assert f"--customers-file {listed}: not UTF-8 text" in result.stderr


def test_a_world_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    world = tmp_path / "world.toml"
    world.write_bytes(b'[[tenants]]\nname = "\xff"\n')
    result = invoke(["emulator", "serve", "--world", str(world)])
    assert result.exit_code == Exit.BAD_INPUT and "UTF-8" in result.stderr


# -- file modes ------------------------------------------------------------------------------------


def test_a_new_store_and_its_wal_files_are_readable_by_their_owner_only(
    tmp_path: Path, umask_022: None
) -> None:
    file = tmp_path / "new" / "fleet.db"
    store = Store.open(str(file))
    with store, store.engine.connect() as conn:  # WAL mode: the -wal and -shm files exist now
        conn.exec_driver_sql("SELECT count(*) FROM customers").fetchall()
        wal = [file.with_name(file.name + s) for s in ("-wal", "-shm")]
        assert all(p.exists() for p in wal)
        assert {p.name: mode(p) for p in [file, *wal]} == {
            "fleet.db": 0o600, "fleet.db-wal": 0o600, "fleet.db-shm": 0o600,
        }  # fmt: skip
    assert mode(file.parent) == 0o700


def test_an_existing_store_readable_by_others_is_narrowed(tmp_path: Path) -> None:
    file = tmp_path / "fleet.db"
    Store.open(str(file)).close()
    file.chmod(0o644)
    Store.open(str(file)).close()
    assert mode(file) == 0o600


def test_a_private_file_is_never_written_through_a_planted_link(
    tmp_path: Path, umask_022: None
) -> None:
    target = tmp_path / "secret.txt"
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    # The names a neighbour could predict (the old one was pid and thread): the secret goes to
    # a fresh one, never through a link.
    planted = {".secret.txt.tmp", f".secret.txt.{os.getpid()}.{threading.get_ident()}.tmp"}
    for name in planted:
        (tmp_path / name).symlink_to(victim)
    write_private_file(target, "the secret")
    assert victim.read_text() == "untouched"
    assert target.read_text() == "the secret" and mode(target) == 0o600
    leftovers = {p.name for p in tmp_path.iterdir()} - {"secret.txt", "victim.txt"}
    assert leftovers == planted


# -- a new customer's admin password ---------------------------------------------------------------


def test_the_admin_password_is_refused_to_a_pipe_and_shown_on_a_terminal(
    config: Path, tmp_path: Path
) -> None:
    domain = "pty-admin.onmicrosoft.com"
    args = ["customers", "create", "--domain", domain, "--name", "Pty Admin", "--region", "NA",
            "--config", str(config)]  # fmt: skip
    piped = invoke(args)
    assert piped.exit_code == Exit.BAD_INPUT and "pass --password-file FILE" in piped.stderr
    listed = invoke(["customers", "list", "--json", "--config", str(config)])
    assert domain not in listed.stdout  # refused before anything was created
    shown = run_on_terminal(args)
    assert shown.returncode == Exit.DONE, shown.output
    assert f"password of admin@{domain} (shown once, keep it now): " in shown.output
