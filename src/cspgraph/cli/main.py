"""The `cspgraph` command. Thin: each command parses, calls the library, prints.

Command modules import their heavy dependencies (the emulator, SQLAlchemy, MSAL) inside the
command functions, so `cspgraph --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cspgraph.cli import (
    auth_cmd,
    call_cmd,
    check_cmd,
    common,
    config_cmd,
    demo_cmd,
    emulator_cmd,
    export_cmd,
    gdap_cmd,
    invite_cmd,
    notify_cmd,
    partner_cmd,
    report_cmd,
    runs_cmd,
    serve_cmd,
    service_account_cmd,
    sync_cmd,
    worker_cmd,
)

app = typer.Typer(
    name="cspgraph",
    help="Microsoft Graph for CSP partners: tokens, calls, onboarding, fleet sync, emulator.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    add_completion=False,
    context_settings=common.CONTEXT_SETTINGS,
)
app.add_typer(emulator_cmd.app, name="emulator")
app.command("report")(report_cmd.report)
app.command("sync")(sync_cmd.sync)
app.command("check")(check_cmd.check)
app.command("export")(export_cmd.export)
app.command("notify")(notify_cmd.notify)
app.command("serve")(serve_cmd.serve)
app.command("demo")(demo_cmd.demo)
app.add_typer(config_cmd.app, name="config")
auth_cmd.register(app)  # token, login, logout, whoami
app.command("call", cls=common.NamedArguments)(call_cmd.call)
app.command("setup")(partner_cmd.setup)
partner_cmd.customers_app.command("invite")(invite_cmd.invite)
app.add_typer(partner_cmd.customers_app, name="customers")
app.add_typer(service_account_cmd.app, name="service-account")
app.command("onboard")(partner_cmd.onboard)
app.add_typer(gdap_cmd.app, name="gdap")
app.command("worker")(worker_cmd.worker)
app.command("runs")(runs_cmd.runs)


def _version(value: bool) -> None:
    if value:
        import cspgraph

        typer.echo(f"cspgraph {cspgraph.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log what happens (DEBUG) on stderr, secrets redacted."
    ),
    log_file: Path | None = typer.Option(
        None,
        "--log-file",
        metavar="FILE",
        envvar="CSPGRAPH_LOG_FILE",
        help="Append the log to FILE (created 0600; INFO, or DEBUG with --verbose), redacted.",
    ),
) -> None:
    """cspgraph: Microsoft Graph for Cloud Solution Provider partners."""
    common.setup_logging(verbose=verbose, log_file=log_file)


def run() -> None:
    app()
