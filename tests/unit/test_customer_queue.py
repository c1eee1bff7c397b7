"""The sync hands customers out one region after another, so every partner app works at once."""

from __future__ import annotations

import asyncio

from cspgraph.fleet.customers import CustomerRef
from cspgraph.fleet.scheduling import CustomerQueue


def ref(name: str, region: str | None) -> CustomerRef:
    return CustomerRef(reference=name, region=region)


async def drain(turns: CustomerQueue) -> list[str]:
    out = []
    while (customer := await turns.get()) is not None:
        out.append(customer.reference)
    return out


async def test_regions_take_turns_and_each_keeps_its_order() -> None:
    turns = CustomerQueue()
    for i in range(4):
        turns.put(ref(f"na{i}", "NA"))  # a whole region listed first, as Partner Center pages it
    for i in range(2):
        turns.put(ref(f"eu{i}", "EU"))
    turns.put(ref("named", None))
    turns.close()
    assert await drain(turns) == ["na0", "eu0", "named", "na1", "eu1", "na2", "na3"]


async def test_waiting_workers_get_customers_as_they_come_then_none_when_closed() -> None:
    turns = CustomerQueue()
    workers = [asyncio.create_task(turns.get()) for _ in range(3)]
    await asyncio.sleep(0)  # every worker is waiting now
    assert not any(w.done() for w in workers)
    turns.put(ref("na0", "NA"))
    turns.put(ref("eu0", "EU"))
    turns.close()
    got = await asyncio.gather(*workers)
    assert sorted(c.reference for c in got if c is not None) == ["eu0", "na0"]
    assert got.count(None) == 1
    assert await turns.get() is None  # and for anyone asking later
