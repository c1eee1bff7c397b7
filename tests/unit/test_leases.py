"""Tenant leases in the store, on SQLite and PostgreSQL alike (every test runs on both).

Time is a fake clock given to the leases, except where the database's own clock is the point.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cspgraph.fleet.leases import (
    DEFAULT_TTL,
    Lease,
    LeaseHeldError,
    TenantLeases,
    died_here,
    new_holder_id,
)
from cspgraph.fleet.store import Store
from cspgraph.http.errors import ErrorClass
from tests.unit import pg_fixture

pg_database = pg_fixture.pg_database
pg_schema_url = pg_fixture.pg_schema_url
pg_url = pg_fixture.pg_url
store_backend_url = pg_fixture.store_backend_url
store = pg_fixture.store

T = "11111111-1111-1111-1111-111111111111"
U = "22222222-2222-2222-2222-222222222222"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def leases_of(store: Store, clock: Clock, holder: str, ttl: float = 60.0) -> TenantLeases:
    return TenantLeases(store, holder=holder, ttl=ttl, clock=clock)


def test_a_tenant_has_one_holder_and_the_second_is_told_who(store: Store, clock: Clock) -> None:
    first, second = leases_of(store, clock, "run-1"), leases_of(store, clock, "run-2")
    lease = first.acquire(T)
    assert lease.holder == "run-1"
    assert (lease.acquired_at, lease.expires_at) == (clock.now, clock.now + 60)
    with pytest.raises(LeaseHeldError) as held:
        second.acquire(T)
    assert held.value.lease.holder == "run-1"
    assert "run-1" in str(held.value) and held.value.error_class is ErrorClass.TRANSIENT
    # Per tenant: another tenant is free, and a lease does not stop other holders elsewhere.
    assert second.acquire(U).holder == "run-2"
    assert first.held() == {T} and second.held() == {U}


def test_acquiring_again_renews_and_keeps_when_it_was_first_taken(
    store: Store, clock: Clock
) -> None:
    leases = leases_of(store, clock, "run-1")
    first = leases.acquire(T)
    clock.now += 30
    again = leases.acquire(T)
    assert again.acquired_at == first.acquired_at and again.expires_at == clock.now + 60
    assert leases.holder_of(T) == again


def test_an_expired_lease_is_taken_over_and_its_old_holder_learns_it_lost_it(
    store: Store, clock: Clock
) -> None:
    old, new = leases_of(store, clock, "stalled"), leases_of(store, clock, "fresh")
    old.acquire(T)
    old.acquire(U)
    clock.now += 59
    with pytest.raises(LeaseHeldError):
        new.acquire(T)  # not yet expired
    clock.now += 1
    assert new.acquire(T).holder == "fresh"
    # The stalled holder's next renewal keeps U, and says T is gone.
    assert old.renew() == {T}
    assert old.lost(T) and not old.lost(U) and old.held() == {U}
    # Giving back what it no longer holds does not free the new holder's lease.
    old.release(T)
    assert (lease := old.holder_of(T)) is not None and lease.holder == "fresh"


def test_renewal_moves_the_expiry_and_release_frees_the_tenant(store: Store, clock: Clock) -> None:
    mine, other = leases_of(store, clock, "run-1"), leases_of(store, clock, "run-2")
    mine.acquire(T)
    mine.acquire(U)
    clock.now += 50
    assert mine.renew(T) == set()
    clock.now += 20  # T was renewed 20 s ago; U's lease expired 10 s ago
    with pytest.raises(LeaseHeldError):
        other.acquire(T)
    assert other.acquire(U).holder == "run-2"
    mine.release(T)
    assert other.acquire(T).holder == "run-2"
    other.release_all()
    assert other.held() == set() and other.holder_of(T) is None and other.holder_of(U) is None


class RenewalPause:
    """The leases' clock and lock, made to stop a renewing thread after its transaction (the
    clock is read inside it) and before its bookkeeping (the lock it takes next)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.renewer: threading.Thread | None = None
        self.read_done = False
        self.paused = threading.Event()
        self.go = threading.Event()

    def now(self) -> float:
        if threading.current_thread() is self.renewer:
            self.read_done = True  # the renewal's transaction has begun
        return self.clock()

    def __enter__(self) -> None:
        if threading.current_thread() is self.renewer and self.read_done:
            self.paused.set()
            assert self.go.wait(30)
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def test_a_tenant_taken_while_a_renewal_is_under_way_is_not_lost(
    store: Store, clock: Clock
) -> None:
    pause = RenewalPause(clock)
    leases = TenantLeases(store, holder="run-1", ttl=60.0, clock=pause.now)
    leases._lock = pause  # type: ignore[assignment]  # the seam the race runs through
    leases.acquire(T)
    clock.now += 10
    renewed: list[set[str]] = []
    pause.renewer = threading.Thread(target=lambda: renewed.append(leases.renew()))
    pause.renewer.start()
    assert pause.paused.wait(30)
    leases.acquire(U)  # another customer of the same run starts between read and bookkeeping
    pause.go.set()
    pause.renewer.join(30)
    assert renewed == [set()]
    assert leases.held() == {T, U} and not leases.lost(U)
    assert leases.renew() == set()  # and the next renewal keeps both


def test_a_lease_taken_in_a_batch_not_yet_committed_is_not_lost_to_a_renewal(
    store: Store, clock: Clock
) -> None:
    # The store writer takes leases inside its batches; a renewal runs on a connection of its
    # own and sees only committed rows (on SQLite it waits for the batch's write lock instead).
    leases = leases_of(store, clock, "run-1")
    leases.acquire(T)
    renewed: list[set[str]] = []
    with store.batch():
        leases.acquire(U)
        if store.dialect == "postgresql":
            renewer = threading.Thread(target=lambda: renewed.append(leases.renew()))
            renewer.start()
            renewer.join(30)
            assert renewed == [set()]
            assert leases.held() == {T}  # U's row is not there for others yet
    assert leases.held() == {T, U} and not leases.lost(U)
    assert leases.renew() == set()


def test_a_lease_whose_batch_rolls_back_is_not_held(store: Store, clock: Clock) -> None:
    leases = leases_of(store, clock, "run-1")
    with contextlib.suppress(RuntimeError), store.batch():
        leases.acquire(T)
        raise RuntimeError("another call of the batch failed")
    assert leases.held() == set()
    assert leases.holder_of(T) is None


def test_many_takers_at_once_leave_exactly_one_holder(store: Store) -> None:
    takers = [TenantLeases(store) for _ in range(8)]
    won: list[str] = []
    start = threading.Barrier(len(takers))

    def take(leases: TenantLeases) -> None:
        start.wait()
        with contextlib.suppress(LeaseHeldError):
            won.append(leases.acquire(T).holder)

    threads = [threading.Thread(target=take, args=(t,)) for t in takers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert (lease := takers[0].holder_of(T)) is not None and lease.holder == won[0]


def test_the_database_clock_dates_a_lease(store: Store) -> None:
    import time

    before = time.time()
    lease = TenantLeases(store, ttl=DEFAULT_TTL).acquire(T)
    after = time.time()
    # The database runs on this machine here, so its clock reads what ours does (to the
    # millisecond SQLite's julianday keeps).
    assert before - 0.01 <= lease.acquired_at <= after + 0.01
    assert lease.expires_at == pytest.approx(lease.acquired_at + DEFAULT_TTL)


def test_invalid_settings_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="ttl"):
        TenantLeases(store, ttl=0)
    with pytest.raises(ValueError, match="poll"):
        TenantLeases(store, poll=0)


# -- holders that died -----------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import os, signal, sys
    from cspgraph.fleet.leases import TenantLeases
    from cspgraph.fleet.store import Store

    store = Store.open(sys.argv[1])
    TenantLeases(store, holder="doomed").acquire(sys.argv[2])
    print("held", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_lease_whose_holder_was_killed_on_this_machine_is_free_at_once(
    store: Store, store_backend_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    done = subprocess.run(
        [sys.executable, str(script), store_backend_url, T],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL and "held" in done.stdout, done.stderr
    leases = TenantLeases(store)
    held = leases.holder_of(T)
    assert held is not None and held.holder == "doomed" and died_here(held)
    # Its lease has most of a minute to run, but its process is gone.
    assert leases.acquire(T).holder == leases.holder


def test_a_live_holder_and_one_on_another_machine_are_not_judged_dead(store: Store) -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        here = TenantLeases(store).acquire(T)
        live = Lease(T, "other", 0.0, 0.0, here.machine, alive.pid, None)
        assert not died_here(live)
        # A process id that does not exist here says nothing about another machine's process.
        elsewhere = Lease(T, "other", 0.0, 0.0, "another-host/boot/ns", 2**22 + 1, None)
        assert not died_here(elsewhere)
        # This very process holds, through another holder: alive.
        assert not died_here(Lease(T, "other", 0.0, 0.0, here.machine, os.getpid(), None))
    finally:
        alive.communicate(b"")
    # Once it has exited (and been reaped), the same lease is a dead holder's.
    assert died_here(Lease(T, "other", 0.0, 0.0, here.machine, alive.pid, None))


def test_holder_ids_are_readable_and_unique() -> None:
    one, two = new_holder_id(), new_holder_id()
    assert one != two and f"pid={os.getpid()}" in one


# -- the heartbeat ---------------------------------------------------------------------------------


@pytest.fixture
def fast_leases(store: Store) -> Iterator[TenantLeases]:
    yield TenantLeases(store, ttl=30.0)


def test_the_heartbeat_renews_every_lease_held_until_stopped(fast_leases: TenantLeases) -> None:
    first = fast_leases.acquire(T)
    renewed = threading.Event()
    original = fast_leases.renew

    def renew(tenant_id: str | None = None) -> set[str]:
        lost = original(tenant_id)
        renewed.set()
        return lost

    fast_leases.renew = renew  # type: ignore[method-assign]
    with fast_leases.heartbeat(every=0.01) as beat:
        assert renewed.wait(10), "the heartbeat never renewed"
    beats = beat.beats
    assert beats >= 1 and not beat._thread.is_alive()
    later = fast_leases.holder_of(T)
    assert later is not None and later.expires_at >= first.expires_at
    with pytest.raises(ValueError, match="interval"), fast_leases.heartbeat(every=0):
        pass
