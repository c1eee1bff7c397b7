"""Graph access tokens minted straight from the emulator's signing key, and a client that sends
them: the Graph routes' tests need exact claims (no roles, a foreign tenant, an expired token)
without going through a sign-in.

The claims follow wire-facts §1.7: v1-shaped, ``iss`` https://sts.windows.net/{tid}/, ``roles`` as
permission names for app-only tokens, ``scp`` and ``wids`` for delegated ones.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

from csp_emulator import wellknown
from csp_emulator.server import Emulator
from csp_emulator.world.model import Tenant
from csp_emulator.world.worldfile import load_world_data
from tests.conftest import tls

# Tokens minted here name their own app, so their throttling budget is theirs alone.
TEST_APP_ID = "0c7e5c3a-0000-4000-8000-00000000aaaa"
PARTNER_DOMAIN = "partner.com"
CUSTOMER_DOMAIN = "customer.com"

# The demo app's application permissions (worldfile.DEMO_APP_PERMISSIONS).
READ_ROLES = (
    "User.Read.All",
    "Group.Read.All",
    "Device.Read.All",
    "Organization.Read.All",
    "DeviceManagementManagedDevices.Read.All",
)
GRAPH_AUDIENCE = "https://graph.microsoft.com"


def tenant_of(emu: Emulator, ref: str) -> Tenant:
    tenant = emu.world.tenant(ref)
    assert tenant is not None, f"no tenant {ref} in the test world"
    return tenant


def _base_claims(emu: Emulator, tenant: Tenant, lifetime: float, app_id: str) -> dict[str, Any]:
    now = int(emu.world.clock.now())
    return {
        "aud": GRAPH_AUDIENCE,
        "iss": f"https://sts.windows.net/{tenant.id}/",
        "idp": f"https://sts.windows.net/{tenant.id}/",
        "iat": now,
        "nbf": now,
        "exp": now + int(lifetime),
        "appid": app_id,
        "appidacr": "1",
        "tid": tenant.id,
        "ver": "1.0",
        "uti": uuid.uuid4().hex,
        "tenant_region_scope": tenant.region,
    }


def app_token(
    emu: Emulator,
    tenant_ref: str = CUSTOMER_DOMAIN,
    *,
    roles: Iterable[str] = READ_ROLES,
    app_id: str = TEST_APP_ID,
    lifetime: float = 3600,
    **overrides: Any,
) -> str:
    """An app-only Graph token for ``tenant_ref``; ``roles=()`` leaves the claim out, as Entra
    does when nothing is granted."""
    tenant = tenant_of(emu, tenant_ref)
    claims = _base_claims(emu, tenant, lifetime, app_id)
    oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant.id}/{app_id}"))
    claims.update({"idtyp": "app", "oid": oid, "sub": oid})
    roles = list(roles)
    if roles:
        claims["roles"] = roles
    claims.update(overrides)
    return emu.ctx.keys.sign(claims, graph_style=True)


def user_token(
    emu: Emulator,
    tenant_ref: str = CUSTOMER_DOMAIN,
    *,
    scp: str = "Directory.AccessAsUser.All",
    wids: Iterable[str] = (wellknown.ROLE_GLOBAL_ADMIN,),
    upn: str | None = None,
    partner_ref: str | None = None,
    app_id: str = TEST_APP_ID,
    **overrides: Any,
) -> str:
    """A delegated Graph token. ``upn`` signs in a user of the tenant; ``partner_ref`` makes it a
    partner agent's token (home STS of the partner, no user object in the customer)."""
    tenant = tenant_of(emu, tenant_ref)
    claims = _base_claims(emu, tenant, 3600, app_id)
    claims.update({"idtyp": "user", "scp": scp, "wids": list(wids), "amr": ["pwd", "mfa"]})
    if upn is not None:
        user = tenant.user_by_upn(upn)
        assert user is not None, f"no user {upn} in {tenant_ref}"
        claims.update(
            {"oid": user["id"], "sub": user["id"], "upn": upn, "name": user["displayName"]}
        )
    if partner_ref is not None:
        partner = tenant_of(emu, partner_ref)
        agent = partner.user_by_upn(f"agent@{partner.default_domain}")
        claims["idp"] = f"https://sts.windows.net/{partner.id}/"
        if agent is not None:
            claims["aai"] = f"tenant: {partner.id}, object: {agent['id']}"
            claims["name"] = agent["displayName"]
    claims.update(overrides)
    return emu.ctx.keys.sign(claims, graph_style=True)


def graph_client(emu: Emulator, token: str | None, **headers: str) -> httpx.Client:
    """An HTTPS client on the emulated Graph origin, trusting the emulator's CA."""
    sent = {"Authorization": f"Bearer {token}"} if token is not None else {}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return httpx.Client(base_url=emu.endpoints.graph, verify=tls(emu), headers=sent)


def control_client(emu: Emulator) -> httpx.Client:
    return httpx.Client(base_url=emu.endpoints.control + "/_emulator", verify=tls(emu))


def all_pages(client: httpx.Client, url: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every page of a collection, following @odata.nextLink verbatim."""
    pages = []
    next_url: str | None = url
    while next_url is not None:
        response = client.get(next_url, **kwargs)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        next_url = body.get("@odata.nextLink")
    return pages


def graph_world(**settings: Any) -> dict[str, Any]:
    """A small world for tests that change things: a partner, two customers of it (one with
    enough users for three default pages), and a customer without an Intune licence."""
    return {
        "settings": {"throttling": {"enabled": False}, **settings},
        "tenant": [
            {
                "domain": PARTNER_DOMAIN,
                "kind": "partner",
                "user": [
                    {"upn": "agent@partner.com", "password": "P@ss-ag", "groups": ["AdminAgents"]},
                    {"upn": "admin@partner.com", "password": "P@ss-admin",
                     "roles": ["Global Administrator"]},
                ],
                "app": [
                    {
                        "display_name": "Fabrikam CSP app",
                        "client_id": "6731de76-14a6-49ae-97bc-6eba6914391e",
                        "client_secret": "app-secret-na",
                        "admin_agents": True,
                        "application_permissions": list(READ_ROLES),
                        "delegated_permissions": ["Directory.AccessAsUser.All"],
                    }
                ],
            },
            {
                "domain": CUSTOMER_DOMAIN,
                "partner": PARTNER_DOMAIN,
                "user": [{"upn": "helpdesk@customer.com", "password": "P@ss-hd",
                          "roles": ["Helpdesk Administrator"]}],
                "generate": {"users": 240, "groups": 5, "devices": 12, "managed_devices": 9,
                             "seed": 3},
            },
            {"domain": "other.com", "partner": PARTNER_DOMAIN, "generate": {"users": 4, "seed": 4}},
            {
                "domain": "nointune.com",
                "partner": PARTNER_DOMAIN,
                "intune": False,
                "generate": {"users": 3, "devices": 2, "managed_devices": 2, "seed": 5},
            },
        ],
    }  # fmt: skip


@contextlib.contextmanager
def graph_emulator(state_dir: Path, **settings: Any) -> Iterator[Emulator]:
    """An emulator of :func:`graph_world`, for a module's worth of read-only tests."""
    data = graph_world(**settings)
    with Emulator(
        lambda: load_world_data(data, source="<graph world>"), state_dir=state_dir
    ) as emu:
        yield emu
