"""`cspgraph worker`: a Celery worker that syncs the customers `cspgraph sync --engine celery`
enqueues (docs/scale.md).

Thin: options → :func:`cspgraph.distributed.engine.start_worker`, which is Celery's own worker
(warm shutdown on SIGTERM or Ctrl-C: the customers under way finish first; a second Ctrl-C or a
kill leaves them to another worker). Exit status 0 when stopped, 2 for options or a configuration
that cannot be used.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cspgraph.cli import common

BROKER_HELP = (
    "The Celery broker: amqp://user:password@host:5672// (RabbitMQ) or redis://host:6379/1. "
    "Also CSPGRAPH_BROKER."
)


def worker(
    broker: str = typer.Option(
        ..., "--broker", envvar="CSPGRAPH_BROKER", metavar="URL", help=BROKER_HELP
    ),
    db: str = common.DB_OPTION,
    budget: str | None = typer.Option(
        None,
        "--budget-redis",
        envvar="CSPGRAPH_BUDGET_REDIS",
        metavar="URL",
        help="Redis holding the Graph budget and the Partner Center window every worker "
        "shares (redis://host:6379/0). "
        "Without it this worker paces itself alone: right for one worker only.",
    ),
    namespace: str = typer.Option(
        "cspgraph",
        "--budget-namespace",
        metavar="NAME",
        help="Workers with the same namespace share one budget (one per partner).",
    ),
    budget_scale: float = typer.Option(
        1.0,
        "--budget-scale",
        min=1e-9,
        hidden=True,
        help="Multiplies Graph's budgets (the emulator's throttling scale; tests, benchmarks).",
    ),
    concurrency: int = typer.Option(
        8, "--concurrency", min=1, max=256, metavar="N", help="Customers synced at the same time."
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        metavar="NAME",
        help="This worker's name in run records (default: celery@<host>).",
    ),
    queue: str = typer.Option(
        "cspgraph.sync", "--queue", metavar="NAME", help="The queue to take customers from."
    ),
    config: Path | None = common.CONFIG_OPTION,
) -> None:
    """Sync the customers `cspgraph sync --engine celery` enqueues, until stopped.

    Start one per machine or core against the same broker, store (PostgreSQL) and --budget-redis;
    a worker that dies leaves its customers to the others.
    """
    with common.command(interrupted="worker stopped") as run:
        try:
            from cspgraph.distributed.engine import WorkerSettings, start_worker
        except ImportError as exc:
            raise common.UsageError(
                f"the worker needs the scale extra (pip install 'cspgraph[scale]'): {exc}"
            ) from None
        settings = run.load_config(config)
        common.open_store(db).close()  # usable (and made, or brought up to date), else exit 2
        start_worker(
            broker,
            WorkerSettings(
                config=settings,
                store_url=db,
                budget_url=budget,
                budget_namespace=namespace,
                budget_scale=budget_scale,
            ),
            concurrency=concurrency,
            name=name,
            queue=queue,
        )
