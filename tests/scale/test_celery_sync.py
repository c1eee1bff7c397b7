"""The fleet sync on Celery workers, against the real RabbitMQ, Redis and PostgreSQL: two
`cspgraph worker` processes sync a fleet that then equals the world; a worker killed with SIGKILL
mid-run leaves its customers to the other, and still the store equals the world, each customer
recorded once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from csp_emulator.server import Emulator
from cspgraph.distributed.engine import enqueue_sync, task_rows
from cspgraph.fleet.history_schema import run_customers, run_tasks
from cspgraph.fleet.store import Store
from tests.conftest import MakeEmulator
from tests.fleet_helpers import (
    Control,
    assert_store_matches_world,
    config_for,
    customer_ids,
    fleet_world,
)
from tests.scale.conftest import Workers, write_config
from tests.scale.services import unique

PAGE_SIZE = 20


def start_two(
    workers: Workers, emu: Emulator, tmp_path: Path, db: str, broker: str, queue: str, redis: str,
    namespace: str,
) -> list[str]:  # fmt: skip
    config = write_config(config_for(emu, tmp_path), tmp_path)
    # Names of this test's own: Celery's control queue per worker name is exclusive, and other
    # test runs may share this broker at the same time.
    names = [f"{unique('alpha')}@test", f"{unique('bravo')}@test"]
    for name in names:
        workers.start(
            name, config=config, db=db, broker=broker, queue=queue, budget=redis,
            namespace=namespace,
        )  # fmt: skip
    workers.wait_consuming(broker, queue, 2)
    return names


def test_a_fleet_synced_by_two_workers_equals_the_world(
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
    names = start_two(
        workers, emu, tmp_path, pg_store_url, broker, queue, redis_url, budget_namespace("budget")
    )
    tenants = customer_ids(Control(emu))
    with Store.open(pg_store_url) as store:
        summary = asyncio.run(
            enqueue_sync(
                config_for(emu, tmp_path), store, broker, customers=tenants, queue=queue,
                page_size=PAGE_SIZE, poll=0.2, give_up_after=300,
            )
        )  # fmt: skip
        assert summary.by_status() == {"ok": len(tenants)}, [t.as_dict() for t in summary.tenants]
        assert_store_matches_world(store, emu, tenants)
        rows = task_rows(store, summary.run_id or "")
        # Both workers took customers, and the run record says which synced which.
        assert {row.worker.split(" ")[0] for row in rows if row.worker} == set(names)
        assert sorted(row.tenant_id or "" for row in rows) == tenants
        assert all(row.attempts == 1 and row.status == "ok" for row in rows)
        # The run's requests are the workers' (per customer), known, not zero.
        assert summary.requests == sum(row.requests or 0 for row in rows) > 0


def graph_requests_by_tenant(control: Control) -> dict[str, list[float]]:
    """When each Graph request the emulator answered began (its monotonic clock), by tenant."""
    began: dict[str, list[float]] = {}
    after = 0
    while True:
        page = control.call("GET", f"latency/log?after={after}")
        for record in page["value"]:
            if record["host"] == "graph":
                began.setdefault(record["tenant"], []).append(record["at"])
        if not page["more"]:
            return began
        after = page["next_after"]


def test_a_worker_killed_mid_run_leaves_its_customers_to_the_other(
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
    control = Control(emu)
    # Graph as slow as the real one, so that a customer takes seconds and the kill lands mid-way.
    control.call("PUT", "settings", {"latency": {"preset": "realistic"}})
    victim, survivor = start_two(
        workers, emu, tmp_path, pg_store_url, broker, queue, redis_url, budget_namespace("budget")
    )
    tenants = customer_ids(control)
    killed: dict[str, int | None] = {}  # customer: its requests the store had counted then
    killed_at: list[float] = []

    with Store.open(pg_store_url) as store:

        def kill_when_busy() -> None:
            """SIGKILL the victim in the middle of a customer, once the store counts requests
            of it (some of its pages written, not all)."""
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with store.engine.connect() as conn:
                    busy = conn.execute(
                        select(run_tasks.c.customer, run_tasks.c.requests).where(
                            run_tasks.c.worker.startswith(victim),
                            run_tasks.c.finished_at.is_(None),
                        )
                    ).all()
                if any(requests for _, requests in busy):
                    workers.kill(victim)
                    killed_at.append(time.monotonic())  # the emulator's clock too (one machine)
                    killed.update((customer, requests) for customer, requests in busy)
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        summary = asyncio.run(
            enqueue_sync(
                config_for(emu, tmp_path), store, broker, customers=tenants, queue=queue,
                page_size=PAGE_SIZE, poll=0.2, give_up_after=600,
            )
        )  # fmt: skip
        killer.join()
        assert killed, f"the victim never began a customer: {workers.log(victim)}"
        assert summary.by_status() == {"ok": len(tenants)}, [t.as_dict() for t in summary.tenants]
        assert_store_matches_world(store, emu, tenants)
        rows = {row.customer: row for row in task_rows(store, summary.run_id or "")}
        graph = graph_requests_by_tenant(control)
        for customer, counted_when_killed in killed.items():
            # Begun by the victim, finished by the survivor: a second attempt.
            row = rows[customer]
            assert row.attempts == 2, row
            assert (row.worker or "").startswith(survivor), row
            # The run counts the requests of both attempts: what the victim's had counted when
            # it died (it spent Graph's budget all the same) on top of the survivor's, and never
            # more than Graph saw.
            dead = sum(1 for at in graph[customer] if at < killed_at[0])
            finishing = len(graph[customer]) - dead
            assert row.requests is not None
            assert finishing + (counted_when_killed or 0) <= row.requests <= dead + finishing, (
                row, dead, finishing, counted_when_killed,
            )  # fmt: skip
        assert any(counted for counted in killed.values())
        assert summary.requests == sum(row.requests or 0 for row in rows.values())
        # Nothing recorded twice: one row per customer of the run.
        with store.engine.connect() as conn:
            recorded = conn.execute(
                select(run_customers.c.tenant_id, func.count())
                .where(run_customers.c.run_id == summary.run_id)
                .group_by(run_customers.c.tenant_id)
            ).all()
        assert sorted(recorded) == [(tenant, 1) for tenant in tenants]
