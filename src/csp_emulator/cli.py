"""``csp-emulator serve`` (or ``python -m csp_emulator serve``): the emulator on its own.

``cspgraph emulator serve`` takes the same options and runs the same :func:`prepare`,
:func:`summary` and :func:`banner`, so the two commands cannot drift apart. Like it, this one
prints its origins as JSON when asked (``--json``) or when stdout is not a terminal, with
"Ctrl-C to stop." on stderr, and exits 2 with one line for options it cannot serve with.
argparse, not Typer: the emulator package needs nothing of the client's command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import csp_emulator
from csp_emulator.server import Emulator
from csp_emulator.world.model import World
from csp_emulator.world.worldfile import WorldFileError, demo_world, load_world_file

DEFAULT_CUSTOMERS = 36
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class OptionError(ValueError):
    """Options the emulator cannot serve with; the message says which and why."""


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/cspgraph/emulator``: where the local CA and the signing key are kept."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cspgraph" / "emulator"


def prepare(
    *,
    world: Path | None,
    customers: int = DEFAULT_CUSTOMERS,
    host: str = "127.0.0.1",
    port: int = 0,
    state_dir: Path | None = None,
    endpoints_file: Path | None = None,
) -> Emulator:
    """The emulator the options describe, its ports bound; OptionError when the world file is
    bad or the host is not loopback (before any port is bound), or when a port is taken or the
    state directory cannot be written."""

    def factory() -> World:
        return load_world_file(world) if world else demo_world(customers)

    try:
        factory()  # fail fast, with the file's own error, before binding ports
    except WorldFileError as exc:
        raise OptionError(str(exc)) from None
    if host not in LOOPBACK:
        raise OptionError("the emulator listens on loopback only (127.0.0.1, ::1)")
    try:
        return Emulator(
            factory,
            host="127.0.0.1" if host == "localhost" else host,
            port=port,
            state_dir=state_dir or default_state_dir(),
            endpoints_file=endpoints_file,
        )
    except OSError as exc:  # a port in use, a state directory it may not write
        raise OptionError(f"cannot start the emulator: {exc}") from None


def summary(emulator: Emulator) -> dict[str, Any]:
    """The origins as JSON shows them: the endpoints file's content, the file, the tenant count."""
    return {
        **dataclasses.asdict(emulator.endpoints),
        "endpoints_file": str(emulator.endpoints_file),
        "tenants": len(emulator.world.tenants),
    }


def banner(emulator: Emulator, name: str) -> str:
    """What a serving command prints first: the origins, the CA bundle and the endpoints file."""
    e = emulator.endpoints
    return (
        f"{name}: {len(emulator.world.tenants)} tenants\n"
        f"  login           {e.authority_host}\n"
        f"  graph           {e.graph}\n"
        f"  partner center  {e.partner_center}\n"
        f"  control         {e.control}/_emulator/world\n"
        f"  CA bundle       {e.ca_bundle}\n"
        f"  endpoints file  {emulator.endpoints_file}\n"
        "Ctrl-C to stop."
    )


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="csp-emulator",
        description="The local, HTTPS emulator of Entra ID, Microsoft Graph and Partner Center.",
    )
    root.add_argument(
        "--version", action="version", version=f"csp-emulator {csp_emulator.__version__}"
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="Serve the emulated cloud over HTTPS on loopback until Ctrl-C.",
        description="Serve the emulated cloud over HTTPS on loopback until Ctrl-C.",
    )
    serve.add_argument(
        "--world",
        type=Path,
        metavar="FILE",
        help="World file (TOML). Without it: the built-in demo world.",
    )
    serve.add_argument(
        "--customers",
        type=_count,
        default=DEFAULT_CUSTOMERS,
        metavar="N",
        help=f"Demo world only: how many customers to generate (default {DEFAULT_CUSTOMERS}).",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", metavar="ADDR", help="Loopback address to listen on."
    )
    serve.add_argument(
        "--port",
        type=_count,
        default=0,
        metavar="N",
        help="First of four consecutive ports (0 = any free ports).",
    )
    serve.add_argument(
        "--state-dir", type=Path, metavar="DIR", help="Where the local CA and signing key are kept."
    )
    serve.add_argument(
        "--endpoints-file",
        type=Path,
        metavar="PATH",
        help="Where to write the endpoints JSON (default: in the state dir).",
    )
    serve.add_argument(
        "--json",
        action="store_true",
        help="Print the origins as one JSON document (the endpoints file's content, plus the "
        "file and the tenant count); the default when stdout is not a terminal.",
    )
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        emulator = prepare(
            world=args.world,
            customers=args.customers,
            host=args.host,
            port=args.port,
            state_dir=args.state_dir,
            endpoints_file=args.endpoints_file,
        )
    except OptionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json or not sys.stdout.isatty():
        print(json.dumps(summary(emulator), indent=2), flush=True)
        print("Ctrl-C to stop.", file=sys.stderr, flush=True)
    else:
        print(banner(emulator, "csp-emulator"), flush=True)
    emulator.run_forever()
    return 0
