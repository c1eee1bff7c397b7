"""Saved links the sync cannot follow: they restart their resource as a full pull, with a note,
and the customer syncs; a token never goes to a host the run does not talk to."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from csp_emulator.server import Emulator
from cspgraph.fleet.store import Store
from tests.fleet_helpers import (
    Control,
    assert_store_matches_world,
    config_for,
    customer_ids,
    fleet_world,
    run_sync,
)

DELTA_RESOURCES = ("users", "groups", "devices")


async def test_links_to_an_emulator_that_moved_restart_as_full_pulls_with_a_note(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    # As after `make demo` and a restart of the emulator: the same world on new ports.
    world = fleet_world(3)
    before = make_emulator(world)
    old_graph = before.endpoints.graph
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    with Store.open(db) as store:
        assert (await run_sync(config_for(before, tmp_path), store)).ok
    before.stop()  # its port is closed: any request sent there would fail the customer
    after = make_emulator(world)
    ids = customer_ids(Control(after))
    assert after.endpoints.graph != old_graph

    config = config_for(after, tmp_path)
    with Store.open(db) as store:
        assert sorted(s.tenant_id for s in store.customer_summaries()) == ids
        summary = await run_sync(config, store)
        assert summary.ok, summary.as_dict()
        for result in summary.tenants:
            assert {result.modes[r] for r in DELTA_RESOURCES} == {"full"}
            for resource in DELTA_RESOURCES:
                note = next(n for n in result.notes if n.startswith(f"{resource}: "))
                assert f"points to {old_graph}" in note and "no token was sent" in note
                assert note.endswith("pulled in full")
        assert_store_matches_world(store, after, ids)
        # The notes are on the customers for the report, and the next run is a delta run again.
        reasons = {s.tenant_id: s.status_reason or "" for s in store.customer_summaries()}
        assert all("pulled in full" in reasons[t] for t in ids)
        again = await run_sync(config, store)
        assert again.ok
        assert all(t.modes[r] == "delta" for t in again.tenants for r in DELTA_RESOURCES)
        assert all(not t.notes for t in again.tenants)
