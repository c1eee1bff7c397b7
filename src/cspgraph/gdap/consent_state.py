"""Whether the app is consented in a customer, read from what the token service gives it.

An app-only token is acquired for the customer (a new one: a cached token keeps the claims it
was born with). No token because the app is not in the tenant (AADSTS700016, 7000229, 65001) is
"no"; a token whose ``roles`` lack some of what the sync needs is "partial", naming them; a
token with them all is "yes". Anything else (the network, a credential) is "unknown", with why:
unknown is never shown as no.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cspgraph.gdap.roles import sync_application_permissions
from cspgraph.graph.scope import covers
from cspgraph.http import token_claims
from cspgraph.http.errors import CspGraphError

# The token service's answers for an app that is not (yet) in the tenant.
NOT_CONSENTED = frozenset({"AADSTS700016", "AADSTS7000229", "AADSTS65001", "AADSTS650051"})


class AppTokens(Protocol):
    async def get_token(self, tenant: str, *, fresh: bool = False) -> str: ...


@dataclass(frozen=True)
class ConsentState:
    state: str  # "yes", "partial", "no", "unknown"
    missing: tuple[str, ...] = ()
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "missing": list(self.missing), "detail": self.detail}

    @property
    def label(self) -> str:
        if self.state == "partial":
            return f"partial (missing {', '.join(self.missing)})"
        if self.state == "unknown":
            return f"unknown ({self.detail})" if self.detail else "unknown"
        return self.state


async def consent_state(
    tokens: AppTokens, tenant: str, needed: Sequence[str] | None = None
) -> ConsentState:
    """What the app holds in ``tenant``, against ``needed`` (default: what the sync needs)."""
    wanted = tuple(needed) if needed is not None else sync_application_permissions()
    try:
        token = await tokens.get_token(tenant, fresh=True)
    except CspGraphError as exc:
        if exc.code in NOT_CONSENTED:
            return ConsentState("no", wanted, f"{exc.code}: the app is not in the tenant")
        return ConsentState("unknown", (), f"{exc.code or exc.error_class}: {exc.reason}")
    granted = token_claims.roles(token) or []
    missing = tuple(p for p in wanted if not covers(granted, p))
    if missing:
        return ConsentState("partial", missing)
    return ConsentState("yes")
