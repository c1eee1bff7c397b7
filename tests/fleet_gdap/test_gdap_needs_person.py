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


def test_call_reads_a_refused_app_token_in_a_gdap_customer_as_a_sync_does(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    """`cspgraph call` as the app in a customer that never consented it (active GDAP) and in one
    whose relationship awaits approval: a person's matter with its next step (exit 3), not
    "propagating" (exit 4) as the bare AADSTS answer would say."""
    import tomli_w
    from typer.testing import CliRunner

    from cspgraph.cli.main import app
    from tests.fleet_helpers import SECRET_ENV

    emu = make_emulator(mixed_world_data())
    config_file = tmp_path / "config.toml"
    config = config_for(emu, tmp_path)
    config_file.write_text(tomli_w.dumps(config.model.model_dump(exclude_none=True)))
    runner = CliRunner()
    for customer, says in (
        (GDAP["cedar"], f"cspgraph gdap consent --customer {GDAP['cedar']}"),
        (GDAP["skyline"], "awaits the customer's approval"),
    ):
        called = runner.invoke(
            app,
            ["call", "GET", "/users", "--customer", customer, "--top", "1", "--app",
             "--config", str(config_file)],
            env=SECRET_ENV,
        )  # fmt: skip
        assert called.exit_code == 3, (customer, called.output)
        assert says in called.stderr, called.stderr
