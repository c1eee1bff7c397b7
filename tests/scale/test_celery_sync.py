"""The fleet sync on Celery workers, against the real RabbitMQ, Redis and PostgreSQL: two
`cspgraph worker` processes sync a fleet that then equals the world; a worker killed with SIGKILL
mid-run leaves its customers to the other, and still the store equals the world, each customer
recorded once."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from sqlalchemy import func, select

from csp_emulator.server import Emulator
from cspgraph.distributed.engine import enqueue_sync, task_rows
from cspgraph.fleet.history_schema import run_customers
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
    workers: Workers, emu: Emulator, tmp_path: Path, db: str, broker: str, queue: str, redis: str
) -> list[str]:
    config = write_config(config_for(emu, tmp_path), tmp_path)
    namespace = unique("budget")
    names = ["alpha@test", "bravo@test"]
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
    workers: Workers,
) -> None:
    emu = make_emulator(fleet_world())
    names = start_two(workers, emu, tmp_path, pg_store_url, broker, queue, redis_url)
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


def test_a_worker_killed_mid_run_leaves_its_customers_to_the_other(
    make_emulator: MakeEmulator,
    tmp_path: Path,
    pg_store_url: str,
    broker: str,
    queue: str,
    redis_url: str,
    workers: Workers,
) -> None:
    emu = make_emulator(fleet_world())
    control = Control(emu)
    # Graph as slow as the real one, so that a customer takes seconds and the kill lands mid-way.
    control.call("PUT", "settings", {"latency": {"preset": "realistic"}})
    victim, survivor = start_two(workers, emu, tmp_path, pg_store_url, broker, queue, redis_url)
    tenants = customer_ids(control)
    killed: list[str] = []

    with Store.open(pg_store_url) as store:

        def kill_when_busy() -> None:
            """SIGKILL the victim once it is in the middle of a customer."""
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with store.engine.connect() as conn:
                    from cspgraph.fleet.history_schema import run_tasks

                    busy = (
                        conn.execute(
                            select(run_tasks.c.customer).where(
                                run_tasks.c.worker.startswith(victim),
                                run_tasks.c.finished_at.is_(None),
                            )
                        )
                        .scalars()
                        .all()
                    )
                if busy:
                    time.sleep(0.5)  # some pages of it written, not all
                    workers.kill(victim)
                    killed.extend(busy)
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
        for customer in killed:
            # Begun by the victim, finished by the survivor: a second attempt.
            assert rows[customer].attempts == 2, rows[customer]
            assert (rows[customer].worker or "").startswith(survivor), rows[customer]
        # Nothing recorded twice: one row per customer of the run.
        with store.engine.connect() as conn:
            recorded = conn.execute(
                select(run_customers.c.tenant_id, func.count())
                .where(run_customers.c.run_id == summary.run_id)
                .group_by(run_customers.c.tenant_id)
            ).all()
        assert sorted(recorded) == [(tenant, 1) for tenant in tenants]
