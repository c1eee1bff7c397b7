"""`cspgraph token`, `login`, `logout`, `whoami`: tokens and partner agents.

A token is shown decoded (its claims), never as the bearer string unless ``--raw`` asks for it:
terminals keep scrollback and CI keeps logs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cspgraph.cli import common

if TYPE_CHECKING:
    from cspgraph.identity import TokenProvider

# The claims that are times (seconds since the epoch): shown with the time they stand for.
TIME_CLAIMS = frozenset({"exp", "iat", "nbf", "auth_time"})


@contextmanager
def _provider(
    config_path: Path | None, run: common.Run, *, online: bool = True
) -> Iterator[TokenProvider]:
    """A TokenProvider for the configuration, closed afterwards (which writes its caches).
    ``online=False``: for commands that only read and write the token cache."""
    from cspgraph.identity import TokenProvider

    provider = TokenProvider(run.load_config(config_path, online=online), workers=2)
    try:
        yield provider
    finally:
        provider.close()


def decode_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (Graph tokens are not for clients to verify)."""
    import jwt

    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def token(
    customer: str = typer.Option(
        ..., "--customer", "-c", metavar="CUSTOMER", help="Tenant ID, domain or user@domain."
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Evict this tenant's tokens, get a new one."),
    agent: bool = typer.Option(False, "--agent", help="The signed-in agent's token (delegated)."),
    agent_user: str | None = typer.Option(
        None, "--agent-user", metavar="UPN", help="Which signed-in agent, when several are."
    ),
    raw: bool = typer.Option(False, "--raw", help="Print the bearer token itself."),
    json_out: bool = common.JSON_OPTION,
    config: Path | None = common.CONFIG_OPTION,
) -> None:
    """Get a Graph token for a customer and show its claims (decoded, unverified)."""
    with common.command() as run, _provider(config, run) as provider:
        route = provider.route_sync(customer)
        if agent:
            value = provider.agent(username=agent_user).get_token_sync(customer, fresh=fresh)
        else:
            value = provider.get_token_sync(customer, fresh=fresh)
    if raw:
        typer.echo(value)
        return
    claims = decode_claims(value)
    if common.wants_json(json_out):
        common.print_json(dict(sorted(claims.items())))
        return
    from rich.table import Table
    from rich.text import Text

    console = common.console()
    console.print(
        Text.assemble((f"{'delegated' if agent else 'app-only'} token", "bold")),
        f"for {customer}: tenant "
        f"{route.tenant_id}, region {route.region}, app {route.identity.client_id} "
        f"(partner {route.identity.partner_tenant})",
        soft_wrap=True,
    )
    table = Table("claim", "value", show_header=False)
    for name in sorted(claims):
        value_text = claims[name]
        if name in TIME_CLAIMS:
            shown = common.when(value_text)
        else:
            shown = value_text if isinstance(value_text, str) else json.dumps(value_text)
        table.add_row(name, shown)
    console.print(table)


def login(
    customer: str = typer.Option(
        ..., "--customer", "-c", metavar="CUSTOMER", help="The customer to sign in at."
    ),
    v1: bool = typer.Option(False, "--v1", help="Use the v1 endpoints (resource=)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Print the URL, open nothing."),
    login_hint: str | None = typer.Option(
        None, "--login-hint", metavar="UPN", help="Pre-fill the user name."
    ),
    timeout: float = common.SIGN_IN_TIMEOUT_OPTION,
    json_out: bool = common.JSON_OPTION,
    config: Path | None = common.CONFIG_OPTION,
) -> None:
    """Sign a partner agent in at a customer's authority (auth code + PKCE, loopback redirect).

    The agent's refresh token then serves every customer of the region without signing in again.
    """
    with (
        common.command(interrupted="interrupted: nobody signed in") as run,
        _provider(config, run) as provider,
    ):

        def show(url: str) -> None:
            common.say(f"Open this URL in a browser to sign in:\n\n  {url}\n")

        result = provider.agent().sign_in(
            customer,
            v1=v1,
            open_browser=not no_browser,
            show_url=show,
            timeout=timeout,
            login_hint=login_hint,
        )
        if result.clock_skew is not None:
            emulated = provider.config.emulator_endpoints() is not None
            common.say(skew_warning(result.clock_skew, emulator=emulated))
    if common.wants_json(json_out):
        common.print_json(
            {
                "username": result.account.username,
                "tenant_id": result.tenant_id,
                "region": result.region,
                "protocol": result.protocol,
                "clock_skew_s": None if result.clock_skew is None else round(result.clock_skew),
                "scopes": list(result.scopes),
            }
        )
        return
    held = ", ".join(result.scopes) or "none"
    typer.echo(
        f"signed in: {result.account.username} at tenant {result.tenant_id} "
        f"(region {result.region}, {result.protocol}); delegated permissions: {held}"
    )


def skew_warning(skew: float, *, emulator: bool) -> str:
    """What a sign-in whose id_token shows a clock skew tells the person (it still signed in:
    cspgraph.identity.agent.clock_skew says why)."""
    size = abs(round(skew))
    span = f"about {round(size / 60)} min" if size >= 90 else f"{size} s"
    who = "the emulator's world clock" if emulator else "the identity platform's clock"
    way = "ahead of" if skew > 0 else "behind"
    if emulator:
        why = (
            "expected after its clock was moved on (POST /_emulator/clock, --emulator-clock); "
            "restart the emulator for a clock that agrees"
        )
    else:
        why = (
            "Entra ID's clocks are right, so this machine's is wrong: set it (NTP, e.g. "
            "`timedatectl set-ntp true`), or times shown here (token expiry) will be off"
        )
    return (
        f"warning: clock skew of {round(skew):+d} s: {who} is {span} {way} this machine's, by the "
        f"id_token's times. The sign-in stands (the tokens came straight from the token "
        f"endpoint, and their lifetime counts from now); {why}"
    )


def whoami(
    json_out: bool = common.JSON_OPTION,
    config: Path | None = common.CONFIG_OPTION,
) -> None:
    """The configured partner identities and the signed-in agents."""
    with common.command() as run, _provider(config, run, online=False) as provider:
        identities = provider.config.identities
        accounts = provider.agent().accounts()
    if common.wants_json(json_out):
        common.print_json(
            {
                "identities": {
                    name: {
                        "partner_tenant": i.partner_tenant,
                        "client_id": i.client_id,
                        "serves": sorted(i.scopes),
                        "credential": i.credential_source,
                    }
                    for name, i in identities.items()
                },
                "agents": [
                    {
                        "username": a.username,
                        "region": a.region,
                        "home_tenant_id": a.home_tenant_id,
                    }
                    for a in accounts
                ],
            }
        )
        return
    from rich.table import Table

    console = common.console()
    table = Table("region", "partner tenant", title="identities")
    table.add_column("client id", no_wrap=True, min_width=36)
    table.add_column("credential")
    for name, i in identities.items():
        table.add_row(name, i.partner_tenant, i.client_id, i.credential_source)
    console.print(table)
    if not accounts:
        console.print("no agent signed in (cspgraph login --customer …)")
        return
    agents = Table("agent", "region", title="signed-in agents")
    agents.add_column("home tenant", no_wrap=True, min_width=36)
    for a in accounts:
        agents.add_row(a.username, a.region, a.home_tenant_id)
    console.print(agents)


def logout(
    agent_user: str | None = typer.Option(
        None,
        "--agent-user",
        metavar="UPN",
        help="The agent to sign out (default: every signed-in agent).",
    ),
    json_out: bool = common.JSON_OPTION,
    config: Path | None = common.CONFIG_OPTION,
) -> None:
    """Sign agents out of this machine: their accounts, refresh and access tokens leave the
    token cache. Their sessions at Entra are not revoked (an administrator does that)."""
    with common.command() as run:
        with _provider(config, run, online=False) as provider:
            agent = provider.agent()
            signed_in = sorted({a.username for a in agent.accounts()})
            if agent_user is not None and agent_user.lower() not in {
                name.lower() for name in signed_in
            }:
                who = ", ".join(signed_in) if signed_in else "nobody"
                raise common.UsageError(
                    f"--agent-user {agent_user}: not signed in here (signed in: {who})"
                )
            gone = agent.sign_out(agent_user)
        left = sorted(
            name
            for name in signed_in
            if agent_user is not None and name.lower() != agent_user.lower()
        )
    if common.wants_json(json_out):
        common.print_json({"signed_out": gone, "still_signed_in": left})
    else:
        common.say(
            f"signed out {gone} account(s)"
            + (f"; still signed in: {', '.join(left)}" if left else "")
        )


def register(app: typer.Typer) -> None:
    """Add `token`, `login`, `logout` and `whoami` to the top-level app."""
    app.command("token")(token)
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("whoami")(whoami)
