"""`cspgraph gdap roles|invite|status|assign|consent`: GDAP relationships, their access and the
app's consent in each customer.

Thin: each command reads its options, calls :mod:`cspgraph.gdap`, prints (a table on a terminal,
JSON when piped or with ``--json``). The GDAP APIs are called as the signed-in technician
(``cspgraph login``); ``--agent-user`` picks one when several have signed in.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

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
CUSTOMER: Any = typer.Option(None, "--customer", metavar="CUSTOMER", help=CUSTOMER_HELP)
EMULATOR_CLOCK: Any = typer.Option(
    False, "--emulator-clock", help="Move the emulator's world clock instead of waiting."
)
T = TypeVar("T")


# Ctrl-C: every step is idempotent or kept in a state file.
AGAIN = "interrupted; run the same command again to continue"


def parse_seconds(text: str, option: str) -> float:
    """Seconds from ``90``, ``45s``, ``8m``, ``1h30m``."""
    value = text.strip().lower()
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", value)
    if not value or match is None or not any(match.groups()):
        raise common.UsageError(f"{option} {text!r}: expected a duration like 90, 45s, 8m or 1h")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


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


@contextlib.asynccontextmanager
async def technician(
    cfg: Config, region: str | None, agent_user: str | None, *, emulator_clock: bool = False
) -> AsyncIterator[tuple[TokenProvider, Any, GdapSession]]:
    """What every GDAP command acts through: the app's tokens, the clock it waits on (the
    emulator's world clock with ``--emulator-clock``) and the signed-in technician's session."""
    from cspgraph.gdap.session import GdapSession
    from cspgraph.identity import TokenProvider

    async with (
        TokenProvider(cfg, workers=2) as provider,
        common.world_clock(cfg, emulator_clock) as clock,
        GdapSession.open(provider, region=region, agent_user=agent_user) as gdap,
    ):
        yield provider, clock, gdap


def run_async(go: Callable[[], Coroutine[Any, Any, T]]) -> T:
    import asyncio  # imported where used: keeps `cspgraph --help` fast

    return asyncio.run(go())


def show(result: Any, json_out: bool, printer: Callable[[Any], None]) -> None:
    """The result as JSON (piped, or ``--json``), else as ``printer`` puts it."""
    if common.wants_json(json_out):
        common.print_json(result.as_dict())
    else:
        printer(result)


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
        from rich.table import Column, Table

        # Wrapped or folded, never cut: a template id cut short is a wrong id.
        table = Table(
            Column("role", overflow="fold"),
            Column("template id", min_width=36, no_wrap=True),
            Column("allows", overflow="fold"),
            title=f"{len(shown)} GDAP role(s)",
        )
        for r in shown:
            table.add_row(r.name, r.template_id, r.allows or "see Entra's built-in roles reference")
        out = common.console()
        out.print(table)
        # A list, not a table: a permission name is long, and a table squeezed into the
        # terminal would cut it ("DelegatedAdminRel…"); a wrapped line keeps it whole.
        out.print("least privilege for cspgraph", style="italic")
        for n in needs:
            roles = ", ".join(name_of(t) for t in n.roles) or "none"
            out.print(f"{n.operation} (in the {n.where})", style="bold", soft_wrap=True)
            out.print(f"  GDAP role: {roles}", soft_wrap=True)
            out.print(
                f"  {n.kind} permission: {', '.join(n.permissions) or 'none'}", soft_wrap=True
            )
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
            async with technician(cfg, region, agent_user) as (provider, _, gdap):
                tenant = await tenant_of(provider, customer) if customer else None
                request = InviteRequest(
                    label, role_ids, duration, auto_extend, tenant,
                    None if customer is None or tenant == customer.lower() else customer,
                )  # fmt: skip
                return await do_invite(gdap.api, request, admin_portal=gdap.admin_portal)

        result = run_async(go)
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
    customer: str | None = CUSTOMER,
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
            async with technician(cfg, region, agent_user) as (provider, _, gdap):

                async def check(tenant: str) -> ConsentState:
                    return await consent_state(provider, tenant)

                tenant = await tenant_of(provider, customer) if customer else None
                return await gdap_status(
                    gdap.api, now=await world_now(cfg), customer=tenant,
                    expiring_within=window, pending_longer_than=patience,
                    consent=check if consent else None,
                )  # fmt: skip

        result = run_async(go)
    show(result, json_out, _print_status)
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


# -- cspgraph gdap assign --------------------------------------------------------------------------


def parse_group_options(items: list[str]) -> dict[str, str]:
    """``--group 'Directory Readers=GDAP Readers'`` → role template id → group name or id."""
    from cspgraph.gdap.roles import UnknownRoleError, resolve_role

    mapping: dict[str, str] = {}
    for item in items:
        role, sep, group = item.partition("=")
        if not sep or not role.strip() or not group.strip():
            raise common.UsageError(f"--group {item!r}: expected ROLE=GROUP")
        try:
            mapping[resolve_role(role)] = group.strip()
        except UnknownRoleError as exc:
            raise common.UsageError(f"--group {item!r}: {exc}") from None
    return mapping


@app.command("assign")
def assign(
    customer: str | None = CUSTOMER,
    relationship: str | None = typer.Option(
        None,
        "--relationship",
        metavar="ID|NAME",
        help="The relationship (default: the "
        "customer's one active relationship that is not Microsoft-led).",
    ),
    create_groups: bool = typer.Option(
        False, "--create-groups", help="Make one security group per role where none exists."
    ),
    group: list[str] = typer.Option(
        [], "--group", metavar="ROLE=GROUP", help="Give ROLE to this existing group (repeatable)."
    ),
    prefix: str = typer.Option(
        "cspgraph GDAP", "--group-prefix", metavar="TEXT", help="Groups are named 'TEXT ROLE'."
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until every one is active."),
    budget: str = typer.Option("8m", "--budget", metavar="DURATION", help="How long to wait."),
    emulator_clock: bool = EMULATOR_CLOCK,
    region: str | None = REGION,
    agent_user: str | None = AGENT_USER,
    json_out: bool = common.JSON_OPTION,
    config: Path | None = common.CONFIG_OPTION,
) -> None:
    """Give a relationship's roles to partner security groups (one group per role) and wait
    until the assignments are active; resumable. Reports technicians left without a role."""
    from cspgraph.gdap.assign import AssignResult
    from cspgraph.gdap.assign import assign as do_assign

    with common.command(interrupted=AGAIN) as run:
        if (customer is None) == (relationship is None):
            raise common.UsageError("name the relationship: --customer or --relationship")
        mapping = parse_group_options(group)
        seconds = parse_seconds(budget, "--budget")
        cfg = run.load_config(config)

        async def go() -> AssignResult:
            acting = technician(cfg, region, agent_user, emulator_clock=emulator_clock)
            async with acting as (provider, clock, gdap):
                tenant = await tenant_of(provider, customer) if customer else None
                rel = await pick_relationship(gdap, relationship, tenant)
                return await do_assign(
                    gdap.api, rel, groups=mapping, create_groups=create_groups,
                    prefix=prefix, wait=wait, clock=clock, budget=seconds,
                    on_progress=common.say,
                )  # fmt: skip

        result = run_async(go)
    show(result, json_out, _print_assign)


async def pick_relationship(gdap: GdapSession, wanted: str | None, tenant: str | None) -> Any:
    """A relationship by id or name, or the customer's one active relationship (``MLT_…`` ones
    left out: Microsoft made them, read-only)."""
    rels = await gdap.api.relationships(customer=tenant)
    if wanted is not None:
        for rel in rels:
            if wanted in (rel.id, rel.display_name):
                return rel
        raise common.UsageError(f"--relationship {wanted}: no such relationship of this partner")
    active = [r for r in rels if r.gives_access and not r.is_mlt]
    if len(active) == 1:
        return active[0]
    if not active:
        ours = [r for r in rels if not r.is_mlt]
        if ours:
            # Not "invite first": the customer has one waiting for approval or activation, or
            # one that ended. The most hopeful goes on, and assigning it says what a person does
            # next (send the link again, wait, invite again), exit 3 or 4 as with --relationship.
            from cspgraph.gdap.api import PENDING_STATUSES

            waiting = [r for r in ours if r.status in PENDING_STATUSES]
            by_end = sorted(ours, key=lambda r: r.ends.timestamp() if r.ends else 0.0)
            return (waiting or by_end)[-1]
        pending = ", ".join(f"{r.display_name} ({r.status})" for r in rels) or "none"
        raise common.UsageError(
            f"--customer {tenant}: no GDAP relationship of this partner (relationships: "
            f"{pending}); invite the customer first (cspgraph gdap invite)"
        )
    names = ", ".join(r.display_name for r in active)
    raise common.UsageError(f"several active relationships ({names}): pick one with --relationship")


def _print_assign(result: Any) -> None:
    from rich.table import Table

    from cspgraph.gdap.roles import describe

    names = {g.group_id: g.group_name for g in result.groups}
    table = Table("group", "roles", "status", title=result.relationship.display_name)
    for a in result.assignments:
        mark = (
            " (new)" if a.id in result.created else " (changed)" if a.id in result.changed else ""
        )
        table.add_row(names.get(a.group_id, a.group_id), describe(a.roles), a.status + mark)
    out = common.console()
    out.print(table)
    if result.technicians_unknown is not None:
        out.print(f"technicians: unknown ({result.technicians_unknown})", soft_wrap=True)
    elif result.technicians_without_role:
        out.print(
            "technicians in AdminAgents with no role in this customer (their sign-in there fails "
            "with AADSTS50020; add them to a group above): "
            + ", ".join(result.technicians_without_role),
            soft_wrap=True,
        )


# -- cspgraph gdap consent -------------------------------------------------------------------------


@app.command("consent")
def consent(
    customer: str = typer.Option(..., "--customer", metavar="CUSTOMER", help=CUSTOMER_HELP),
    retry_every: str = typer.Option(
        "60s", "--retry-every", metavar="DURATION", help="Between attempts (each a new token)."
    ),
    budget: str = typer.Option(
        "15m", "--budget", metavar="DURATION", help="Give up this long after the consent."
    ),
    emulator_clock: bool = EMULATOR_CLOCK,
    region: str | None = REGION,
    agent_user: str | None = AGENT_USER,
    json_out: bool = common.JSON_OPTION,
    config: Path | None = common.CONFIG_OPTION,
) -> None:
    """Consent the region's app in a GDAP customer with exactly what cspgraph needs (Partner
    Center's consent, then the sync's app roles through Graph), put drift right, and wait until
    a new app-only token carries it. Exit 3 with the /adminconsent link when a customer
    administrator must grant the app roles."""
    from cspgraph.gdap.consent import ConsentResult, consent_customer

    with common.command(interrupted=AGAIN) as run:
        every, seconds = (
            parse_seconds(retry_every, "--retry-every"),
            parse_seconds(budget, "--budget"),
        )
        if every <= 0:
            raise common.UsageError("--retry-every must be more than 0 seconds")
        cfg = run.load_config(config)

        async def go() -> ConsentResult:
            acting = technician(cfg, region, agent_user, emulator_clock=emulator_clock)
            async with acting as (provider, clock, gdap):
                tenant = await tenant_of(provider, customer)
                return await consent_customer(
                    gdap, tenant, clock=clock, retry_every=every, budget=seconds,
                    on_progress=common.say,
                )  # fmt: skip

        result = run_async(go)
    show(result, json_out, _print_consent)
    if result.admin_consent_link is not None:
        common.fail(
            common.Exit.NEEDS_PERSON,
            "error: needs_person: the technician's GDAP roles do not let them grant the app's "
            "application permissions; the customer's Global Administrator opens:",
            result.admin_consent_link,
        )


def _print_consent(result: Any) -> None:
    lines = [
        f"customer {result.customer}: app {result.app_id}",
        f"  Partner Center consent: {result.partner_center} ({', '.join(result.scopes)})",
    ]
    lines += [f"  drift: {d}" for d in result.drift]
    if result.app_roles_added:
        lines.append(f"  app roles granted: {', '.join(result.app_roles_added)}")
    if result.app_roles_present:
        lines.append(f"  app roles already there: {', '.join(result.app_roles_present)}")
    denied = sum(1 for a in result.attempts if not a.ok)
    if result.attempts:
        lines.append(
            f"  propagation: {len(result.attempts)} attempt(s) with a new token, {denied} denied"
        )
    if result.state is not None:
        lines.append(f"  consent: {result.state.label}")
    common.console().print("\n".join(lines), soft_wrap=True)


# -- cspgraph onboard --gdap | --status (registered by partner_cmd.onboard) ------------------------


def onboard_gdap(
    domain: str | None,
    *,
    region: str | None,
    roles: list[str],
    create_groups: bool,
    group: list[str],
    name: str | None,
    state_dir: Path | None,
    emulator_clock: bool,
    retry_every: str,
    json_out: bool,
    config: Path | None,
    agent_user: str | None = None,
) -> None:
    """`cspgraph onboard --gdap --domain DOMAIN`: resumable; exits 3 while the customer has not
    approved (with the link) or must grant the app's roles (with the /adminconsent link). Every
    stop prints the onboarding's JSON state when piped, a failure's too (then its error line)."""
    from cspgraph.gdap.onboarding import (
        GdapOnboardingResult,
        GdapOnboardingSettings,
        GdapOnboardingStore,
        stopped_state,
    )
    from cspgraph.gdap.onboarding import onboard_gdap as do_onboard
    from cspgraph.gdap.roles import UnknownRoleError, resolve_roles
    from cspgraph.http.errors import CspGraphError

    with common.command(interrupted=AGAIN) as run:
        if domain is None:
            raise common.UsageError("onboard --gdap needs --domain (the customer's tenant)")
        try:
            role_ids = resolve_roles(roles or ["cspgraph"])
        except UnknownRoleError as exc:
            raise common.UsageError(str(exc)) from None
        mapping = parse_group_options(group)
        settings = GdapOnboardingSettings(retry_every=parse_seconds(retry_every, "--retry-every"))
        cfg = run.load_config(config)

        async def go() -> GdapOnboardingResult:
            acting = technician(cfg, region, agent_user, emulator_clock=emulator_clock)
            async with acting as (_, clock, gdap):
                return await do_onboard(
                    gdap, domain, roles=role_ids, name=None if name is None else name,
                    create_groups=create_groups, groups=mapping,
                    store=GdapOnboardingStore(state_dir), clock=clock, settings=settings,
                    on_progress=common.say,
                )  # fmt: skip

        try:
            result = run_async(go)
        except CspGraphError as exc:
            stopped = stopped_state(state_dir, domain, exc) if common.wants_json(json_out) else None
            if stopped is not None:
                common.print_json(stopped)
            raise
    show(result, json_out, lambda r: common.console().print(r.summary, soft_wrap=True))
    if result.needs_approval:
        common.fail(
            common.Exit.NEEDS_PERSON,
            f"error: needs_person: {domain} waits for its Global Administrator's approval; run "
            "the same command again once approved",
        )
    if result.needs_admin_consent:
        common.fail(
            common.Exit.NEEDS_PERSON,
            f"error: needs_person: {domain}'s Global Administrator must grant the app's "
            "permissions (the /adminconsent link above); then run the same command again",
        )


def onboard_status(state_dir: Path | None, json_out: bool) -> None:
    """`cspgraph onboard --status`: every onboarding in flight, from the state files."""
    with common.command():
        from cspgraph.gdap.onboarding import onboardings_in_flight

        items = onboardings_in_flight(state_dir)
        if common.wants_json(json_out):
            common.print_json(items)
            return
        if not items:
            common.say("no onboarding in flight")
            return
        from rich.table import Table

        table = Table("domain", "kind", "state", "since", "next step", title="onboarding in flight")
        for item in items:
            step = item["next_step"] + (f": {item['link']}" if item["link"] else "")
            if item["last_error"]:
                step += f" (last run stopped: {item['last_error']})"
            table.add_row(item["domain"], item["kind"], item["state"], item["since"] or "", step)
        common.console().print(table)
