"""Partner Center's answer about DAP (500 questions a minute per partner tenant) never holds the
fleet: a customer whose pulls have ended waits for it without holding a place in the run, and a
stored answer a few days old is only refreshed while the customer is busy anyway."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from csp_emulator.server import Emulator
from cspgraph.config import Config
from cspgraph.fleet.access import DAP_MAX_AGE, DAP_RECHECK, AccessResolver, stored_access
from cspgraph.fleet.store import Store
from cspgraph.identity import TokenProvider
from tests.fleet_gdap.mixed_world import dap_domains, mixed_world_data
from tests.fleet_helpers import Control, run_sync

# Partner Center's answers take this long here: far longer than a small customer's pulls against
# an emulator without latency, so the order of events below is not a matter of luck.
SLOW_PARTNER_CENTER = 8.0


def test_a_customer_waiting_only_for_partner_center_lets_the_next_one_pull(
    mixed_config: Config, store: Store, control: Control
) -> None:
    control.call("PUT", "settings", {"latency": {"partner_center": {"base": SLOW_PARTNER_CENTER}}})
    control.call("DELETE", "latency/log")
    customers = dap_domains(mixed_world_data())[:3]

    # One customer at a time: before, each held its place until Partner Center answered, so
    # the three questions were asked one after another.
    summary = asyncio.run(run_sync(mixed_config, store, customers=customers, concurrency=1))

    assert {t.status.value for t in summary.tenants} == {"ok"}
    assert {t.access.mode.value for t in summary.tenants} == {"dap"}
    log = control.call("GET", "latency/log?limit=1000")["value"]
    questions = [r for r in log if r["path"].startswith("/v1/customers/")]
    assert len(questions) == 3
    # All three were in flight at once: each was asked before the first one was answered.
    first_answered = min(r["at"] + r["seconds"] for r in questions)
    assert max(r["at"] for r in questions) < first_answered


async def _resolve(
    config: Config, store: Store, tenant_id: str, now: datetime, *, pulled: bool
) -> tuple[bool | None, datetime | None]:
    """The resolver's word on DAP at ``now``, its customer's pulls ended (``pulled``) or not."""
    provider = TokenProvider(config, workers=1)
    resolver = AccessResolver(provider, store, now=lambda: now)
    settled = asyncio.Event()
    if pulled:
        settled.set()
    try:
        access, failure = await resolver.resolve(tenant_id, "NA", tenant_id, settled=settled)
    finally:
        await resolver.aclose()
        await provider.aclose()
    assert failure is None
    return access.dap, access.dap_checked_at


def test_a_dap_answer_days_old_is_kept_with_its_date_when_partner_center_is_slower_than_the_pulls(
    mixed_config: Config, store: Store
) -> None:
    customer = dap_domains(mixed_world_data())[0]
    first = asyncio.run(run_sync(mixed_config, store, customers=[customer])).tenants[0]
    tenant = first.tenant_id
    assert tenant is not None
    stored = stored_access(store, tenant)
    assert stored is not None and stored.dap is True and stored.dap_checked_at is not None
    checked = stored.dap_checked_at.replace(tzinfo=UTC)
    days_later = checked + DAP_RECHECK + timedelta(days=2)

    # The pulls have ended before Partner Center could answer: the stored answer stands.
    dap, when = asyncio.run(_resolve(mixed_config, store, tenant, days_later, pulled=True))
    assert (dap, when and when.replace(tzinfo=UTC)) == (True, checked)

    # While the customer is still busy, Partner Center is asked and its answer dated now.
    dap, when = asyncio.run(_resolve(mixed_config, store, tenant, days_later, pulled=False))
    assert (dap, when) == (True, days_later)


def test_a_dap_answer_older_than_its_longest_life_is_asked_again_and_waited_for(
    mixed_config: Config, store: Store
) -> None:
    customer = dap_domains(mixed_world_data())[0]
    tenant = asyncio.run(run_sync(mixed_config, store, customers=[customer])).tenants[0].tenant_id
    assert tenant is not None
    stored = stored_access(store, tenant)
    assert stored is not None and stored.dap_checked_at is not None
    too_old = stored.dap_checked_at.replace(tzinfo=UTC) + DAP_MAX_AGE + timedelta(hours=1)

    dap, when = asyncio.run(_resolve(mixed_config, store, tenant, too_old, pulled=True))
    assert (dap, when) == (True, too_old)


def test_a_first_answer_is_waited_for_even_after_the_pulls(
    mixed: Emulator, mixed_config: Config, store: Store
) -> None:
    customer = dap_domains(mixed_world_data())[0]
    tenant = mixed.call(lambda: mixed.world.tenant(customer).id)
    now = datetime.now(UTC)

    dap, when = asyncio.run(_resolve(mixed_config, store, tenant, now, pulled=True))
    assert (dap, when) == (True, now)
