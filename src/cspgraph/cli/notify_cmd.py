"""`cspgraph notify`: new findings to a Teams or Slack channel, each once."""

from __future__ import annotations

import os

import typer

from cspgraph.cli import common


def notify(
    webhook_env: str = typer.Option(
        "CSPGRAPH_WEBHOOK",
        "--webhook-env",
        metavar="NAME",
        help="The environment variable holding the webhook URL (default CSPGRAPH_WEBHOOK): a "
        "webhook URL is a secret, and a command line is visible to every user of the machine.",
    ),
    webhook: str | None = typer.Option(
        None,
        "--webhook",
        metavar="URL",
        help="The webhook URL itself (prefer --webhook-env: a command line is not secret).",
    ),
    kind: str | None = typer.Option(
        None, "--kind", metavar="KIND", help="teams or slack, when the URL's host does not tell."
    ),
    min_severity: str = typer.Option(
        "low", "--min-severity", metavar="SEVERITY", help="Only findings this bad or worse."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would be sent; send nothing, remember nothing."
    ),
    db: str = common.DB_OPTION,
    json_out: bool = common.JSON_OPTION,
) -> None:
    """Post the findings a Teams or Slack channel has not heard of yet to its incoming webhook,
    and remember them: each finding is sent once (again only if it goes away and comes back)."""
    with common.command():
        from cspgraph.fleet.checks import Severity
        from cspgraph.fleet.notify import channel
        from cspgraph.fleet.notify import notify as send

        url = webhook or os.environ.get(webhook_env, "")
        if not url:
            raise common.UsageError(
                f"no webhook: set ${webhook_env} to the channel's incoming webhook URL (or pass "
                "--webhook)"
            )
        try:
            threshold = Severity.parse(min_severity)
        except ValueError as exc:
            raise common.UsageError(f"--min-severity: {exc}") from None
        ch = channel(url, kind, source="--webhook" if webhook else f"${webhook_env}")
        with common.existing_store(db) as store:
            outcome = send(store, ch, min_severity=threshold, dry_run=dry_run)
        data = {
            "channel": ch.id,
            "kind": ch.kind,
            "dry_run": dry_run,
            "sent": [f.key for f in outcome.sent],
            "messages": outcome.messages,
            "already_sent": outcome.already_sent,
            "resolved": outcome.resolved,
        }
        if common.wants_json(json_out):
            common.print_json(data)
        else:
            verb = "would send" if dry_run else "sent"
            common.say(
                f"{verb} {len(outcome.sent)} new finding(s) to the {ch.where}"
                f" ({outcome.already_sent} told before, {outcome.resolved} resolved since)"
            )
