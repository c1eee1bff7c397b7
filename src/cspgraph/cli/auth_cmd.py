"""`cspgraph token`, `cspgraph login`, `cspgraph whoami`: tokens and partner agents.

A token is shown decoded (its claims), never as the bearer string unless ``--raw`` asks for it:
terminals keep scrollback and CI keeps logs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from cspgraph.identity import TokenProvider

CONFIG_OPTION = typer.Option(
    None, "--config", help="Configuration file (default: $CSPGRAPH_CONFIG or ~/.config/...)."
)


@contextmanager
def _provider(config_path: Path | None) -> Iterator[TokenProvider]:
    """A TokenProvider for the configuration; errors end the command with their message."""
    from cspgraph.config import ConfigError, load_config
    from cspgraph.http.errors import CspGraphError
    from cspgraph.identity import TokenProvider

    try:
        provider = TokenProvider(load_config(config_path, required=True), workers=2)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        yield provider
    except CspGraphError as exc:
        typer.echo(f"error: {exc}", err=True)
        if exc.reason and exc.reason not in str(exc):
            typer.echo(f"  ({exc.error_class}: {exc.reason})", err=True)
        raise typer.Exit(1) from None
    finally:
        provider.close()


def decode_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (Graph tokens are not for clients to verify)."""
    import jwt

    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def token(
    customer: str = typer.Option(..., "--customer", help="Tenant ID, domain or user@domain."),
    fresh: bool = typer.Option(False, "--fresh", help="Evict this tenant's tokens, get a new one."),
    agent: bool = typer.Option(False, "--agent", help="The signed-in agent's token (delegated)."),
    agent_user: str | None = typer.Option(
        None, "--agent-user", help="Which signed-in agent, when several are."
    ),
    raw: bool = typer.Option(False, "--raw", help="Print the bearer token itself."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Get a Graph token for a customer and show its claims."""
    with _provider(config) as provider:
        route = provider.route_sync(customer)
        if agent:
            value = provider.agent(username=agent_user).get_token_sync(customer, fresh=fresh)
        else:
            value = provider.get_token_sync(customer, fresh=fresh)
    if raw:
        typer.echo(value)
        return
    claims = decode_claims(value)
    if not sys.stdout.isatty():
        typer.echo(json.dumps(claims, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{'delegated' if agent else 'app-only'} token[/bold] for {customer}: tenant "
        f"{route.tenant_id}, region {route.region}, app {route.identity.client_id} "
        f"(partner {route.identity.partner_tenant})"
    )
    table = Table("claim", "value", show_header=False)
    for name in sorted(claims):
        value_text = claims[name]
        table.add_row(name, value_text if isinstance(value_text, str) else json.dumps(value_text))
    console.print(table)


def login(
    customer: str = typer.Option(..., "--customer", help="The customer to sign in at."),
    v1: bool = typer.Option(False, "--v1", help="Use the v1 endpoints (resource=)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Print the URL, open nothing."),
    login_hint: str | None = typer.Option(None, "--login-hint", help="Pre-fill the user name."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds to wait for the sign-in."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Sign a partner agent in at a customer's authority (auth code + PKCE, loopback redirect).

    The agent's refresh token then serves every customer of the region without signing in again.
    """
    with _provider(config) as provider:

        def show(url: str) -> None:
            typer.echo(f"Open this URL in a browser to sign in:\n\n  {url}\n", err=True)

        result = provider.agent().sign_in(
            customer,
            v1=v1,
            open_browser=not no_browser,
            show_url=show,
            timeout=timeout,
            login_hint=login_hint,
        )
    typer.echo(
        f"signed in: {result.account.username} at tenant {result.tenant_id} "
        f"(region {result.region}, {result.protocol})"
    )


def whoami(config: Path | None = CONFIG_OPTION) -> None:
    """The configured partner identities and the signed-in agents."""
    with _provider(config) as provider:
        identities = provider.config.identities
        accounts = provider.agent().accounts()
    if not sys.stdout.isatty():
        payload = {
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
                {"username": a.username, "region": a.region, "home_tenant_id": a.home_tenant_id}
                for a in accounts
            ],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table("region", "partner tenant", "client id", "credential", title="identities")
    for name, i in identities.items():
        table.add_row(name, i.partner_tenant, i.client_id, i.credential_source)
    console.print(table)
    if not accounts:
        console.print("no agent signed in (cspgraph login --customer …)")
        return
    agents = Table("agent", "region", "home tenant", title="signed-in agents")
    for a in accounts:
        agents.add_row(a.username, a.region, a.home_tenant_id)
    console.print(agents)


def register(app: typer.Typer) -> None:
    """Add `token`, `login` and `whoami` to the top-level app."""
    app.command("token")(token)
    app.command("login")(login)
    app.command("whoami")(whoami)
