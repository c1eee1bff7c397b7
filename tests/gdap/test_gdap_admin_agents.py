"""A technician outside AdminAgents: Graph answers their relationship list with an empty 200, which
`cspgraph gdap status` says as what it is (needs a person, exit 3), never as "no relationships"."""

from __future__ import annotations

from pathlib import Path

from csp_emulator.server import Emulator
from tests.gdap.conftest import gdap_cli, signed_in

OUTSIDER = "tech@partner.com"  # GDAP roles through a group, but not in AdminAgents


def test_status_for_a_technician_outside_admin_agents_needs_a_person(
    emu: Emulator, tmp_path: Path
) -> None:
    config = signed_in(emu, tmp_path, OUTSIDER)
    result = gdap_cli(config, "status", "--no-consent")
    assert result.exit_code == 3, result.output
    assert "not in AdminAgents" in result.output and OUTSIDER in result.output
    assert "no GDAP relationships" not in result.output


def test_status_for_a_technician_in_admin_agents_lists_the_relationships(
    emu: Emulator, tmp_path: Path
) -> None:
    config = signed_in(emu, tmp_path)  # agent@, in AdminAgents
    result = gdap_cli(config, "status", "--no-consent", "--json")
    assert "not in AdminAgents" not in result.output
    assert '"customers"' in result.stdout
