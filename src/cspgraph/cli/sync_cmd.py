"""`cspgraph sync`: every customer's directory and Intune inventory into the store.

Thin: options → :func:`cspgraph.fleet.sync.sync_fleet` → a summary table (or JSON). Exit status:
0 when every customer synced, 1 when some did not (their status says why), 2 for a configuration
that cannot be used, 130 when interrupted (run it again: it resumes).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import typer

from cspgraph.cli.report_cmd import DEFAULT_DB

CONFIG_OPTION = typer.Option(
    None, "--config", help="Configuration file (default: $CSPGRAPH_CONFIG or ~/.config/...)."
)


def sync(
    customers: str | None = typer.Option(
        None,
        "--customers",
        help="Only these customers, comma-separated: tenant IDs, domains or user@domain. "
        "Default: every customer Partner Center lists, in every configured region.",
    ),
    customers_file: Path | None = typer.Option(
        None, "--customers-file", help="Only the customers in this file, one per line (# comments)."
    ),
    db: str = typer.Option(
        DEFAULT_DB,
        "--db",
        envvar="CSPGRAPH_DB",
        help="The store: a SQLAlchemy URL (sqlite:///file.db, postgresql+psycopg://…) or a path.",
    ),
    full: bool = typer.Option(
        False, "--full", help="Pull everything again instead of the changes since the last run."
    ),
    concurrency: int = typer.Option(
        16, "--concurrency", min=1, max=256, help="Customers synced at the same time."
    ),
    page_size: int = typer.Option(
        999, "--page-size", min=1, max=999, help="Objects per Graph page (999: fewest requests)."
    ),
    resources: str | None = typer.Option(
        None,
        "--resources",
        help="Only these, comma-separated: users, groups, devices, organization, "
        "managedDevices, directoryRoles.",
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print the outcome as JSON (counts per customer, totals, requests)."
    ),
    progress: bool | None = typer.Option(
        None,
        "--progress/--no-progress",
        help="Show live progress (default: when stderr is a terminal).",
    ),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Sync every customer's users, groups, devices, organization, Intune devices and admins.

    The first run pulls everything; later runs fetch changes only (delta queries). Interrupted
    runs resume where they stopped.
    """
    import orjson
    from sqlalchemy.exc import SQLAlchemyError

    from cspgraph.config import ConfigError, load_config
    from cspgraph.fleet.customers import read_customers_file
    from cspgraph.fleet.resources import ALL_RESOURCES
    from cspgraph.fleet.store import Store
    from cspgraph.fleet.sync import sync_fleet

    try:
        settings = load_config(config, required=True)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    chosen: list[str] | None = None
    if customers is not None or customers_file is not None:
        chosen = [customers] if customers else []
        if customers_file is not None:
            try:
                chosen += [c.reference for c in read_customers_file(customers_file)]
            except OSError as exc:
                typer.echo(f"error: --customers-file {customers_file}: {exc.strerror}", err=True)
                raise typer.Exit(2) from None
    wanted = [r.strip() for r in resources.split(",") if r.strip()] if resources else None
    unknown = sorted(set(wanted or ()) - set(ALL_RESOURCES))
    if unknown:
        typer.echo(
            f"error: --resources: unknown {unknown}; expected some of {ALL_RESOURCES}", err=True
        )
        raise typer.Exit(2)
    try:
        store = Store.open(db)
    except (ValueError, SQLAlchemyError) as exc:
        typer.echo(f"error: --db {db}: {exc}", err=True)
        raise typer.Exit(2) from None

    show = sys.stderr.isatty() if progress is None else progress
    from cspgraph.cli.bulk_gc import tune_gc_for_bulk_work

    tune_gc_for_bulk_work()  # start-up is over: what it built lives as long as the process
    run = functools.partial(
        sync_fleet, settings, store, customers=chosen, full=full, concurrency=concurrency,
        page_size=page_size, resources=wanted,
    )  # fmt: skip
    try:
        with store:
            if show:
                from rich.console import Console  # Rich only for a live display or the table

                from cspgraph.fleet.sync_display import RichSyncProgress

                with RichSyncProgress(Console(stderr=True)) as live:
                    import asyncio  # imported where used: keeps `cspgraph --help` fast

                    summary = asyncio.run(run(progress=live))
            else:
                import asyncio  # imported where used: keeps `cspgraph --help` fast

                summary = asyncio.run(run())
    except KeyboardInterrupt:
        typer.echo(
            "interrupted: every page written so far is kept; run the same command again to "
            "resume where it stopped",
            err=True,
        )
        raise typer.Exit(130) from None

    if json_out:
        sys.stdout.buffer.write(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2))
        sys.stdout.buffer.write(b"\n")
    else:
        from rich.console import Console

        from cspgraph.fleet.sync_display import summary_view

        Console().print(summary_view(summary))
        typer.echo(f"store: {db}   next: cspgraph report --db {db}", err=True)
    if not summary.ok:
        raise typer.Exit(1)
