"""`cspgraph gdap roles` on a terminal: every role's template id and every permission name whole,
however narrow the terminal (a name cut to "DelegatedAdminRel…" is a wrong name)."""

from __future__ import annotations

import pytest

from cspgraph.gdap.roles import catalog, cspgraph_needs
from tests.terminal import run_on_terminal


@pytest.mark.parametrize("columns", [80, 120])
def test_gdap_roles_shows_every_permission_and_template_id_whole(columns: int) -> None:
    run = run_on_terminal(["gdap", "roles"], columns=columns)
    assert run.returncode == 0, run.output
    assert "…" not in run.output
    for need in cspgraph_needs():
        for permission in need.permissions:
            assert permission in run.output
    for role in catalog():
        if role.allows is not None:
            assert role.template_id in run.output
    # the GDAP relationship read the sync needs in the partner tenant is listed
    assert "application permission: DelegatedAdminRelationship.Read.All" in run.output
