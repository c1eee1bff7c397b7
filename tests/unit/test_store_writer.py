"""The store writer's group commit: calls that queue up share one transaction, keep their own
atomicity, and a failing call fails alone. Runs on SQLite and PostgreSQL like the store tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from cspgraph.fleet.store import Store, users
from cspgraph.fleet.store_writer import StoreWriter
from cspgraph.http.inflight import REQUEST_PRIORITY
from tests.unit import pg_fixture
from tests.unit.pg_fixture import user

pg_database = pg_fixture.pg_database
pg_schema_url = pg_fixture.pg_schema_url
pg_url = pg_fixture.pg_url
store_backend_url = pg_fixture.store_backend_url
store = pg_fixture.store

T = "11111111-1111-1111-1111-111111111111"


def user_ids(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(select(users.c.id).where(users.c.tenant_id == T)).scalars())


def write(store: Store, resource: str, ids: list[str], link: str | None = None) -> int:
    store.write_page(
        T,
        resource,
        [user(i) for i in ids],
        (),
        next_link=link,
        delta_link=None,
        full_pull=False,
    )
    return len(ids)


class Gate:
    """Holds the writer thread inside its first call until released, so that the calls
    submitted meanwhile queue up and are taken as one batch."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> str:
        self.entered.set()
        assert self.release.wait(30)
        return "gate"


async def queue_behind_gate(writer: StoreWriter, calls: list[Any]) -> list[asyncio.Future[Any]]:
    gate = Gate()
    first = writer.submit(gate)
    assert await asyncio.to_thread(gate.entered.wait, 30)
    futures = [writer.submit(*call) for call in calls]
    gate.release.set()
    assert await first == "gate"
    return futures


async def test_queued_calls_commit_in_one_transaction_and_each_gets_its_result(
    store: Store,
) -> None:
    writer = StoreWriter(store)
    try:
        calls = [(write, store, "users", [f"u{i}a", f"u{i}b"], f"link{i}") for i in range(10)]
        futures = await queue_behind_gate(writer, calls)
        assert await asyncio.gather(*futures) == [2] * 10
        assert writer.batches == 1  # the ten writes behind the gate: one transaction
        assert writer.calls == 11
    finally:
        writer.close()
    assert user_ids(store) == {f"u{i}{s}" for i in range(10) for s in "ab"}
    checkpoint = store.checkpoint(T, "users")
    assert checkpoint is not None and checkpoint.next_link == "link9"


async def test_a_failing_call_fails_alone_and_the_others_of_its_batch_commit(
    store: Store,
) -> None:
    writer = StoreWriter(store)
    try:
        calls = [
            (write, store, "users", ["u1"]),
            (write, store, "no-such-resource", ["x"]),  # refused by the store: ValueError
            (write, store, "users", ["u2"]),
        ]
        futures = await queue_behind_gate(writer, calls)
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        writer.close()
    assert outcomes[0] == 1 and outcomes[2] == 1
    assert isinstance(outcomes[1], ValueError) and "no-such-resource" in str(outcomes[1])
    assert writer.batches == 0  # the batch was rolled back and its calls run one by one
    assert user_ids(store) == {"u1", "u2"}


async def test_close_runs_what_is_queued_before_it_returns(store: Store) -> None:
    writer = StoreWriter(store)
    gate = Gate()
    first = writer.submit(gate)
    assert await asyncio.to_thread(gate.entered.wait, 30)
    queued = [writer.submit(write, store, "users", [f"q{i}"]) for i in range(5)]
    gate.release.set()
    await asyncio.to_thread(writer.close)
    assert await first == "gate"
    assert await asyncio.gather(*queued) == [1] * 5
    assert user_ids(store) == {f"q{i}" for i in range(5)}
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(write, store, "users", ["late"])


def test_a_batch_is_all_or_nothing_and_does_not_nest(store: Store) -> None:
    with pytest.raises(RuntimeError, match="disk on fire"), store.batch():
        write(store, "users", ["u1"], "link1")
        write(store, "users", ["u2"], "link2")
        raise RuntimeError("disk on fire")
    assert user_ids(store) == set()
    assert store.checkpoint(T, "users") is None

    with store.batch():
        write(store, "users", ["u1"])
        with pytest.raises(RuntimeError, match="do not nest"), store.batch():
            pass
    assert user_ids(store) == {"u1"}


@contextlib.asynccontextmanager
async def writer_held(store: Store) -> AsyncIterator[StoreWriter]:
    """A writer whose thread is held in a first call while the block queues calls; they run
    when the block ends (in the writer's order), and the writer is closed after them."""
    writer = StoreWriter(store)
    try:
        gate = Gate()
        first = writer.submit(gate)
        assert await asyncio.to_thread(gate.entered.wait, 30)
        yield writer
        await asyncio.sleep(0)  # calls submitted from tasks the block started are queued too
        gate.release.set()
        assert await first == "gate"
    finally:
        writer.close()


async def test_queued_pages_of_deeper_chains_are_written_first(store: Store) -> None:
    order: list[int] = []
    async with writer_held(store) as writer:
        futures = []
        for depth in (1, 40, 2, 40, 0):
            REQUEST_PRIORITY.set(depth)  # what a stream sets before it hands its page over
            futures.append(writer.submit(order.append, depth))
        REQUEST_PRIORITY.set(0)
    await asyncio.gather(*futures)
    assert order == [40, 40, 2, 1, 0]  # the deepest first, equal depths as they came


async def test_a_customers_start_up_trips_are_run_before_every_queued_page(store: Store) -> None:
    order: list[str] = []
    async with writer_held(store) as writer:
        REQUEST_PRIORITY.set(250)  # a deep chain's page queued first
        page = writer.submit(order.append, "page")
        REQUEST_PRIORITY.set(0)
        lease = asyncio.ensure_future(writer.run_first(order.append, "lease"))
    await asyncio.gather(page, lease)
    assert order == ["lease", "page"]
