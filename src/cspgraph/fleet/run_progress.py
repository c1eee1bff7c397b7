"""Runs as the store has them, with their progress so far: what ``cspgraph runs`` lists and what
``cspgraph sync --engine celery --follow RUN_ID`` follows.

A local run is followed by the process that runs it; a run of workers (``sync --engine celery``)
records how many customers it sent them before sending the first (``runs.customers`` while it is
``running``), and each customer's task in ``run_tasks``: its progress is how many of those have
finished, and its Graph requests so far their sum, whoever asks and whether or not the process
that enqueued it is still there.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from cspgraph.fleet.history_schema import run_tasks, runs
from cspgraph.fleet.store import Store

__all__ = ["RunProgress", "recent_runs", "run_progress"]


@dataclasses.dataclass(frozen=True)
class RunProgress:
    """One run and how far it has got. ``None``: not known (never 0 in its place)."""

    run_id: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str  # running | completed | interrupted | failed
    listed: str | None
    # Customers the run syncs: those sent to workers (a run of workers, from its start), or
    # those a local run synced (known once it has ended).
    customers: int | None
    finished: int | None  # customers whose sync has ended; a running local run's: unknown
    requests: int | None
    throttled: int | None
    wall_time: float | None
    listing_errors: dict[str, str]
    on_workers: bool  # a run of `sync --engine celery`: its tasks are in run_tasks

    @property
    def followable(self) -> bool:
        """Whether the store alone tells when the run is whole: a run of workers."""
        return self.on_workers

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("started_at", "finished_at"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        return out


def recent_runs(store: Store, limit: int = 20) -> list[RunProgress]:
    """The ``limit`` latest runs, newest first."""
    return _query(store, None, limit)


def run_progress(store: Store, run_id: str) -> RunProgress | None:
    """One run (``None`` when the store has no such run)."""
    found = _query(store, run_id, 1)
    return found[0] if found else None


def _query(store: Store, run_id: str | None, limit: int) -> list[RunProgress]:
    r, t = runs.c, run_tasks.c
    tasks = (
        select(
            t.run_id.label("run_id"),
            func.count().label("task_count"),
            func.count(t.finished_at).label("task_finished"),
            func.sum(t.requests).label("task_requests"),
            func.sum(t.throttled).label("task_throttled"),
        )
        .group_by(t.run_id)
        .subquery()
    )
    query = (
        select(
            r.run_id, r.started_at, r.finished_at, r.outcome, r.listed, r.customers,
            r.requests, r.throttled, r.wall_time, r.listing_errors,
            tasks.c.task_count, tasks.c.task_finished, tasks.c.task_requests,
            tasks.c.task_throttled,
        )
        .select_from(runs.outerjoin(tasks, tasks.c.run_id == r.run_id))
        .order_by(r.started_at.desc())
        .limit(limit)
    )  # fmt: skip
    if run_id is not None:
        query = query.where(r.run_id == run_id)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    out = []
    for row in rows:
        running = row.outcome == "running"
        # A run of workers: it named its customers while running, or has tasks recorded.
        on_workers = bool(row.task_count) or (running and row.customers is not None)
        finished: int | None
        if on_workers:
            finished = int(row.task_finished or 0)
        else:
            finished = row.customers if not running else None
        if running and on_workers:  # so far: the sum of what its tasks have counted
            requests, throttled = row.task_requests, row.task_throttled
        else:  # what its end recorded (a running local run: unknown until then)
            requests, throttled = row.requests, row.throttled
        out.append(
            RunProgress(
                run_id=row.run_id,
                started_at=row.started_at,
                finished_at=row.finished_at,
                outcome=row.outcome,
                listed=row.listed,
                customers=row.customers,
                finished=finished,
                requests=None if requests is None else int(requests),
                throttled=None if throttled is None else int(throttled),
                wall_time=row.wall_time,
                listing_errors=dict(row.listing_errors or {}),
                on_workers=on_workers,
            )
        )
    return out
