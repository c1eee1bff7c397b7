"""Who calls the emulated Graph, as the validated token's claims say (built by authn)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Caller:
    """Who is calling, from the validated token's claims."""

    tenant_id: str
    app_id: str
    delegated: bool  # idtyp "user": an app acting for a signed-in user (or partner agent)
    roles: frozenset[str]  # application permissions (app-only)
    scopes: frozenset[str]  # delegated permissions (scp)
    role_templates: frozenset[str]  # wids: the signed-in user's directory role templates
    object_id: str | None  # oid: the service principal, or the user; absent for partner agents
    claims: dict[str, Any] = field(compare=False, repr=False)
    # A partner agent (DAP or GDAP): signed in from the partner tenant, no member here; acts only
    # through the roles in `wids`.
    agent: bool = False
