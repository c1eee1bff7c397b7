"""`cspgraph report`: the fleet as the store knows it, without calling Graph."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

DEFAULT_DB = "sqlite:///cspgraph.db"


def report(
    db: str = typer.Option(
        DEFAULT_DB,
        "--db",
        envvar="CSPGRAPH_DB",
        help="The store: a SQLAlchemy URL (sqlite:///file.db, postgresql+psycopg://…) or a path.",
    ),
    html: Path | None = typer.Option(
        None, "--html", help="Also write a self-contained HTML page (tables and charts) here."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print the report as JSON instead of tables."
    ),
) -> None:
    """Report on every customer: users, admins, groups, devices, compliance, sync health."""
    import orjson

    from cspgraph.fleet.report import data_of, load_report
    from cspgraph.fleet.report_html import write_html
    from cspgraph.fleet.report_terminal import terminal_view
    from cspgraph.fleet.store import Store, sqlite_file

    file = sqlite_file(db)
    if file is not None and not file.exists():
        # Opening would create an empty store and report an empty fleet, which misleads.
        typer.echo(f"error: no store at {file}; run `cspgraph sync` first or pass --db", err=True)
        raise typer.Exit(1)

    with Store.open(db) as store:
        fleet = load_report(store)
    if json_out:
        sys.stdout.buffer.write(orjson.dumps(data_of(fleet), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        from rich.console import Console  # only for the tables, not for --json

        console = Console()
        console.print(terminal_view(fleet, console.width))
    if html is not None:
        written = write_html(fleet, html)
        # On stderr under --json, so that stdout stays one JSON document.
        typer.echo(f"HTML report written to {written}", err=json_out)
