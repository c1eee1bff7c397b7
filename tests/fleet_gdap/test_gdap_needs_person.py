"""GDAP customers without DAP whose app-only token is refused, with the partner's relationships
read: an unconsented one and one awaiting approval are a person's matter in the sync, with their
next steps — never "propagating" — and the sync names them as they were named (domain, and the
name their GDAP relationship gives them)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cspgraph.fleet.outcomes import CustomerStatus
from cspgraph.fleet.store import Store
from tests.conftest import MakeEmulator
from tests.fleet_gdap.mixed_world import GDAP, mixed_world_data
from tests.fleet_helpers import config_for, run_sync

NAMED = [GDAP["cedar"], GDAP["skyline"]]


def by_domain(summary_dict: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {t["domain"]: t for t in summary_dict["tenants"]}


def test_an_unconsented_customer_and_a_pending_one_need_a_person_with_their_next_steps(
    make_emulator: MakeEmulator, tmp_path: Path, store: Store
) -> None:
    config = config_for(make_emulator(mixed_world_data()), tmp_path)
    summary = asyncio.run(run_sync(config, store, customers=NAMED)).as_dict()
    tenants = by_domain(summary)
    assert set(tenants) == set(NAMED)  # named as given, never null
    cedar, skyline = tenants[GDAP["cedar"]], tenants[GDAP["skyline"]]
    assert cedar["status"] == skyline["status"] == CustomerStatus.NEEDS_PERSON.value
    assert f"cspgraph gdap consent --customer {GDAP['cedar']}" in cedar["reason"]
    assert "awaits the customer's approval" in skyline["reason"]
    assert cedar["display_name"] == "Cedar Logistics"  # from its GDAP relationship
    assert skyline["display_name"] == "Skyline Dental"
