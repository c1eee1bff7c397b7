"""The checks' results between requests: made in the background when the server starts, never
waited for by the customer list, made again at once when a sync recorded something, and in the
background when they are merely old."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cspgraph.dashboard.checks_cache import MAX_AGE, ChecksCache
from cspgraph.fleet.store import Store
from tests.dashboard.fleets import known_fleet_with_runs

GUARD = 60  # seconds: a guard against a hung thread, not a measurement
NEW = "0000cafe-0000-0000-0000-000000000000"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as opened:
        known_fleet_with_runs(opened)
        yield opened


def test_the_list_never_waits_and_warming_makes_the_first_results(store: Store) -> None:
    cache = ChecksCache(store)
    assert cache.peek() is None  # nothing yet, and no waiting for it
    assert cache.wait_idle(GUARD)
    first = cache.peek()
    assert first is not None and first.results.findings
    assert cache.get() is first  # nothing changed: the same results


def test_a_recorded_change_is_seen_at_once(store: Store) -> None:
    cache = ChecksCache(store)
    before = cache.get()
    assert NEW not in {f.tenant_id for f in before.results.findings}
    store.upsert_customer(NEW, domain="new.example", display_name="New Co", region="EU")
    after = cache.get()  # the store's version changed: new results, waited for
    assert after is not before
    assert ("sync.never", NEW) in {(f.check_id, f.tenant_id) for f in after.results.findings}


def test_old_results_are_shown_while_new_ones_are_made(store: Store) -> None:
    clock = Clock()
    cache = ChecksCache(store, clock=clock)
    first = cache.get()
    clock.now += MAX_AGE + timedelta(seconds=1)
    assert cache.get() is first  # shown at once, a new run started behind it
    assert cache.wait_idle(GUARD)
    second = cache.get()
    assert second is not first and second.results.evaluated_at == clock.now
