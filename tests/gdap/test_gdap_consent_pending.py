"""`cspgraph gdap consent` for a customer whose relationship is not in effect yet: Partner
Center's bare "no commerce relationship" (20002) said as what it is, with the next step — the
approval link for a relationship awaiting approval."""

from __future__ import annotations

from pathlib import Path

import pytest

from csp_emulator.server import Emulator
from cspgraph.gdap.consent import consent_customer
from cspgraph.gdap.invite import InviteRequest, invite
from cspgraph.gdap.roles import DIRECTORY_READERS
from cspgraph.gdap.session import GdapSession
from cspgraph.http.errors import NeedsPersonError
from tests.emulator.gdap_world import STANDALONE
from tests.emulator.graph_tokens import tenant_of
from tests.gdap.conftest import gdap_cli, signed_in


async def test_consent_without_a_relationship_then_with_one_awaiting_approval_says_so(
    emu: Emulator, gdap: GdapSession
) -> None:
    customer = tenant_of(emu, STANDALONE).id
    with pytest.raises(NeedsPersonError) as none_yet:
        await consent_customer(gdap, customer)
    assert none_yet.value.code == "NoRelationshipInEffect"
    assert f"cspgraph gdap invite --customer {customer}" in none_yet.value.message

    made = await invite(
        gdap.api,
        InviteRequest("Standalone-cspgraph", (DIRECTORY_READERS,), customer_id=customer),
        admin_portal=gdap.admin_portal,
    )
    assert made.waiting_for_customer
    with pytest.raises(NeedsPersonError) as pending:
        await consent_customer(gdap, customer)
    assert pending.value.code == "ApprovalPending"
    assert "'Standalone-cspgraph' awaits the customer's approval" in pending.value.message
    assert made.link in pending.value.message


def test_the_consent_command_exits_3_with_the_approval_link(emu: Emulator, tmp_path: Path) -> None:
    config = signed_in(emu, tmp_path)
    customer = tenant_of(emu, STANDALONE).id
    invited = gdap_cli(config, "invite", "--customer", STANDALONE, "--roles", "Directory Readers",
                       "--name", "Standalone-cspgraph", "--json")  # fmt: skip
    assert invited.exit_code == 0, invited.output
    result = gdap_cli(config, "consent", "--customer", STANDALONE)
    assert result.exit_code == 3, result.output
    assert "awaits the customer's approval" in result.output
    assert "granularAdminRelationships/" in result.output and customer in result.output
    assert "code=20002" not in result.output
