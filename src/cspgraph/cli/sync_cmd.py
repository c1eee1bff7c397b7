"""`cspgraph sync`: every customer's directory and Intune inventory into the store.

Thin: options → :func:`cspgraph.fleet.sync.sync_fleet` → a summary table (or JSON). Exit status:
0 when every customer synced, 1 when some did not (their status says why; or another run was
syncing them), 2 for a configuration that cannot be used, 5 when a host stopped answering
mid-run (the sync stops early; run it again: it resumes), 130 when interrupted (likewise).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cspgraph.cli import common

if TYPE_CHECKING:
    from cspgraph.config import Config
    from cspgraph.fleet.outcomes import SyncSummary
    from cspgraph.fleet.store import Store

INTERRUPTED = (
    "interrupted: every page written so far is kept; run the same command again to resume where "
    "it stopped"
)


def sync(
    customers: str | None = typer.Option(
        None,
        "--customers",
        metavar="LIST",
        help="Only these customers, comma-separated: tenant IDs, domains or user@domain. "
        "Default: every customer Partner Center lists, in every configured region.",
    ),
    customers_file: Path | None = typer.Option(
        None,
        "--customers-file",
        metavar="FILE",
        help="Only the customers in this file, one per line (# comments).",
    ),
    customer_source: str = typer.Option(
        "partner-center",
        "--customer-source",
        metavar="SOURCE",
        help="Where the customer list comes from when no --customers are given: "
        "partner-center, gdap (customers with an active GDAP relationship) or both (and the "
        "gaps between the two are reported).",
    ),
    exclude_mlt: bool = typer.Option(
        False,
        "--exclude-mlt",
        help="With --customer-source gdap/both: leave out the read-only MLT_ relationships of "
        "Microsoft's transition tools.",
    ),
    db: str = common.DB_OPTION,
    full: bool = typer.Option(
        False, "--full", help="Pull everything again instead of the changes since the last run."
    ),
    concurrency: int = typer.Option(
        512,  # fleet.sync.DEFAULT_CONCURRENCY (not imported: start-up)
        "--concurrency",
        min=1,
        max=4096,
        metavar="N",
        help="Customers synced at the same time, at most (how many follows Graph's budgets, "
        "its latency and 429s).",
    ),
    page_size: int = typer.Option(
        999,
        "--page-size",
        min=1,
        max=999,
        metavar="N",
        help="Objects per Graph page (999: fewest requests).",
    ),
    resources: str | None = typer.Option(
        None,
        "--resources",
        metavar="LIST",
        help="Only these, comma-separated: users, groups, devices, organization, "
        "managedDevices, subscribedSkus, directoryRoles.",
    ),
    wait: bool = typer.Option(
        False,
        "--wait",
        help="When another sync run is syncing a customer, wait until it has finished and then "
        "sync it (default: leave it to that run, and exit 1).",
    ),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Print the outcome as JSON: counts per customer, totals, requests (the default "
        "when stdout is not a terminal).",
    ),
    progress: bool | None = typer.Option(
        None,
        "--progress/--no-progress",
        help="Show live progress (default: when stderr is a terminal).",
    ),
    prune: bool = typer.Option(
        False,
        "--prune",
        help="After the sync, delete everything the store keeps about customers Partner Center "
        "no longer lists (marked gone by this or an earlier run).",
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        metavar="ENGINE",
        help="local: this process syncs (default). celery: one task per customer for the "
        "`cspgraph worker`s listening on --broker; this command follows the run in the store "
        "(which must be the workers' PostgreSQL store). docs/scale.md.",
    ),
    broker: str | None = typer.Option(
        None,
        "--broker",
        envvar="CSPGRAPH_BROKER",
        metavar="URL",
        help="With --engine celery: the workers' broker (amqp://… or redis://…).",
    ),
    queue: str = typer.Option(
        "cspgraph.sync", "--queue", metavar="NAME", help="With --engine celery: the queue."
    ),
    follow: str | None = typer.Option(
        None,
        "--follow",
        metavar="RUN_ID",
        help="With --engine celery: enqueue nothing; follow this run of the workers in the store "
        "until it is whole (a run whose `sync --engine celery` was stopped; `cspgraph runs` "
        "lists them).",
    ),
    config: Path | None = common.CONFIG_OPTION,
) -> None:
    """Sync every customer's users, groups, devices, organization, Intune devices, licences and
    admins.

    The first run pulls everything; later runs fetch changes only (delta queries). Interrupted
    runs resume where they stopped. A customer another sync run is syncing is left to it (or
    waited for, with --wait). Exit status 1 when some customers could not be synced.
    """
    with common.command(interrupted=INTERRUPTED) as run:
        from cspgraph.fleet.customers import read_customers_file
        from cspgraph.fleet.resources import ALL_RESOURCES
        from cspgraph.fleet.sync import sync_fleet

        chosen: list[str] | None = None
        if customers is not None or customers_file is not None:
            chosen = [customers] if customers else []
            if customers_file is not None:
                try:
                    chosen += [c.reference for c in read_customers_file(customers_file)]
                except OSError as exc:
                    raise common.UsageError(
                        f"--customers-file {customers_file}: {exc.strerror}"
                    ) from None
                except UnicodeDecodeError as exc:
                    raise common.UsageError(
                        f"--customers-file {customers_file}: not UTF-8 text (undecodable byte "
                        f"at offset {exc.start}); save it as UTF-8"
                    ) from None
        from cspgraph.fleet.customer_sources import CustomerSource

        sources = [s.value for s in CustomerSource]
        if customer_source not in sources:
            raise common.UsageError(
                f"--customer-source: {customer_source!r}; expected one of {sources}"
            )
        wanted = [r.strip() for r in resources.split(",") if r.strip()] if resources else None
        unknown = sorted(set(wanted or ()) - set(ALL_RESOURCES))
        if unknown:
            raise common.UsageError(
                f"--resources: unknown {unknown}; expected some of {list(ALL_RESOURCES)}"
            )
        if engine not in ("local", "celery"):
            raise common.UsageError(f"--engine: {engine!r}; expected local or celery")
        if follow is not None:
            if engine != "celery":
                raise common.UsageError("--follow follows a run of workers: add --engine celery")
            if chosen is not None:
                raise common.UsageError(
                    "--follow takes the run's own customers: leave out --customers"
                )
        elif engine == "celery" and broker is None:
            raise common.UsageError("--engine celery needs --broker (or CSPGRAPH_BROKER)")
        if engine == "celery" and wait:
            raise common.UsageError("--wait is the workers' way already (--engine celery)")
        if engine == "celery" and customer_source != CustomerSource.PARTNER_CENTER:
            raise common.UsageError("--customer-source: the workers list Partner Center only "
                                    "(--engine celery); run it in process")  # fmt: skip
        # Following a run takes the store only: no configuration, no broker.
        settings = run.load_config(config) if follow is None else None
        store = common.open_store(db)

        show = sys.stderr.isatty() if progress is None else progress
        from cspgraph.cli.bulk_gc import tune_gc_for_bulk_work

        tune_gc_for_bulk_work()  # start-up is over: what it built lives as long as the process
        import asyncio  # imported where used: keeps `cspgraph --help` fast

        pruned: list[str] = []
        with store:
            if engine == "celery":
                summary = asyncio.run(
                    _on_workers(
                        run, settings, store, broker, follow, chosen, full, page_size, wanted,
                        queue,
                    )
                )  # fmt: skip
            else:
                assert settings is not None
                go = functools.partial(
                    sync_fleet, settings, store, customers=chosen, full=full,
                    concurrency=concurrency, page_size=page_size, resources=wanted, wait=wait,
                    customer_source=customer_source, exclude_mlt=exclude_mlt,
                )  # fmt: skip
                if show:
                    from cspgraph.fleet.sync_display import RichSyncProgress

                    with RichSyncProgress(common.console(stderr=True)) as live:
                        summary = asyncio.run(go(progress=live))
                else:
                    summary = asyncio.run(go())
            if prune:
                from cspgraph.fleet.runs import prune_gone

                pruned = prune_gone(store)

        if common.wants_json(json_out):
            common.print_json({**summary.as_dict(), "pruned": pruned})
        else:
            from cspgraph.fleet.sync_display import summary_view

            common.console().print(summary_view(summary))
            if summary.gone:
                common.say(
                    f"{len(summary.gone)} customer(s) no longer listed by Partner Center: marked "
                    "gone, their data kept until `cspgraph sync --prune`"
                )
            if pruned:
                common.say(f"pruned {len(pruned)} customer(s) no longer listed: their data is gone")
            _say_gdap(summary.gdap_unknown, summary.listing_gaps, summary.listing_errors)
            shown = common.shown_db(db)
            common.say(f"store: {shown}   next: {common.invoked_as()} report --db {shown}")
        if summary.left_alone:
            common.say(
                f"{len(summary.left_alone)} customer(s) left to another sync run that was syncing "
                "them: run again when it has finished, or with --wait"
            )
    if not summary.ok:
        gone = common.hosts_gone()
        if gone:  # not these customers' fault: the service went away (exit 5: try again soon)
            common.fail(
                common.Exit.TRANSIENT,
                f"error: transient: {', '.join(gone)} stopped answering during the sync (every "
                "connection refused), so it stopped early; every page written is kept: run the "
                "same command again when it answers, and it resumes",
            )
        raise typer.Exit(int(common.Exit.PARTLY_DONE))


async def _on_workers(
    run: common.Run,
    settings: Config | None,
    store: Store,
    broker: str | None,
    follow: str | None,
    customers: list[str] | None,
    full: bool,
    page_size: int,
    resources: list[str] | None,
    queue: str,
) -> SyncSummary:
    """``--engine celery``: enqueue, then follow the run in the store (a line per 10 % done);
    ``--follow``: follow a run already enqueued."""
    try:
        from cspgraph.distributed.engine import NotARun, enqueue_sync, follow_run
        from cspgraph.distributed.queues import consumers
    except ImportError as exc:
        raise common.UsageError(
            f"--engine celery needs the scale extra (pip install 'cspgraph[scale]'): {exc}"
        ) from None
    shown = [-1]

    def progress(done: int, total: int) -> None:
        step = done * 10 // max(total, 1)
        if step != shown[0]:
            shown[0] = step
            common.say(f"{done} of {total} customers synced by the workers")

    def enqueued(run_id: str, count: int) -> None:
        follow_it = f"cspgraph sync --engine celery --follow {run_id}"
        common.say(f"run {run_id}: {count} customers sent to the workers (follow it from "
                   f"anywhere with `{follow_it}`)")  # fmt: skip
        run.interrupted = (
            f"stopped following run {run_id}; the workers go on with it: `{follow_it}` follows "
            "it again, `cspgraph runs` shows how far it has got"
        )
        if broker is not None and consumers(broker, queue) == 0:
            # Else the run would wait in silence: a queue nobody reads never moves.
            common.say(f"no worker consumes queue {queue} yet: the run waits until one does "
                       f"(`cspgraph worker --queue {queue}`, docs/scale.md)")  # fmt: skip

    if follow is not None:
        try:
            return await follow_run(store, follow, progress=progress)
        except NotARun as exc:
            raise common.UsageError(f"--follow: {exc}") from None
    assert settings is not None and broker is not None
    return await enqueue_sync(
        settings, store, broker, customers=customers, full=full, page_size=page_size,
        resources=resources, queue=queue, progress=progress, enqueued=enqueued,
    )  # fmt: skip


def _say_gdap(
    unknown: dict[str, str], gaps: dict[str, Any] | None, listing_errors: dict[str, str]
) -> None:
    """What a terminal reader should know about GDAP after a sync: regions whose relationships
    are unknown (once: a region whose customers they were to list is among the listing errors
    the summary shows), and the gaps between Partner Center's customers and the GDAP ones."""
    for region, why in unknown.items():
        if why not in listing_errors.get(region, ""):
            common.say(f"GDAP relationships of region {region} unknown: {why}")
    if not gaps:
        return
    unknown_why: dict[str, int] = {}
    for entry in gaps.get("unknown", ()):
        unknown_why[entry["why"]] = unknown_why.get(entry["why"], 0) + 1
    for why, n in unknown_why.items():
        common.say(f"{n} customer(s) in neither gap: {why}")
    for key, label in (
        ("only_partner_center", "listed by Partner Center only"),
        ("only_gdap", "listed by GDAP only"),
    ):
        for entry in gaps[key]:
            common.say(f"{label}: {entry['name'] or entry['tenant_id']} ({entry['why']})")
    if not gaps["complete"]:
        common.say("a list was not read whole: these gaps may be incomplete")
