"""The partner tenants and partner-managed apps a running emulator serves, as the client reads them.

`cspgraph config init --from-emulator` writes a configuration for the world the emulator actually
serves, whichever it is: the demo world's `partner.com` would be wrong for a world of the user's
own (every command would then fail at sign-in). The emulator's control API lists each partner
tenant with its multi-tenant apps (``GET /_emulator/partner-apps``); this module asks it and
picks one app per region, the way a partner registers one partner-managed app per region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cspgraph.emulator_endpoints import EmulatorEndpoints
from cspgraph.http.sessions import requests_session

PATH = "/_emulator/partner-apps"


class ServedWorldError(ValueError):
    """The emulator does not answer, or its world has no partner app to configure; says which."""


@dataclass(frozen=True)
class RegionApp:
    """What a configuration's ``[regions.X]`` needs: the partner tenant and its app."""

    region: str
    domain: str
    client_id: str
    client_secret: str


def served_partners(endpoints: EmulatorEndpoints, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The control API's answer: each partner tenant with its multi-tenant apps."""

    # requests, not asyncio.run: a caller may already run an event loop (Playwright's sync API,
    # a notebook), where asyncio.run refuses to start.
    try:
        with requests_session(endpoints.ca_bundle, timeout=(timeout, timeout)) as session:
            answer = session.get(endpoints.control + PATH)
            answer.raise_for_status()
            data = answer.json()
    except Exception as exc:  # connection, TLS, HTTP or JSON: each means "not served"
        raise ServedWorldError(
            f"the emulator named by {endpoints.source} does not answer at {endpoints.control} "
            f"({type(exc).__name__}); start it (`cspgraph emulator serve`) and use the endpoints "
            "file it prints"
        ) from None
    partners = data.get("partners") if isinstance(data, dict) else None
    if not isinstance(partners, list):
        raise ServedWorldError(f"{endpoints.control}{PATH} did not answer with a partner list")
    return [p for p in partners if isinstance(p, dict)]


def region_apps(
    partners: list[dict[str, Any]], only: tuple[str, ...] = ()
) -> tuple[list[RegionApp], list[str]]:
    """One app per region, and a note for each partner tenant left out (and why).

    In each partner tenant the app in AdminAgents comes first (the partner-managed app of the
    DAP story), then any other multi-tenant app with a secret; a certificate-only app cannot be
    written (its private key is the world author's, not the emulator's). ``only`` keeps the
    partner tenants of those domains; two partner tenants left in one region are ambiguous.
    """
    wanted = {d.lower() for d in only}
    if wanted:
        known = {str(p.get("domain", "")).lower() for p in partners}
        unknown = sorted(wanted - known)
        if unknown:
            raise ServedWorldError(
                f"no partner tenant {', '.join(unknown)} in the served world; it has "
                f"{', '.join(sorted(known)) or 'none'}"
            )
        partners = [p for p in partners if str(p.get("domain", "")).lower() in wanted]
    if not partners:
        raise ServedWorldError(
            "the served world has no partner tenant: there is nothing to sign in as (a world "
            'file needs a tenant with kind = "partner" and a multi-tenant app)'
        )
    by_region: dict[str, list[dict[str, Any]]] = {}
    for partner in partners:
        by_region.setdefault(str(partner.get("region") or "NA"), []).append(partner)
    chosen: list[RegionApp] = []
    notes: list[str] = []
    for region, tenants in sorted(by_region.items()):
        if len(tenants) > 1:
            names = ", ".join(sorted(str(t.get("domain")) for t in tenants))
            raise ServedWorldError(
                f"region {region} has {len(tenants)} partner tenants ({names}); a configuration "
                "has one app per region: choose with --partner DOMAIN"
            )
        partner = tenants[0]
        apps = sorted(
            (a for a in partner.get("apps") or [] if isinstance(a, dict)),
            key=lambda a: not a.get("admin_agents"),
        )
        usable = [a for a in apps if a.get("client_secret")]
        if not usable:
            why = (
                "its multi-tenant apps have no client secret"
                if apps
                else "it has no multi-tenant app"
            )
            notes.append(f"{partner.get('domain')} ({region}) left out: {why}")
            continue
        app = usable[0]
        chosen.append(
            RegionApp(
                region=region,
                domain=str(partner["domain"]),
                client_id=str(app["client_id"]),
                client_secret=str(app["client_secret"]),
            )
        )
    if not chosen:
        raise ServedWorldError(
            "no partner tenant in the served world has a multi-tenant app with a client secret: "
            + "; ".join(notes)
            + " (write the configuration by hand: docs/configuration.md)"
        )
    return chosen, notes
