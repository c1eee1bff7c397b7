"""`cspgraph onboard --existing` refuses what it cannot wait for, before any state is written: a
domain no tenant has is "no tenant" (exit 2), not an invitation nobody will ever accept. And a
held onboarding names the domain, not its state file's stem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from cspgraph.cli.main import app
from cspgraph.gdap.onboarding import GdapOnboardingStore
from cspgraph.http.errors import NeedsPersonError
from tests.conftest import MakeEmulator
from tests.fleet_gdap.mixed_world import mixed_world_data
from tests.fleet_helpers import SECRET_ENV, config_for


def test_onboard_existing_with_a_domain_no_tenant_has_exits_2_and_leaves_no_state(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    config = config_for(make_emulator(mixed_world_data()), tmp_path)
    config_file = tmp_path / "config.toml"
    config_file.write_text(tomli_w.dumps(config.model.model_dump(exclude_none=True)))
    state = tmp_path / "state"
    common = ["--config", str(config_file), "--json", "--state-dir", str(state)]
    runner = CliRunner()
    typo = "no-such-bakery.onmicrosoft.com"
    refused = runner.invoke(
        app, ["onboard", "--existing", typo, "--region", "NA", *common], env=SECRET_ENV
    )
    assert refused.exit_code == 2, refused.output
    assert "90002" in refused.output and typo in refused.output
    assert "accepted" not in refused.output  # not "has not accepted the invitation yet"
    assert list(state.glob("*.json")) == []
    listed = runner.invoke(app, ["onboard", "--status", *common], env=SECRET_ENV)
    assert listed.exit_code == 0, listed.output
    assert typo not in listed.stdout and json.loads(listed.stdout) is not None


def test_a_held_gdap_onboarding_is_refused_naming_the_domain(tmp_path: Path) -> None:
    store = GdapOnboardingStore(tmp_path)
    with (
        store.lock("wingtip.onmicrosoft.com"),
        pytest.raises(NeedsPersonError) as held,
        store.lock("wingtip.onmicrosoft.com"),
    ):
        pass
    said = held.value.message
    assert "onboarding wingtip.onmicrosoft.com through GDAP right now" in said
    assert "is onboarding gdap-wingtip" not in said
