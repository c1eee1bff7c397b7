"""`cspgraph sync` when another run holds customers: it leaves them (exit 1, and says so), waits
for them with --wait, and takes over at once from a run that was killed on this machine.

"Another run" is a child process holding the leases of chosen customers through the library's
lease interface (as a second `cspgraph sync`, or a worker, would), so the test decides when it
lets go instead of racing a real sync.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import tomli_w

from csp_emulator.server import Emulator
from cspgraph.fleet.store import Store
from tests.fleet_helpers import SECRET_ENV, Control, config_for, customer_ids, fleet_world
from tests.terminal import CSPGRAPH

HOLDER = textwrap.dedent(
    """
    import sys
    from cspgraph.fleet.leases import TenantLeases
    from cspgraph.fleet.store import Store

    store = Store.open(sys.argv[1])
    leases = TenantLeases(store, holder="the other run")
    for tenant in sys.argv[2:]:
        leases.acquire(tenant)
    print("held", flush=True)
    with leases.heartbeat():
        sys.stdin.read()  # until the test lets go
    leases.release_all()
    """
)


class Holder:
    """A child process holding some customers' leases until :meth:`let_go` or :meth:`kill`."""

    def __init__(self, script: Path, db: str, tenants: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(script), db, *tenants],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "held"

    def let_go(self) -> None:
        self.process.communicate("", timeout=60)
        assert self.process.returncode == 0

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=60)


@pytest.fixture
def setup(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> Iterator[tuple[list[str], list[str], Callable[[list[str]], Holder]]]:
    """(tenant ids, the sync command's arguments, a way to start a holder of some tenants)."""
    emu = make_emulator(fleet_world(3, admins=False))
    config_file = tmp_path / "config.toml"
    model = config_for(emu, tmp_path).model.model_dump(exclude_none=True)
    config_file.write_text(tomli_w.dumps(model))
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    Store.open(db).close()  # the schema, before the holder's first lease
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holders: list[Holder] = []

    def hold(tenants: list[str]) -> Holder:
        holders.append(Holder(script, db, tenants))
        return holders[-1]

    args = [CSPGRAPH, "sync", "--config", str(config_file), "--db", db, "--json", "--no-progress"]
    yield customer_ids(Control(emu)), args, hold
    for holder in holders:
        if holder.process.poll() is None:
            holder.kill()


def sync(args: list[str], *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*args, *more], capture_output=True, text=True, timeout=120,
        env={**os.environ, **SECRET_ENV}, check=False,
    )  # fmt: skip


def test_a_customer_another_run_holds_is_left_to_it_and_the_run_exits_1(
    setup: tuple[list[str], list[str], Callable[[list[str]], Holder]],
) -> None:
    tenants, args, hold = setup
    holder = hold([tenants[0]])
    done = sync(args)
    assert done.returncode == 1, done.stderr
    by_tenant = {t["tenant_id"]: t for t in json.loads(done.stdout)["tenants"]}
    left = by_tenant[tenants[0]]
    assert left["status"] == "running" and left["held_by"] == "the other run"
    assert "another sync run is syncing this customer" in left["reason"]
    assert left["pages"] == {}  # nothing of it was pulled or written
    assert all(by_tenant[t]["status"] == "ok" for t in tenants[1:])
    assert "1 customer(s) left to another sync run" in done.stderr and "--wait" in done.stderr
    holder.let_go()
    assert sync(args).returncode == 0


async def test_with_wait_the_run_syncs_the_held_customer_once_it_is_let_go(
    setup: tuple[list[str], list[str], Callable[[list[str]], Holder]], tmp_path: Path
) -> None:
    tenants, args, hold = setup
    holder = hold([tenants[0]])
    started = time.time()
    waiting = await asyncio.create_subprocess_exec(
        *args, "--wait", env={**os.environ, **SECRET_ENV},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    # Once the other customers are synced, the run is waiting for the held one alone.
    db = args[args.index("--db") + 1]
    with Store.open(db) as store:
        while not _synced_since(store, tenants[1:], started):
            assert waiting.returncode is None, "the run ended instead of waiting"
            await asyncio.sleep(0.05)  # polling a condition, not timing one
    assert waiting.returncode is None
    holder.let_go()
    stdout, stderr = await waiting.communicate()
    assert waiting.returncode == 0, stderr.decode()
    assert {t["status"] for t in json.loads(stdout)["tenants"]} == {"ok"}


def test_a_killed_runs_customers_are_taken_over_at_once(
    setup: tuple[list[str], list[str], Callable[[list[str]], Holder]],
) -> None:
    tenants, args, hold = setup
    hold(tenants).kill()  # kill -9: its leases stay in the store, a minute from expiring
    done = sync(args)
    assert done.returncode == 0, done.stderr
    assert {t["status"] for t in json.loads(done.stdout)["tenants"]} == {"ok"}


def _synced_since(store: Store, tenants: list[str], since: float) -> bool:
    done = {s.tenant_id: s for s in store.customer_summaries()}
    return all(
        t in done and done[t].last_sync_at is not None and done[t].last_sync_at.timestamp() >= since
        for t in tenants
    )
