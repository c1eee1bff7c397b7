"""A run whose `sync --engine celery` was killed goes on on the workers, and is followed again
from the store: `cspgraph runs` shows it running, `cspgraph sync --engine celery --follow RUN_ID`
waits until it is whole and ends it, and the store then equals the world."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cspgraph.fleet.store import Store
from tests.conftest import MakeEmulator
from tests.fleet_helpers import (
    SECRET_ENV,
    Control,
    assert_store_matches_world,
    config_for,
    customer_ids,
    fleet_world,
)
from tests.scale.conftest import CSPGRAPH, Workers, write_config
from tests.scale.services import unique


def cspgraph(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CSPGRAPH, *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **SECRET_ENV},
    )  # fmt: skip


def listed_runs(db: str) -> dict[str, dict[str, Any]]:
    shown = cspgraph("runs", "--db", db, "--json")
    assert shown.returncode == 0, shown.stderr
    return {run["run_id"]: run for run in json.loads(shown.stdout)["runs"]}


def test_a_run_whose_enqueuer_was_killed_is_listed_and_followed_to_its_end(
    make_emulator: MakeEmulator,
    tmp_path: Path,
    pg_store_url: str,
    broker: str,
    queue: str,
    redis_url: str,
    budget_namespace: Callable[[str], str],
    workers: Workers,
) -> None:
    emu = make_emulator(fleet_world())
    tenants = customer_ids(Control(emu))
    config = write_config(config_for(emu, tmp_path), tmp_path)
    # No worker yet: the enqueuer sends every customer, then waits; it is killed there.
    enqueuer = subprocess.Popen(
        [CSPGRAPH, "sync", "--engine", "celery", "--broker", broker, "--queue", queue,
         "--db", pg_store_url, "--customers", ",".join(tenants), "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **SECRET_ENV},
    )  # fmt: skip
    try:
        assert enqueuer.stderr is not None
        said: list[str] = []
        sent = None
        while sent is None:  # lines before it (what it says about GDAP, say) are not its matter
            line = enqueuer.stderr.readline()
            assert line, f"the enqueuer ended without sending: {''.join(said)}"
            said.append(line)
            sent = re.match(r"run ([0-9a-f]{32}): (\d+) customers sent to the workers", line)
        assert f"cspgraph sync --engine celery --follow {sent[1]}" in said[-1]
        # Nobody consumes the queue yet, and the enqueuer says so instead of waiting in silence.
        assert f"no worker consumes queue {queue} yet" in enqueuer.stderr.readline()
    finally:
        os.kill(enqueuer.pid, signal.SIGKILL)
        enqueuer.wait(10)
    run_id = sent[1]
    assert int(sent[2]) == len(tenants)

    waiting = listed_runs(pg_store_url)[run_id]
    assert waiting["outcome"] == "running" and waiting["on_workers"]
    assert (waiting["customers"], waiting["finished"]) == (len(tenants), 0)

    workers.start(
        f"{unique('late')}@test", config=config, db=pg_store_url, broker=broker, queue=queue,
        budget=redis_url, namespace=budget_namespace("budget"),
    )  # fmt: skip
    followed = cspgraph("sync", "--engine", "celery", "--follow", run_id, "--db", pg_store_url,
                        "--json")  # fmt: skip
    assert followed.returncode == 0, followed.stderr
    summary = json.loads(followed.stdout)
    assert summary["run_id"] == run_id
    assert summary["ok"], summary
    assert sorted(t["tenant_id"] for t in summary["tenants"] if t["status"] == "ok") == tenants
    with Store.open(pg_store_url) as store:
        assert_store_matches_world(store, emu, tenants)

    ended = listed_runs(pg_store_url)[run_id]
    assert ended["outcome"] == "completed"
    assert (ended["customers"], ended["finished"]) == (len(tenants), len(tenants))
    assert ended["requests"] == summary["requests"] > 0
    # Following an ended run again shows it as it ended.
    again = cspgraph("sync", "--engine", "celery", "--follow", run_id, "--db", pg_store_url,
                     "--json")  # fmt: skip
    assert again.returncode == 0 and json.loads(again.stdout)["requests"] == summary["requests"]


def test_following_a_run_the_store_does_not_have_is_one_line_and_exit_2(
    tmp_path: Path, pg_store_url: str
) -> None:
    followed = cspgraph("sync", "--engine", "celery", "--follow", "0" * 32, "--db", pg_store_url)
    assert followed.returncode == 2
    assert followed.stderr.strip() == f"error: --follow: no run {'0' * 32} in the store"
