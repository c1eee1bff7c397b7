"""`cspgraph emulator …`: run the local emulator of Entra ID, Microsoft Graph and Partner Center."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from cspgraph.cli import common

app = typer.Typer(
    help="The local, HTTPS emulator of Entra ID, Microsoft Graph and Partner Center.",
    no_args_is_help=True,
    context_settings=common.CONTEXT_SETTINGS,
)


def default_state_dir() -> Path:
    import os

    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cspgraph" / "emulator"


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
    from csp_emulator.server import Emulator
    from csp_emulator.world.model import World
    from csp_emulator.world.worldfile import WorldFileError, demo_world, load_world_file

    def factory() -> World:
        return load_world_file(world) if world else demo_world(customers)

    with common.command():
        try:
            factory()  # fail fast, with the file's own error, before binding ports
        except WorldFileError as exc:
            raise common.UsageError(str(exc)) from None
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise common.UsageError("the emulator listens on loopback only (127.0.0.1, ::1)")
        try:
            emulator = Emulator(
                factory,
                host="127.0.0.1" if host == "localhost" else host,
                port=port,
                state_dir=state_dir or default_state_dir(),
                endpoints_file=endpoints_file,
            )
        except OSError as exc:  # a port in use, a state directory it may not write
            raise common.UsageError(f"cannot start the emulator: {exc}") from None
    e = emulator.endpoints
    if common.wants_json(json_out):
        common.print_json(
            {
                **dataclasses.asdict(e),
                "endpoints_file": str(emulator.endpoints_file),
                "tenants": len(emulator.world.tenants),
            }
        )
        common.say("Ctrl-C to stop.")
        emulator.run_forever()
        return
    typer.echo(
        f"cspgraph emulator: {len(emulator.world.tenants)} tenants\n"
        f"  login           {e.authority_host}\n"
        f"  graph           {e.graph}\n"
        f"  partner center  {e.partner_center}\n"
        f"  control         {e.control}/_emulator/world\n"
        f"  CA bundle       {e.ca_bundle}\n"
        f"  endpoints file  {emulator.endpoints_file}\n"
        "Ctrl-C to stop."
    )
    emulator.run_forever()
