"""`cspgraph serve` as people run it: where it listens as JSON when piped, Ctrl-C exits 130
cleanly, a taken port or a missing or junk store is one clear line with status 2, and an access
token generated into a private file (never printed) for an address other than loopback."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from cspgraph.cli.common import Exit
from cspgraph.fleet.store import Store
from tests.dashboard.fleets import known_fleet_with_runs
from tests.terminal import CSPGRAPH

Start = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('serve') / 'fleet.db'}"
    with Store.open(url) as store:
        known_fleet_with_runs(store)
    return url


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    started: list[subprocess.Popen[str]] = []

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        import os

        environment = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), **(env or {})}
        proc = subprocess.Popen(
            [CSPGRAPH, "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=environment,
        )  # fmt: skip
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def listening(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The JSON document the command prints once it listens (stdout is a pipe)."""
    assert proc.stdout is not None
    text = ""
    while not text.rstrip().endswith("}"):
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        text += line
    data: dict[str, Any] = json.loads(text)
    return data


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=30)
    conn.request("GET", parts.path or "/", headers=headers or {})
    status = conn.getresponse().status
    conn.close()
    return status


def test_serves_until_ctrl_c_which_exits_130_cleanly(db: str, start: Start) -> None:
    proc = start("--db", db, "--port", "0")
    shown = listening(proc)
    assert shown["url"].startswith("http://127.0.0.1:") and shown["token_required"] is False
    assert status_of(shown["url"]) == 200
    assert status_of(shown["url"] + "customers") == 200
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == Exit.INTERRUPTED, err
    assert "dashboard stopped" in err and "Traceback" not in err


def test_a_taken_port_is_one_clear_line(db: str, start: Start) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start("--db", db, "--port", str(port))
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == Exit.BAD_INPUT
    assert err.strip() == f"error: port {port} on 127.0.0.1 is taken (another dashboard?); " \
        "pass another --port, or 0"  # fmt: skip


def test_a_missing_or_junk_store_is_refused(tmp_path: Path, start: Start) -> None:
    missing = start("--db", f"sqlite:///{tmp_path / 'none.db'}", "--port", "0")
    _, err = missing.communicate(timeout=60)
    assert missing.returncode == Exit.BAD_INPUT and "no store at" in err
    assert not (tmp_path / "none.db").exists()  # not created empty
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database, just some bytes\n" * 100)
    junk.chmod(0o600)
    proc = start("--db", f"sqlite:///{junk}", "--port", "0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == Exit.BAD_INPUT, err
    assert err.strip() == f"error: --db: sqlite:///{junk}: file is not a database"


def test_another_address_gets_a_generated_token_in_a_private_file(
    db: str, start: Start, tmp_path: Path
) -> None:
    token_file = tmp_path / "dash" / "token"
    proc = start("--db", db, "--host", "0.0.0.0", "--port", "0", "--token-file", str(token_file))
    shown = listening(proc)
    token = token_file.read_text().strip()
    assert len(token) >= 32
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert shown["token_required"] is True and shown["token_file"] == str(token_file)
    local = shown["url"].replace("0.0.0.0", "127.0.0.1")
    assert status_of(local) == 401
    assert status_of(local, {"Authorization": f"Bearer {token}"}) == 200
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == Exit.INTERRUPTED
    assert token not in out + err + json.dumps(shown)  # said where it is, never what it is
    assert str(token_file) in err
    # The next start reads the same file: a bookmark keeps working.
    again = start("--db", db, "--host", "0.0.0.0", "--port", "0", "--token-file", str(token_file))
    listening(again)
    assert token_file.read_text().strip() == token
    again.send_signal(signal.SIGINT)
    again.communicate(timeout=60)


def test_a_weak_token_is_refused(db: str, start: Start, tmp_path: Path) -> None:
    weak = tmp_path / "weak"
    weak.write_text("1234\n")
    proc = start("--db", db, "--host", "0.0.0.0", "--port", "0", "--token-file", str(weak))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == Exit.BAD_INPUT and "at least 16 characters" in err
    quoted = tmp_path / "quoted"
    quoted.write_text('long-enough-but-has-a-"quote"-in-it\n')
    proc = start("--db", db, "--host", "0.0.0.0", "--port", "0", "--token-file", str(quoted))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == Exit.BAD_INPUT and "letters, digits and - . _ ~" in err
    env = start("--db", db, "--port", "0", env={"CSPGRAPH_DASHBOARD_TOKEN": "short"})
    _, err = env.communicate(timeout=60)
    assert env.returncode == Exit.BAD_INPUT and "CSPGRAPH_DASHBOARD_TOKEN" in err
