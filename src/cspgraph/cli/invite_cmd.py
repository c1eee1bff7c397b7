"""`cspgraph customers invite`: the reseller invitation link for an existing tenant.

Partner Center gives it to App+User credentials only, so a partner user's sign-in is used: the
signed-in agent (`cspgraph login`), or with `--service-account` the configured service account.
The link goes to the tenant's Global Administrator; `cspgraph onboard --existing DOMAIN` then
waits for the acceptance and the relationship (docs/onboarding.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cspgraph.cli import common


def invite(
    region: str | None = typer.Option(
        None, "--region", metavar="REGION", help="The region's partner (when several)."
    ),
    service_account: bool = typer.Option(
        False, "--service-account", help="Ask as the service account, not the signed-in agent."
    ),
    agent_user: str | None = typer.Option(
        None, "--agent-user", metavar="UPN", help="Which signed-in agent, when several are."
    ),
    json_out: bool = common.JSON_OPTION,
    config: Path | None = common.CONFIG_OPTION,
) -> None:
    """The reseller invitation link for an existing tenant (Partner Center
    relationshiprequests; App+User: a signed-in agent or the service account)."""
    with common.command() as run:
        import asyncio  # imported where used: keeps `cspgraph --help` fast

        from cspgraph.identity import TokenProvider
        from cspgraph.partner.onboarding_existing import reseller_invitation

        cfg = run.load_config(config)
        identity = cfg.region_identity(region)
        if service_account and cfg.service_account_cache_path is None:
            raise common.UsageError(
                "--service-account: no service account is configured (service_account_cache)"
            )
        provider = TokenProvider(cfg, workers=2)
        closing: list[Any] = []
        try:
            if service_account:
                from cspgraph.identity.service_account import ServiceAccountTokens

                path = cfg.service_account_cache_path
                assert path is not None
                service = ServiceAccountTokens(provider, path)
                closing.append(service)
                agent = service.agent
            else:
                agent = provider.agent(username=agent_user)
            url = asyncio.run(reseller_invitation(provider, agent, region=identity.region))
        finally:
            for opened in closing:
                opened.close()
            provider.close()
    if common.wants_json(json_out):
        common.print_json({"region": identity.region, "url": url})
        return
    typer.echo(url)
    common.say(
        "send this link to the tenant's Global Administrator; then `cspgraph onboard --existing "
        "DOMAIN` waits for the acceptance and the relationship"
    )
