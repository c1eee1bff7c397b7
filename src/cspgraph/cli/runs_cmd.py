"""`cspgraph runs`: the latest sync runs in the store and how far each has got.

Read-only. A run of workers (``sync --engine celery``) shows its progress from the store alone,
so a run whose enqueuing command was stopped is still seen going on (and can be followed again:
``cspgraph sync --engine celery --follow RUN_ID``). Exit status 0, or 2 for a store that cannot
be read.
"""

from __future__ import annotations

import typer

from cspgraph.cli import common


def runs(
    db: str = common.DB_OPTION,
    limit: int = typer.Option(
        20, "--limit", min=1, max=10_000, metavar="N", help="How many runs, newest first."
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print the runs as JSON (the default when stdout is not a terminal)."
    ),
) -> None:
    """List the latest sync runs, newest first, with their progress (runs of workers too)."""
    with common.command() as run:
        del run
        from cspgraph.fleet.run_progress import recent_runs

        with common.existing_store(db) as store:
            found = recent_runs(store, limit)
        if common.wants_json(json_out):
            common.print_json({"runs": [r.as_dict() for r in found]})
            return
        if not found:
            common.say("no sync run in the store yet")
            return
        from rich.table import Table

        table = Table(
            "run", "started (UTC)", "outcome", "customers done", "requests", "429s", "wall s"
        )
        for r in found:
            outcome = f"{r.outcome} (workers)" if r.on_workers else r.outcome
            table.add_row(
                r.run_id,
                r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                outcome,
                f"{_known(r.finished)} of {_known(r.customers)}",
                _known(r.requests),
                _known(r.throttled),
                "?" if r.wall_time is None else f"{r.wall_time:.1f}",
            )
        common.console().print(table)
        for r in found:
            if r.outcome == "running" and r.on_workers:
                common.say(
                    f"run {r.run_id} is with the workers: "
                    f"`cspgraph sync --engine celery --follow {r.run_id}` follows it"
                )


def _known(value: int | None) -> str:
    """A figure, or ? where the store does not know it yet (never 0 in its place)."""
    return "?" if value is None else f"{value:,}"
