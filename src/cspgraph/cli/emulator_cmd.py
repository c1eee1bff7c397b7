"""`cspgraph emulator …`: run the local emulator of Entra ID, Microsoft Graph and Partner Center."""

from __future__ import annotations

from pathlib import Path

import typer

from cspgraph.cli import common
from cspgraph.cli.emulator_required import require_emulator

app = typer.Typer(
    help="The local, HTTPS emulator of Entra ID, Microsoft Graph and Partner Center.",
    no_args_is_help=True,
    context_settings=common.CONTEXT_SETTINGS,
)


@app.command()
def serve(
    world: Path | None = typer.Option(
        None,
        "--world",
        metavar="FILE",
        help="World file (TOML). Without it: the built-in demo world.",
    ),
    customers: int = typer.Option(
        36,
        "--customers",
        min=0,
        metavar="N",
        help="Demo world only: how many customers to generate.",
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", metavar="ADDR", help="Loopback address to listen on."
    ),
    port: int = typer.Option(
        0,
        "--port",
        min=0,
        metavar="N",
        help="First of four consecutive ports (0 = any free ports).",
    ),
    state_dir: Path | None = typer.Option(
        None, "--state-dir", metavar="DIR", help="Where the local CA and signing key are kept."
    ),
    endpoints_file: Path | None = typer.Option(
        None,
        "--endpoints-file",
        metavar="PATH",
        help="Where to write the endpoints JSON (default: in state dir).",
    ),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Print the origins as one JSON document (the endpoints file's content, plus the "
        "file and the tenant count); the default when stdout is not a terminal.",
    ),
) -> None:
    """Serve the emulated cloud over HTTPS on loopback until Ctrl-C (which exits 0: it is how the
    emulator stops)."""
    with common.command():
        # The emulator is a distribution of its own (csp-emulator), loaded only when this
        # command runs; `csp-emulator serve` runs the same prepare(), summary() and banner().
        require_emulator()
        from csp_emulator.cli import OptionError, banner, prepare, summary

        try:
            emulator = prepare(
                world=world,
                customers=customers,
                host=host,
                port=port,
                state_dir=state_dir,
                endpoints_file=endpoints_file,
            )
        except OptionError as exc:
            raise common.UsageError(str(exc)) from None
    if common.wants_json(json_out):
        common.print_json(summary(emulator))
        common.say("Ctrl-C to stop.")
        emulator.run_forever()
        return
    typer.echo(banner(emulator, "cspgraph emulator"))
    emulator.run_forever()
