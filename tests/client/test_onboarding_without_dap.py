"""A new customer created without DAP (what Microsoft does now: `new_customer_access = "gdap"` in
the emulator): the app's token is refused as "not in this tenant" and no pre-consent is on its
way, so onboarding stops at the first denial with the next step — never the whole budget of
retries."""

from __future__ import annotations

from pathlib import Path

import pytest

from cspgraph.http.errors import NeedsPersonError
from cspgraph.partner.onboarding import OnboardingSettings
from tests.client.test_onboarding import harness_for, world
from tests.conftest import MakeEmulator

SETTINGS = OnboardingSettings(initial_wait=3, retry_every=2, budget=20, progress_every=None)


async def test_a_customer_created_without_dap_stops_at_the_first_denial_with_the_next_step(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    data = world()
    data["settings"]["new_customer_access"] = "gdap"
    async for h in harness_for(make_emulator(data), tmp_path):
        domain = "nodap.onmicrosoft.com"
        with pytest.raises(NeedsPersonError) as stopped:
            await h.onboard(domain, settings=SETTINGS)
        error = stopped.value
        assert error.code == "GdapOnly"
        assert "700016" in error.message and "allowDelegatedAccess false" in error.message
        assert f"cspgraph onboard --gdap --domain {domain}" in error.message
        assert f"cspgraph gdap consent --customer {domain}" in error.message
        record = h.store.load(domain)
        assert record is not None and len(record.attempts) == 1  # not the budget's worth
        assert h.clock.advanced < SETTINGS.budget


async def test_a_customer_with_dap_is_still_waited_for_as_before(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    async for h in harness_for(make_emulator(world()), tmp_path):
        result = await h.onboard("withdap.onmicrosoft.com", settings=SETTINGS)
        assert result.state == "done" and len(result.attempts) == 2
