"""The store's writer: blocking store calls on their own threads, off the event loop.

The sync's streams fetch pages on the event loop while SQLAlchemy writes them here; see
:class:`StoreWriter` (and DESIGN.md, "Store writes go through one writer thread with group
commit", for why a thread and not the loop).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import queue
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError

from cspgraph.fleet.store import Store
from cspgraph.http.inflight import REQUEST_PRIORITY

T = TypeVar("T")

# PostgreSQL's "deadlock detected" and "could not serialize": the transaction may simply be run
# again. Store calls are tried this many times.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
DB_ATTEMPTS = 4
# Objects (and group membership links) handed to the writer and not written yet, at most (a few
# hundred bytes to 1 KB each once parsed): the streams wait beyond this. 20,000 is about a second
# of SQLite writing, enough to keep the thread busy; measured at 200 customers under load, 50,000
# not counting links let the backlog reach 325 MB of peak RSS.
MAX_BACKLOG = 20_000
# The priority of :meth:`StoreWriter.run_first` calls: above any stream's depth.
STARTING = math.inf


class Backlog:
    """Objects submitted to the writer and not yet written; streams wait in :meth:`room` while
    there are more than ``limit`` (so memory does not grow with the requests in flight when
    fetching outruns writing). On the event loop only."""

    def __init__(self, limit: int = MAX_BACKLOG) -> None:
        self.limit = limit
        self.objects = 0
        self.peak = 0
        self._room: asyncio.Event | None = None

    @property
    def full(self) -> bool:
        return self.objects > self.limit

    def add(self, n: int) -> None:
        self.objects += n
        if self.objects > self.peak:
            self.peak = self.objects

    def done(self, n: int) -> None:
        self.objects -= n
        if self._room is not None and not self.full:
            self._room.set()

    async def room(self) -> None:
        while self.full:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()


class StoreWriter:
    """Runs blocking store calls on dedicated threads, off the event loop, committing the calls
    that queue up together in one transaction (group commit).

    One thread by default: SQLite has one writer at a time anyway, and one thread keeps its lock
    uncontended. PostgreSQL takes concurrent writers (``threads`` > 1). Order within a stream is
    kept by the stream itself, which never has two writes outstanding.

    While the thread writes, the streams keep fetching; whatever they submitted meanwhile is taken
    in one go (up to ``max_batch`` calls) and run inside one :meth:`Store.batch`. Every call is
    atomic and idempotent on its own, so a batch changes nothing but the number of commits: a
    call's future resolves only once its batch has committed, and when a batch fails its calls
    are run again one by one, each in its own transaction with the usual retries, so one bad call
    fails alone.
    """

    def __init__(self, store: Store, threads: int = 1, *, max_batch: int = 64) -> None:
        self.store = store
        self.max_batch = max_batch
        self.batches = 0  # transactions committed for more than one call
        self.calls = 0  # calls run
        self.backlog = Backlog()  # objects the streams submitted, not written yet
        # Highest priority first, then first come: a stream deep into a long chain has its page
        # written before the first pages of small tenants (REQUEST_PRIORITY, set per stream by
        # the sync), so the chains that set the run's end never wait behind the bulk. The
        # threads' stop marks sort after every call.
        self._queue: queue.PriorityQueue[tuple[float, int, _Call | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads = [
            threading.Thread(target=self._work, name=f"cspgraph-store_{i}", daemon=True)
            for i in range(threads)
        ]
        self._started = False
        self._closed = False
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Queue a call at the current :data:`REQUEST_PRIORITY` (a stream's depth)."""
        return self._submit(REQUEST_PRIORITY.get(), fn, args, kwargs)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self.submit(fn, *args, **kwargs)

    async def run_first(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a call ahead of every queued page: a customer's start-up trips (its lease, its
        registration, where its pulls start) gate every request it will send, and are tiny.
        Behind the pages of a busy writer, a first run's customers started up to 2.5 s after
        their token (bench, 200 customers, load 9 on 2 cores)."""
        return await self._submit(STARTING, fn, args, kwargs)

    def _submit(
        self, priority: float, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the store writer is closed")
            if not self._started:
                for thread in self._threads:
                    thread.start()
                self._started = True
            call = _Call(functools.partial(fn, *args, **kwargs), future, loop)
            self._queue.put((-priority, next(self._order), call))
        return future

    def close(self) -> None:
        """Wait for the writes in flight and queued (the store must not close under them), then
        stop the threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            started = self._started
        if not started:
            return
        for _ in self._threads:
            self._queue.put((math.inf, next(self._order), None))
        for thread in self._threads:
            thread.join()

    # -- the writer threads ------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            first = self._queue.get()[2]
            if first is None:
                return
            calls = [first]
            stop = False
            while len(calls) < self.max_batch:
                try:
                    more = self._queue.get_nowait()[2]
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                calls.append(more)
            self._run([c for c in calls if not c.future.cancelled()])
            if stop:
                return

    def _run(self, calls: list[_Call]) -> None:
        outcomes: list[tuple[_Call, Any, BaseException | None]] = []
        if len(calls) > 1:
            try:
                with self.store.batch():
                    results = [call.fn() for call in calls]
            except Exception:  # noqa: S110 - each call is run again alone below
                pass
            else:
                outcomes = [(c, r, None) for c, r in zip(calls, results, strict=True)]
                self.batches += 1
        if not outcomes:
            for call in calls:
                try:
                    outcomes.append((call, _with_db_retries(call.fn), None))
                except BaseException as exc:  # handed to the awaiting stream
                    outcomes.append((call, None, exc))
        self.calls += len(calls)
        # One wake-up of each event loop for the whole batch, not one per call.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Call, Any, BaseException | None]]]
        by_loop = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, done in by_loop.items():
            with suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_resolve, done)


@dataclass(slots=True)
class _Call:
    fn: Callable[[], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _resolve(done: list[tuple[_Call, Any, BaseException | None]]) -> None:
    """On the event loop: hand each call's result or exception to its future."""
    for call, result, exc in done:
        if call.future.done():  # cancelled while it was being written
            continue
        if exc is None:
            call.future.set_result(result)
        else:
            call.future.set_exception(exc)


def _with_db_retries(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a store call again when the database gave up on it for a passing reason.

    Concurrent PostgreSQL writers can deadlock on memberships (a user's deletion and its group's
    delta touch the same rows); the database then aborts one transaction. Every store call the
    sync makes is atomic and idempotent, so running it again is safe."""
    for attempt in range(DB_ATTEMPTS):
        try:
            return fn(*args, **kwargs)
        except DBAPIError as exc:
            sqlstate = getattr(exc.orig, "sqlstate", None)
            passing = sqlstate in TRANSIENT_SQLSTATES or exc.connection_invalidated
            if not passing or attempt == DB_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * 2**attempt)  # on the writer thread, never the event loop
    raise AssertionError("unreachable")
