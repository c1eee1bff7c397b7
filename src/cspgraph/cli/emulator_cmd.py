"""`cspgraph emulator …`: run the local emulator of Entra ID, Microsoft Graph and Partner Center."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="The local, HTTPS emulator of Entra ID, Microsoft Graph and Partner Center.",
    no_args_is_help=True,
)


def default_state_dir() -> Path:
    import os

    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cspgraph" / "emulator"


@app.command()
def serve(
    world: Path | None = typer.Option(
        None, "--world", help="World file (TOML). Without it: the built-in demo world."
    ),
    customers: int = typer.Option(
        36, "--customers", min=0, help="Demo world only: how many customers to generate."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address to listen on."),
    port: int = typer.Option(
        0, "--port", min=0, help="First of four consecutive ports (0 = any free ports)."
    ),
    state_dir: Path | None = typer.Option(
        None, "--state-dir", help="Where the local CA and signing key are kept."
    ),
    endpoints_file: Path | None = typer.Option(
        None, "--endpoints-file", help="Where to write the endpoints JSON (default: in state dir)."
    ),
) -> None:
    """Serve the emulated cloud over HTTPS on loopback until Ctrl-C."""
    from cspgraph.emulator.server import Emulator
    from cspgraph.emulator.world import World
    from cspgraph.emulator.worldfile import WorldFileError, demo_world, load_world_file

    def factory() -> World:
        return load_world_file(world) if world else demo_world(customers)

    try:
        factory()  # fail fast, with the file's own error, before binding ports
    except WorldFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if host not in ("127.0.0.1", "::1", "localhost"):
        typer.echo("error: the emulator listens on loopback only (127.0.0.1, ::1)", err=True)
        raise typer.Exit(2)
    emulator = Emulator(
        factory,
        host="127.0.0.1" if host == "localhost" else host,
        port=port,
        state_dir=state_dir or default_state_dir(),
        endpoints_file=endpoints_file,
    )
    e = emulator.endpoints
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
