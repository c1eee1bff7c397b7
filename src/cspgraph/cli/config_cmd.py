"""`cspgraph config …`: write a starter configuration, show the effective one."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cspgraph.cli import common

if TYPE_CHECKING:
    from cspgraph.emulator_partners import RegionApp

app = typer.Typer(
    help="Create and inspect the cspgraph configuration.",
    no_args_is_help=True,
    context_settings=common.CONTEXT_SETTINGS,
)

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
# Seconds a token or discovery request may take before it is abandoned and retried, and how
# many times a failure that may pass (a 429, a 5xx, a timeout) is retried.
# token_timeout = 30
# token_retries = 6

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


def emulator_config_text(endpoints: Path, apps: list[RegionApp]) -> str:
    """A configuration for a running emulator's world; secrets live in files beside it."""
    lines = [
        "# cspgraph configuration for the world a local emulator serves "
        "(written by `cspgraph config init --from-emulator`).",
        f"emulator = {json.dumps(str(endpoints))}",
        'token_cache = "tokens.json"',
        'discovery_cache = "discovery.json"',
        "",
    ]
    for app in apps:
        lines += [
            f"[regions.{app.region}]",
            f"partner_tenant = {json.dumps(app.domain)}",
            f"client_id = {json.dumps(app.client_id)}",
            f'client_secret_file = "secrets/{app.region}.secret"',
            "",
        ]
    return "\n".join(lines)


def write_emulator_config(target: Path, endpoints: Path, apps: list[RegionApp]) -> Path:
    """Write the configuration and each region's secret (0600 from creation, so never readable
    by anyone else, not even briefly); the secrets' directory is returned."""
    from cspgraph.config import write_private_file

    secrets = target.parent / "secrets"
    for app in apps:
        write_private_file(secrets / f"{app.region}.secret", app.client_secret)
    write_private_file(target, emulator_config_text(endpoints, apps))
    return secrets


@app.command()
def init(
    from_emulator: Path | None = typer.Option(
        None,
        "--from-emulator",
        metavar="ENDPOINTS",
        help="A running emulator's endpoints file: write a configuration for the world it serves.",
    ),
    partner: list[str] = typer.Option(
        [],
        "--partner",
        metavar="DOMAIN",
        help="With --from-emulator: the partner tenant(s) to configure (when a region has two).",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
    json_out: bool = common.JSON_OPTION,
    config: Path | None = typer.Option(
        None,
        "--config",
        metavar="FILE",
        help="Where to write it (default: $CSPGRAPH_CONFIG, else ~/.config/cspgraph/config.toml).",
    ),
    path: Path | None = common.CONFIG_ALIAS_OPTION,
) -> None:
    """Write a commented starter configuration (or one for the world a running emulator serves)."""
    with common.command():
        from cspgraph.config import config_origin, default_config_path, describe_config_path
        from cspgraph.emulator_endpoints import EmulatorEndpoints, EndpointsFileError
        from cspgraph.emulator_partners import ServedWorldError, region_apps, served_partners

        given = common.either(config, path)
        target = (given or default_config_path()).expanduser().absolute()
        label = describe_config_path(target, config_origin(given))
        if target.exists() and not force:
            raise common.UsageError(f"{label} exists; use --force to overwrite it")
        if partner and from_emulator is None:
            raise common.UsageError("--partner chooses among the partners of --from-emulator")
        secrets: Path | None = None
        endpoints: Path | None = None
        apps: list[RegionApp] = []
        notes: list[str] = []
        if from_emulator is None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(STARTER, encoding="utf-8")
        else:
            endpoints = from_emulator.expanduser().resolve()
            try:
                served = EmulatorEndpoints.read(endpoints)
                apps, notes = region_apps(served_partners(served), tuple(partner))
            except (EndpointsFileError, ServedWorldError) as exc:
                raise common.UsageError(str(exc)) from None
            secrets = write_emulator_config(target, endpoints, apps)
    if from_emulator is None:
        after = "fill in [regions.NA] (or run `cspgraph setup`), then `cspgraph config show`"
    else:
        # Absolute: the hint is pasted into other shells, in other directories.
        after = f"{common.invoked_as()} customers list" + (
            "" if given is None else f"  (with CSPGRAPH_CONFIG={shlex.quote(str(target))})"
        )
    if common.wants_json(json_out):
        common.print_json(
            {
                "written": str(target),
                "secrets": None if secrets is None else str(secrets),
                "emulator": None if endpoints is None else str(endpoints),
                "regions": {
                    a.region: {"partner_tenant": a.domain, "client_id": a.client_id} for a in apps
                },
                "left_out": notes,
                "next": after,
            }
        )
        return
    kept = "" if secrets is None else f" (secrets in {secrets}, mode 0600)"
    typer.echo(f"wrote {target}{kept}")
    for a in apps:
        typer.echo(f"  region {a.region}: partner {a.domain}, app {a.client_id}")
    for note in notes:
        typer.echo(f"  {note}")
    typer.echo(f"next: {after}")


@app.command()
def show(
    json_out: bool = common.JSON_OPTION,
    config: Path | None = common.CONFIG_OPTION,
    path: Path | None = common.CONFIG_ALIAS_OPTION,
) -> None:
    """Show the effective configuration: cloud, hosts, caches, regions (never a secret)."""
    with common.command() as run:
        loaded = run.load_config(common.either(config, path), online=False)
        cloud = loaded.cloud()
    summary: dict[str, Any] = {
        "source": str(loaded.source) if loaded.source else None,
        "cloud": cloud.name,
        "hosts": {
            "login": cloud.login,
            "graph": cloud.graph,
            "partner_center": cloud.partner_center,
            "ca_bundle": cloud.ca_bundle,
        },
        "token_cache": str(loaded.token_cache_path or "memory"),
        "discovery_cache": str(loaded.discovery_cache_path or "memory"),
        "token_timeout": loaded.model.token_timeout,
        "token_retries": loaded.model.token_retries,
        "regions": {
            name: {
                "serves": sorted(identity.scopes),
                "partner_tenant": identity.partner_tenant,
                "client_id": identity.client_id,
                "credential": identity.credential_source,
            }
            for name, identity in loaded.identities.items()
        },
    }
    if common.wants_json(json_out):
        common.print_json(summary)
        return
    from rich.table import Table
    from rich.text import Text

    console = common.console()
    source = common.config_label(loaded)
    console.print(Text.assemble(("configuration", "bold"), f" {source}"), soft_wrap=True)
    console.print(f"cloud {cloud.name}: login {cloud.login}, graph {cloud.graph}", soft_wrap=True)
    if cloud.ca_bundle:
        console.print(f"trusting CA bundle {cloud.ca_bundle}", soft_wrap=True)
    console.print(f"token cache {summary['token_cache']}", soft_wrap=True)
    table = Table("region", "serves", "partner tenant")
    # A client id is copied from here into portals: never shortened ("6731de76-14a6-49ae…").
    table.add_column("client id", no_wrap=True, min_width=36)
    table.add_column("credential", overflow="fold")
    for name, r in summary["regions"].items():
        table.add_row(
            name, ", ".join(r["serves"]), r["partner_tenant"], r["client_id"], r["credential"]
        )
    console.print(table)
