"""Runs as `cspgraph runs` shows them, from the store alone: a local run's figures are unknown
until it ends; a run of workers shows how many customers are done and the requests counted so
far, while it runs, whoever asks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cspgraph.distributed.engine import add_spent, finish_attempt, start_attempt
from cspgraph.fleet import runs
from cspgraph.fleet.customers import CustomerRef
from cspgraph.fleet.outcomes import CustomerStatus, TenantResult
from cspgraph.fleet.run_progress import recent_runs, run_progress
from cspgraph.fleet.store import Store

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def ok(tenant: str) -> TenantResult:
    return TenantResult(
        customer=CustomerRef(reference=tenant), tenant_id=tenant, region="NA",
        status=CustomerStatus.OK,
    )  # fmt: skip


def test_a_local_run_is_unknown_until_it_ends_and_a_run_of_workers_shows_its_progress(
    tmp_path: Path,
) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        runs.begin_run(store, "local", START)
        local = run_progress(store, "local")
        assert local is not None and not local.on_workers
        assert (local.outcome, local.customers, local.finished, local.requests) == (
            "running", None, None, None,
        )  # fmt: skip

        runs.begin_run(store, "workers", START + timedelta(minutes=1))
        runs.note_enqueued(store, "workers", 3)
        for customer in ("t1", "t2"):
            start_attempt(store, "workers", customer, "w1@host pid=1")
        add_spent(store, "workers", "t1", (7, 1))
        finish_attempt(store, "workers", "t2", ok("t2"), (5, 0))
        going = run_progress(store, "workers")
        assert going is not None and going.on_workers
        assert (going.outcome, going.customers, going.finished) == ("running", 3, 1)
        assert (going.requests, going.throttled) == (12, 1)  # both customers' so far

        runs.finish_run(store, "local", runs.COMPLETED, [ok("a"), ok("b")], {"requests": 9}, 2.5)
        ended = run_progress(store, "local")
        assert ended is not None
        assert (ended.outcome, ended.customers, ended.finished, ended.requests) == (
            "completed", 2, 2, 9,
        )  # fmt: skip
        assert [r.run_id for r in recent_runs(store)] == ["workers", "local"]  # newest first
        assert [r.run_id for r in recent_runs(store, 1)] == ["workers"]
        assert run_progress(store, "nothing") is None
