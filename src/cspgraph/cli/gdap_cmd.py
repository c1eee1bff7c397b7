"""`cspgraph gdap roles|invite|status|assign|consent`: GDAP relationships, their access and the
app's consent in each customer.

Thin: each command reads its options, calls :mod:`cspgraph.gdap`, prints (a table on a terminal,
JSON when piped or with ``--json``). The GDAP APIs are called as the signed-in technician
(``cspgraph login``); ``--agent-user`` picks one when several have signed in.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cspgraph.cli import common

if TYPE_CHECKING:
    from cspgraph.config import Config
    from cspgraph.gdap.session import GdapSession
    from cspgraph.identity import TokenProvider

app = typer.Typer(
    help="GDAP: roles, invitations, status, access assignments and the app's consent.",
    no_args_is_help=True,
    context_settings=common.CONTEXT_SETTINGS,
)

REGION: Any = typer.Option(
    None, "--region", metavar="REGION", help="The region (needed when several are configured)."
)
AGENT_USER: Any = typer.Option(
    None, "--agent-user", metavar="UPN", help="The signed-in technician to act as, if several."
)
CUSTOMER_HELP = "The customer: a tenant ID or a domain."


def parse_days(text: str, option: str) -> timedelta:
    """``30d``, ``30`` (days), ``12h``, ``2w``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhw]?)\s*", text.lower())
    if match is None:
        raise common.UsageError(f"{option} {text!r}: expected a span like 30d, 2w or 12h")
    value, unit = float(match.group(1)), match.group(2) or "d"
    return timedelta(**{{"d": "days", "h": "hours", "w": "weeks"}[unit]: value})


async def world_now(cfg: Config) -> datetime:
    """Now: the emulator's world clock when the configuration names an emulator (its
    relationships end on that clock), else this machine's."""
    endpoints = cfg.emulator_endpoints()
    if endpoints is None:
        return datetime.now(UTC)
    from cspgraph.partner.onboarding import EmulatorClock

    clock = await EmulatorClock.of(endpoints)
    try:
        return datetime.fromtimestamp(clock.now(), UTC)
    finally:
        await clock.aclose()


async def tenant_of(provider: TokenProvider, customer: str) -> str:
    """A customer's tenant id, from a GUID or a domain (OIDC discovery)."""
    info = await provider.discovery.resolve(customer)
    return info.tenant_id.lower()


def _session(provider: TokenProvider, region: str | None, agent_user: str | None) -> GdapSession:
    from cspgraph.gdap.session import GdapSession

    return GdapSession.open(provider, region=region, agent_user=agent_user)


# -- cspgraph gdap roles ---------------------------------------------------------------------------


@app.command("roles")
def roles(
    all_roles: bool = typer.Option(
        False, "--all", help="Every role GDAP offers (default: the roles partners commonly use)."
    ),
    json_out: bool = common.JSON_OPTION,
) -> None:
    """The role catalog (name, template id, what it allows) and the least privilege for each of
    cspgraph's own operations."""
    with common.command():
        from cspgraph.gdap.roles import CSPGRAPH_ROLES, catalog, cspgraph_needs, name_of

        shown = [r for r in catalog() if all_roles or r.allows is not None]
        needs = cspgraph_needs()
        if common.wants_json(json_out):
            common.print_json(
                {
                    "roles": [r.as_dict() for r in shown],
                    "cspgraph_needs": [n.as_dict() for n in needs],
                    "cspgraph_roles": [
                        {"template_id": t, "name": name_of(t)} for t in CSPGRAPH_ROLES
                    ],
                }
            )
            return
        from rich.table import Table

        table = Table("role", "template id", "allows", title=f"{len(shown)} GDAP role(s)")
        for r in shown:
            table.add_row(r.name, r.template_id, r.allows or "see Entra's built-in roles reference")
        least = Table(
            "operation",
            "where",
            "GDAP role",
            "app permission",
            title="least privilege for cspgraph",
        )
        for n in needs:
            least.add_row(
                n.operation,
                n.where,
                ", ".join(name_of(t) for t in n.roles) or "none",
                f"{', '.join(n.permissions) or 'none'} ({n.kind})",
            )
        out = common.console()
        out.print(table)
        out.print(least)
        names = ", ".join(name_of(t) for t in CSPGRAPH_ROLES)
        out.print(f"`--roles cspgraph` asks for: {names}", soft_wrap=True)


# -- cspgraph gdap invite --------------------------------------------------------------------------


@app.command("invite")
def invite(
    roles_: list[str] = typer.Option(
        ...,
        "--roles",
        metavar="ROLES",
        help="Role names or template ids, comma-separated or repeated; `cspgraph` for the least "
        "set cspgraph needs.",
    ),
    customer: str | None = typer.Option(
        None, "--customer", metavar="CUSTOMER", help=CUSTOMER_HELP + " Default: any customer."
    ),
    duration: str = typer.Option(
        "P730D", "--duration", metavar="ISO8601", help="P1D to P2Y (P730D)."
    ),
    auto_extend: bool = typer.Option(
        False, "--auto-extend", help="Extend by P180D at the end (not with Global Administrator)."
    ),
    name: str | None = typer.Option(
        None, "--name", metavar="NAME", help="At most 50 characters (default: cspgraph-CUSTOMER)."
    ),
    region: str | None = REGION,
    agent_user: str | None = AGENT_USER,
    json_out: bool = common.JSON_OPTION,
    config: Path | None = common.CONFIG_OPTION,
) -> None:
    """Create a GDAP relationship, lock it for approval and print the approval link (idempotent
    by name: run it again to see the link again)."""
    from cspgraph.gdap.invite import Invitation, InviteError, InviteRequest, default_name
    from cspgraph.gdap.invite import invite as do_invite
    from cspgraph.gdap.roles import UnknownRoleError, resolve_roles

    with common.command() as run:
        try:
            role_ids = resolve_roles(roles_)
            label = name or default_name(customer, role_ids)
            InviteRequest(label, role_ids, duration, auto_extend).check()  # before any request
        except (UnknownRoleError, InviteError) as exc:
            raise common.UsageError(
                str(exc) if isinstance(exc, ValueError) else exc.message
            ) from None
        cfg = run.load_config(config)

        async def go() -> Invitation:
            from cspgraph.identity import TokenProvider

            async with TokenProvider(cfg, workers=2) as provider:
                tenant = await tenant_of(provider, customer) if customer else None
                request = InviteRequest(
                    label, role_ids, duration, auto_extend, tenant,
                    None if customer is None or tenant == customer.lower() else customer,
                )  # fmt: skip
                async with _session(provider, region, agent_user) as gdap:
                    return await do_invite(gdap.api, request, admin_portal=gdap.admin_portal)

        import asyncio  # imported where used: keeps `cspgraph --help` fast

        result = asyncio.run(go())
    if common.wants_json(json_out):
        common.print_json(result.as_dict())
        return
    common.say(result.summary)
    if result.waiting_for_customer:
        typer.echo(result.link)  # the link alone on stdout: easy to copy or pipe
    elif result.relationship.status in ("approved", "activating", "active", "expiring"):
        common.say("the customer has approved it; next: cspgraph gdap assign")


# -- cspgraph gdap status --------------------------------------------------------------------------


@app.command("status")
def status(
    customer: str | None = typer.Option(None, "--customer", metavar="CUSTOMER", help=CUSTOMER_HELP),
    expiring_within: str = typer.Option(
        "30d", "--expiring-within", metavar="SPAN", help="Flag relationships ending within this."
    ),
    pending_longer_than: str = typer.Option(
        "7d", "--pending-longer-than", metavar="SPAN", help="Flag approvals waiting longer."
    ),
    consent: bool = typer.Option(
        True, "--consent/--no-consent", help="Check the app's consent in each customer."
    ),
    region: str | None = REGION,
    agent_user: str | None = AGENT_USER,
    json_out: bool = common.JSON_OPTION,
    config: Path | None = common.CONFIG_OPTION,
) -> None:
    """Per customer: relationships, roles, status, end date and days left, access assignments,
    and the app's consent. Exit 3 when something needs a person."""
    from cspgraph.gdap.consent_state import ConsentState, consent_state
    from cspgraph.gdap.status import GdapStatus, gdap_status

    with common.command() as run:
        window = parse_days(expiring_within, "--expiring-within")
        patience = parse_days(pending_longer_than, "--pending-longer-than")
        cfg = run.load_config(config)

        async def go() -> GdapStatus:
            from cspgraph.identity import TokenProvider

            async with TokenProvider(cfg, workers=2) as provider:

                async def check(tenant: str) -> ConsentState:
                    return await consent_state(provider, tenant)

                tenant = await tenant_of(provider, customer) if customer else None
                async with _session(provider, region, agent_user) as gdap:
                    return await gdap_status(
                        gdap.api, now=await world_now(cfg), customer=tenant,
                        expiring_within=window, pending_longer_than=patience,
                        consent=check if consent else None,
                    )  # fmt: skip

        import asyncio

        result = asyncio.run(go())
    if common.wants_json(json_out):
        common.print_json(result.as_dict())
    else:
        _print_status(result)
    if result.needs_person:
        count = sum(len(c.needs) for c in result.customers)
        common.fail(common.Exit.NEEDS_PERSON, f"error: needs_person: {count} item(s) need a person")


def _print_status(result: Any) -> None:
    from rich.table import Table

    from cspgraph.gdap.roles import describe

    out = common.console()
    if not result.customers:
        out.print(
            "no GDAP relationships (a technician outside AdminAgents also sees none: Graph "
            "answers such a caller with an empty list)",
            soft_wrap=True,
        )
    for entry in result.customers:
        consent = entry.consent.label if entry.consent else "not checked"
        table = Table(
            "relationship", "status", "roles", "ends", "days left", "assignments",
            title=f"{entry.label} — consent: {consent}",
        )  # fmt: skip
        for state in entry.relationships:
            rel = state.relationship
            if state.assignments is None:
                assigned = state.assignments_error or "-"
            else:
                assigned = (
                    "; ".join(
                        f"{result.groups.get(a.group_id, a.group_id)}: "
                        f"{describe(a.roles)} ({a.status})"
                        for a in state.assignments
                    )
                    or "none"
                )
            table.add_row(
                rel.display_name, rel.status, describe(rel.roles),
                f"{rel.ends:%Y-%m-%d}" if rel.ends else "unknown",
                "unknown" if state.days_left is None else str(state.days_left), assigned,
            )  # fmt: skip
        out.print(table)
        for why in entry.needs:
            out.print(f"  needs a person: {why}", soft_wrap=True)
