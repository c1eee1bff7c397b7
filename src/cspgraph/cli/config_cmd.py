"""`cspgraph config …`: write a starter configuration, show the effective one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(help="Create and inspect the cspgraph configuration.", no_args_is_help=True)

STARTER = """\
# cspgraph configuration. Every key can also be set by an environment variable:
# CSPGRAPH_CLOUD, CSPGRAPH_TOKEN_CACHE, CSPGRAPH_REGIONS__NA__CLIENT_ID, ...

# Which Microsoft cloud your partner tenants live in: global | usgov | china.
cloud = "global"

# Use a running cspgraph emulator instead of Microsoft's cloud (hosts and CA from its file):
# emulator = "~/.local/state/cspgraph/emulator/endpoints.json"

# Or reach the cloud at explicit hosts (a proxy, a private endpoint):
# [hosts]
# login = "https://login.microsoftonline.com"
# graph = "https://graph.microsoft.com"
# partner_center = "https://api.partnercenter.microsoft.com"
# ca_bundle = "/etc/ssl/certs/corporate-ca.pem"

# Where signed-in agents' tokens are kept (a file created 0600), or "memory".
token_cache = "~/.cache/cspgraph/tokens.json"
# Where customers' tenant ids and regions are remembered, or "memory"; and for how long (s).
discovery_cache = "~/.cache/cspgraph/discovery.json"
discovery_ttl = 86400

# One section per region you sell in, named by the customers' tenant_region_scope (NA, EU,
# AS, OC, ...). A partner-managed app only works for customers of its own region.
[regions.NA]
# Your NA partner tenant: its domain or tenant ID.
partner_tenant = "<your partner tenant, e.g. partner.onmicrosoft.com>"
# The partner-managed app's Application (client) ID.
client_id = "<your app's client id>"
# Exactly one credential. A certificate is what Microsoft recommends:
# certificate_file = "na-app.pem"               # private key + certificate, PEM
# certificate_password_env = "CSPGRAPH_CERT_PASSWORD_NA"   # if the key is encrypted
# or a client secret, read from an environment variable or a file only you can read:
client_secret_env = "CSPGRAPH_SECRET_NA"
# client_secret_file = "secrets/NA.secret"
# Other tenant_region_scope values this identity serves:
# serves = ["WW"]

# [regions.EU]
# partner_tenant = "partner-eu.onmicrosoft.com"
# client_id = "..."
# client_secret_env = "CSPGRAPH_SECRET_EU"
"""


def emulator_config_text(endpoints: Path, regions: dict[str, dict[str, str]]) -> str:
    """A configuration for a running emulator's demo world; secrets live in files beside it."""
    lines = [
        "# cspgraph configuration for the local emulator's demo world "
        "(written by `cspgraph config init --from-emulator`).",
        f"emulator = {json.dumps(str(endpoints))}",
        'token_cache = "tokens.json"',
        'discovery_cache = "discovery.json"',
        "",
    ]
    for region, p in regions.items():
        lines += [
            f"[regions.{region}]",
            f"partner_tenant = {json.dumps(p['domain'])}",
            f"client_id = {json.dumps(p['client_id'])}",
            f'client_secret_file = "secrets/{region}.secret"',
            "",
        ]
    return "\n".join(lines)


@app.command()
def init(
    from_emulator: Path | None = typer.Option(
        None,
        "--from-emulator",
        help="A running emulator's endpoints file: write a configuration for its demo world.",
    ),
    path: Path | None = typer.Option(
        None, "--path", help="Where to write it (default: $CSPGRAPH_CONFIG or ~/.config/...)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented starter configuration (or one for the emulator's demo world)."""
    from cspgraph.config import default_config_path, write_private_file

    target = (path or default_config_path()).expanduser()
    if target.exists() and not force:
        typer.echo(f"error: {target} exists; use --force to overwrite it", err=True)
        raise typer.Exit(1)
    if from_emulator is None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(STARTER, encoding="utf-8")
        typer.echo(f"wrote {target}\nnext: fill in [regions.NA], then `cspgraph config show`")
        return
    from cspgraph.emulator.worldfile import DEMO_PARTNERS  # the CLI may know the emulator
    from cspgraph.emulator_endpoints import EmulatorEndpoints, EndpointsFileError

    endpoints = from_emulator.expanduser().resolve()
    try:
        EmulatorEndpoints.read(endpoints)
    except EndpointsFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for region, partner in DEMO_PARTNERS.items():
        # 0600 from creation: the secret is never readable by anyone else, not even briefly.
        write_private_file(target.parent / "secrets" / f"{region}.secret", partner["client_secret"])
    write_private_file(target, emulator_config_text(endpoints, DEMO_PARTNERS))
    typer.echo(
        f"wrote {target} (secrets in {target.parent / 'secrets'}, mode 0600)\n"
        f"next: cspgraph token --customer customer.com"
        + ("" if path is None else f"  (with CSPGRAPH_CONFIG={target})")
    )


@app.command()
def show(
    path: Path | None = typer.Option(None, "--path", help="The configuration file to read."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the effective configuration: cloud, hosts, caches, regions (never a secret)."""
    from cspgraph.config import ConfigError, load_config

    try:
        config = load_config(path, required=True)
        cloud = config.cloud()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    summary: dict[str, Any] = {
        "source": str(config.source) if config.source else None,
        "cloud": cloud.name,
        "hosts": {
            "login": cloud.login,
            "graph": cloud.graph,
            "partner_center": cloud.partner_center,
            "ca_bundle": cloud.ca_bundle,
        },
        "token_cache": str(config.token_cache_path or "memory"),
        "discovery_cache": str(config.discovery_cache_path or "memory"),
        "regions": {
            name: {
                "serves": sorted(identity.scopes),
                "partner_tenant": identity.partner_tenant,
                "client_id": identity.client_id,
                "credential": identity.credential_source,
            }
            for name, identity in config.identities.items()
        },
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]configuration[/bold] {summary['source'] or '(environment only)'}")
    console.print(f"cloud {cloud.name}: login {cloud.login}, graph {cloud.graph}")
    if cloud.ca_bundle:
        console.print(f"trusting CA bundle {cloud.ca_bundle}")
    console.print(f"token cache {summary['token_cache']}")
    table = Table("region", "serves", "partner tenant", "client id", "credential")
    for name, r in summary["regions"].items():
        table.add_row(
            name, ", ".join(r["serves"]), r["partner_tenant"], r["client_id"], r["credential"]
        )
    console.print(table)
