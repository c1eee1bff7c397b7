"""A mixed DAP/GDAP fleet on Celery workers: each customer's access mode found out by the worker
that synced it, recorded in the store and told by the enqueuer as a local sync tells it; a region
whose GDAP relationships cannot be read is said to be unknown, never left out."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from cspgraph.distributed.engine import enqueue_sync
from cspgraph.fleet.history_schema import customer_access
from cspgraph.fleet.store import Store
from tests.conftest import MakeEmulator
from tests.fleet_gdap.mixed_world import GDAP, dap_domains, mixed_world_data
from tests.fleet_helpers import config_for
from tests.scale.conftest import Workers, write_config
from tests.scale.services import unique


def test_a_mixed_fleet_synced_by_a_worker_has_each_customers_access_mode(
    make_emulator: MakeEmulator,
    tmp_path: Path,
    pg_store_url: str,
    broker: str,
    queue: str,
    redis_url: str,
    workers: Workers,
) -> None:
    data = mixed_world_data()
    emu = make_emulator(data)
    config = config_for(emu, tmp_path)
    workers.start(
        "solo@test", config=write_config(config, tmp_path), db=pg_store_url, broker=broker,
        queue=queue, budget=redis_url, namespace=unique("budget"),
    )  # fmt: skip
    workers.wait_consuming(broker, queue, 1)
    dap = dap_domains(data)
    gdap = [GDAP[k] for k in ("northwind", "zava", "woodgrove", "cedar", "skyline")]

    with Store.open(pg_store_url) as store:
        summary = asyncio.run(
            enqueue_sync(
                config, store, broker, customers=[*dap, *gdap], queue=queue, poll=0.2,
                give_up_after=300,
            )
        )  # fmt: skip
        got = {t.customer.reference: t for t in summary.tenants}
        assert summary.access_modes() == {"dap": len(dap), "gdap-app": 3, "none": 2}
        assert summary.gdap_unknown == {}
        zava = got[GDAP["zava"]].as_dict()["access"]
        assert zava["mode"] == "gdap-app"
        assert zava["gdap"]["nearest"]["status"] == "expiring"
        cedar = got[GDAP["cedar"]]
        assert cedar.status.value == "needs_person"
        assert cedar.as_dict()["access"]["mode"] == "none"
        assert f"cspgraph gdap consent --customer {GDAP['cedar']}" in (cedar.reason or "")
        with store.reading() as conn:
            modes = {r.tenant_id: r.mode for r in conn.execute(select(customer_access))}
        assert modes[got[dap[0]].tenant_id] == "dap"
        assert modes[got[GDAP["skyline"]].tenant_id] == "none"


def test_a_celery_run_says_whose_gdap_relationships_it_could_not_read(
    make_emulator: MakeEmulator, tmp_path: Path, pg_store_url: str, broker: str, queue: str
) -> None:
    emu = make_emulator(mixed_world_data(read_gdap=False))
    with Store.open(pg_store_url) as store:
        # No customer named: nothing for a worker to do, the run ends at once.
        summary = asyncio.run(
            enqueue_sync(config_for(emu, tmp_path), store, broker, customers=[], queue=queue)
        )
    assert summary.tenants == []
    assert set(summary.gdap_unknown) == {"NA", "EU"}
    assert all(
        "DelegatedAdminRelationship.Read.All" in why for why in summary.gdap_unknown.values()
    )
