"""`cspgraph report`: the fleet as the store knows it, without calling Graph."""

from __future__ import annotations

from pathlib import Path

import typer

from cspgraph.cli import common

DEFAULT_DB = common.DEFAULT_DB


def report(
    db: str = common.DB_OPTION,
    html: Path | None = typer.Option(
        None,
        "--html",
        metavar="FILE",
        help="Also write a self-contained HTML page (tables and charts) here.",
    ),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Print the report as JSON instead of tables (the default when stdout is not a "
        "terminal).",
    ),
) -> None:
    """Report on every customer: users, admins, groups, devices, compliance, sync health."""
    with common.command():
        if html is not None:  # refused before the store is read: a typo makes no folders
            folder = html.expanduser().absolute().parent
            if not folder.is_dir():
                raise common.UsageError(
                    f"--html {html}: no folder {folder} to write it in; create it first"
                )
            if html.is_dir():
                raise common.UsageError(f"--html {html}: a folder; name the file to write")
        from cspgraph.fleet.report import data_of, load_report
        from cspgraph.fleet.report_html import write_html

        with common.existing_store(db) as store:
            fleet = load_report(store)
        as_json = common.wants_json(json_out)
        if as_json:
            common.print_json(data_of(fleet))
        else:
            from cspgraph.fleet.report_terminal import terminal_view

            console = common.console()
            console.print(terminal_view(fleet, console.width))
        if html is not None:
            written = write_html(fleet, html)
            # On stderr under JSON, so that stdout stays one JSON document.
            typer.echo(f"HTML report written to {written}", err=as_json)
