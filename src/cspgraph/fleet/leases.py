"""Leases: which sync run may write a customer tenant's rows, held in the store itself.

A run takes a tenant's lease before it writes anything of that tenant, renews it while it works
(a heartbeat), and gives it back when the tenant is done. The lease is a row of ``sync_leases``
in the same database as the data, so it holds for SQLite and PostgreSQL alike and for runs on
several machines sharing one PostgreSQL store; leases are per tenant, so runs (or workers) that
sync different customers never wait for each other.

A lease is free to take when nobody holds it, when its holder is this holder (taking it again
renews it), when it expired (its holder stopped renewing: a crash on another machine, a machine
that lost the network), or when its holder was a process on this machine that no longer exists
(``kill -9``): then there is no need to wait for the expiry. Expiry is judged by the database's
clock, which every machine sharing the store reads alike.

::

    leases = TenantLeases(store)              # a holder id of its own: host, pid, a random part
    with leases.heartbeat():                  # renews every lease it holds, every ttl / 3
        try:
            leases.acquire(tenant_id)
        except LeaseHeldError as held:
            print("busy:", held.lease.holder)
        else:
            try:
                ...                           # write the tenant's rows
            finally:
                leases.release(tenant_id)

Leases are one half of the store's protection; the other needs no lease: a page is written only
while its pull's checkpoint is where the writing stream left it (:class:`~cspgraph.fleet.store.
PullPosition`), so even two runs that both believe they hold a tenant cannot sweep each other's
rows.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cspgraph.fleet.store import Store
from cspgraph.http.errors import TransientError

log = logging.getLogger(__name__)

# Seconds a lease lasts without renewal. The heartbeat renews every third of it, so two missed
# renewals in a row (a database briefly unreachable) do not lose it.
DEFAULT_TTL = 60.0


@dataclass(frozen=True, slots=True)
class Lease:
    """One tenant's lease as the store holds it. Times: seconds since the epoch, by the
    database's clock (or the clock the :class:`TenantLeases` was given)."""

    tenant_id: str
    holder: str
    acquired_at: float
    expires_at: float
    machine: str | None = None
    pid: int | None = None
    pid_started: str | None = None


class LeaseHeldError(TransientError):
    """Another holder has the tenant's lease and is alive: try again later (or wait)."""

    def __init__(self, lease: Lease, now: float) -> None:
        left = max(0.0, lease.expires_at - now)
        super().__init__(
            f"another sync run ({lease.holder}) is syncing this customer; its lease runs "
            f"{left:.0f} s more unless renewed",
            tenant=lease.tenant_id,
            reason="another sync run is syncing this customer",
        )
        self.lease = lease


class TenantLeases:
    """The leases one holder takes in a store: acquire, renew, release, per tenant.

    ``holder``: this holder's id (default: host name, process id and a random part, so two
    holders in one process differ); ``ttl``: seconds a lease lasts unless renewed; ``clock``:
    seconds since the epoch (default: the database's clock, read in each transaction).
    ``poll``: how often a caller that waits for a lease asks again (seconds). Thread-safe.
    """

    def __init__(
        self,
        store: Store,
        *,
        holder: str | None = None,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] | None = None,
        poll: float = 2.0,
    ) -> None:
        if ttl <= 0:
            raise ValueError("a lease's ttl must be positive")
        if poll <= 0:
            raise ValueError("poll must be positive")
        self.store = store
        self.holder = holder or new_holder_id()
        self.ttl = ttl
        self.poll = poll
        self._clock = clock
        self._held: set[str] = set()
        self._lost: set[str] = set()
        # Which acquisition of each held tenant this is (a counter): a renewal judges only the
        # leases held when it began. One taken (or given back and taken again) by another thread
        # while the renewal's read was already made is not in that read, and is not lost (the
        # race made a run under load report a lease lost with no other run anywhere).
        self._taken: dict[str, int] = {}
        self._acquisitions = itertools.count()
        self._lock = threading.Lock()
        sql = store.driver_sql
        columns = "tenant_id, holder, machine, pid, pid_started, acquired_at, expires_at"
        self._sql_read = sql(f"SELECT {columns} FROM sync_leases WHERE tenant_id = ?")  # noqa: S608
        self._sql_insert = sql(
            f"INSERT INTO sync_leases ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
            " ON CONFLICT (tenant_id) DO NOTHING"
        )
        # Compare and set: only the lease as it was read is replaced, so two takers of one
        # expired lease cannot both win.
        self._sql_take = sql(
            "UPDATE sync_leases SET holder = ?, machine = ?, pid = ?, pid_started = ?,"
            " acquired_at = ?, expires_at = ? WHERE tenant_id = ? AND holder = ? AND expires_at = ?"
        )
        self._sql_renew_one = sql(
            "UPDATE sync_leases SET expires_at = ? WHERE tenant_id = ? AND holder = ?"
        )
        self._sql_renew_all = sql("UPDATE sync_leases SET expires_at = ? WHERE holder = ?")
        self._sql_mine = sql("SELECT tenant_id FROM sync_leases WHERE holder = ?")
        self._sql_release = sql("DELETE FROM sync_leases WHERE tenant_id = ? AND holder = ?")
        self._sql_release_all = sql("DELETE FROM sync_leases WHERE holder = ?")
        self._sql_now = (
            "SELECT (julianday('now') - 2440587.5) * 86400.0"
            if store.dialect == "sqlite"
            else "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8"
        )

    # -- the interface --------------------------------------------------------------------------
    def acquire(self, tenant_id: str) -> Lease:
        """Take ``tenant_id``'s lease (or renew it, when this holder has it already); raises
        :class:`LeaseHeldError` while another live holder has it."""
        me = _me()
        with self.store.write_transaction() as cursor:
            now = self._now(cursor)
            mine = Lease(
                tenant_id, self.holder, now, now + self.ttl, me.machine, me.pid, me.started
            )
            fields = (me.machine, me.pid, me.started, now, now + self.ttl)
            current: Lease | None = None
            # A conditional write can lose to a concurrent taker; then look again (twice at
            # most: a lease changes hands far more slowly than that).
            for _ in range(3):
                current = self._read(cursor, tenant_id)
                if current is None:
                    cursor.execute(self._sql_insert, (tenant_id, self.holder, *fields))
                elif self._free(current, now):
                    if current.holder == self.holder:
                        mine = replace(mine, acquired_at=current.acquired_at)
                    cursor.execute(
                        self._sql_take,
                        (self.holder, *fields[:3], mine.acquired_at, mine.expires_at,
                         tenant_id, current.holder, current.expires_at),
                    )  # fmt: skip
                else:
                    raise LeaseHeldError(current, now)
                if cursor.rowcount == 1:
                    break
            else:
                raise LeaseHeldError(self._read(cursor, tenant_id) or mine, now)
        if current is not None and current.holder != self.holder:
            log.info("took over the lease of %s from %s", tenant_id, current.holder)

        def held() -> None:
            with self._lock:
                self._held.add(tenant_id)
                self._taken[tenant_id] = next(self._acquisitions)
                self._lost.discard(tenant_id)

        # Held once the row is there for every connection: a renewal judges what it holds by
        # the rows it reads, and a store writer's batch commits after this call returns.
        self.store.after_commit(held)
        return mine

    def renew(self, tenant_id: str | None = None) -> set[str]:
        """Extend this holder's lease of ``tenant_id`` (None: of every tenant it holds) by a
        ttl from now; returns the tenants whose lease this holder no longer has (another holder
        took it after it expired), which are also remembered (:meth:`lost`)."""
        with self._lock:
            asked = self._held if tenant_id is None else {tenant_id} & self._held
            before = {tenant: self._taken[tenant] for tenant in asked}
        with self.store.write_transaction() as cursor:
            until = self._now(cursor) + self.ttl
            if tenant_id is None:
                cursor.execute(self._sql_renew_all, (until, self.holder))
            else:
                cursor.execute(self._sql_renew_one, (until, tenant_id, self.holder))
            cursor.execute(self._sql_mine, (self.holder,))
            still = {row[0] for row in cursor.fetchall()}
        with self._lock:
            gone = {
                tenant
                for tenant, taken in before.items()
                if tenant not in still and self._taken.get(tenant) == taken
            }
            self._held -= gone
            for tenant in gone:
                del self._taken[tenant]
            self._lost |= gone
        for tenant in gone:
            log.warning("the lease of %s was lost: another run took it after it expired", tenant)
        return gone

    def release(self, tenant_id: str) -> None:
        """Give ``tenant_id``'s lease back (nothing happens when this holder does not have it)."""
        with self.store.write_transaction() as cursor:
            cursor.execute(self._sql_release, (tenant_id, self.holder))
        with self._lock:
            self._held.discard(tenant_id)
            self._taken.pop(tenant_id, None)

    def release_all(self) -> None:
        """Give back every lease this holder has (at the end of a run, also an interrupted one)."""
        with self.store.write_transaction() as cursor:
            cursor.execute(self._sql_release_all, (self.holder,))
        with self._lock:
            self._held.clear()
            self._taken.clear()

    def holder_of(self, tenant_id: str) -> Lease | None:
        """The tenant's lease as the store holds it (expired or not), or None."""
        with self.store.write_transaction() as cursor:
            return self._read(cursor, tenant_id)

    def held(self) -> set[str]:
        """The tenants this holder believes it holds."""
        with self._lock:
            return set(self._held)

    def lost(self, tenant_id: str) -> bool:
        """Whether a renewal found ``tenant_id``'s lease taken by another holder."""
        with self._lock:
            return tenant_id in self._lost

    @contextmanager
    def heartbeat(self, every: float | None = None) -> Iterator[Heartbeat]:
        """Renew every lease this holder has every ``every`` seconds (default: a third of the
        ttl) on a thread of its own, for as long as the block runs."""
        beat = Heartbeat(self, every if every is not None else self.ttl / 3)
        beat.start()
        try:
            yield beat
        finally:
            beat.stop()

    # -- inside ---------------------------------------------------------------------------------
    def _now(self, cursor: Any) -> float:
        if self._clock is not None:
            return self._clock()
        cursor.execute(self._sql_now)
        return float(cursor.fetchone()[0])

    def _read(self, cursor: Any, tenant_id: str) -> Lease | None:
        cursor.execute(self._sql_read, (tenant_id,))
        row = cursor.fetchone()
        if row is None:
            return None
        tenant, holder, machine, pid, started, acquired, expires = row
        return Lease(tenant, holder, float(acquired), float(expires), machine, pid, started)

    def _free(self, lease: Lease, now: float) -> bool:
        return lease.holder == self.holder or lease.expires_at <= now or died_here(lease)


class Heartbeat:
    """A thread that renews a holder's leases until stopped. A failed renewal (the database
    briefly unreachable) is logged and tried again at the next beat: the ttl allows for it."""

    def __init__(self, leases: TenantLeases, every: float) -> None:
        if every <= 0:
            raise ValueError("a heartbeat's interval must be positive")
        self.leases = leases
        self.every = every
        self.beats = 0  # renewals done (tests and diagnostics)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cspgraph-leases", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            if not self.leases.held():
                continue
            try:
                self.leases.renew()
            except Exception as exc:  # the next beat tries again; the ttl allows for it
                log.warning("renewing the sync leases failed: %s", exc)
            else:
                self.beats += 1


# -- who holds, and is it still alive --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Process:
    machine: str
    pid: int
    started: str | None


def new_holder_id() -> str:
    """``host pid=N #random``: readable in messages, unique per holder."""
    return f"{socket.gethostname()} pid={os.getpid()} #{secrets.token_hex(4)}"


def _machine() -> str:
    """What identifies this machine *and* process id space: the host name, the boot (Linux
    boot_id) and the pid namespace (containers on one host share the boot, not the pids)."""
    parts = [socket.gethostname()]
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        pass
    return "/".join(parts)


def _process_start(pid: int) -> str | None:
    """A live process's start time (Linux: /proc/<pid>/stat, field 22); None when there is no
    such process, it is a zombie, or this is not Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


_processes: dict[int, _Process] = {}


def _me() -> _Process:
    """This process, worked out once per process id (a forked worker is a process of its own)."""
    pid = os.getpid()
    me = _processes.get(pid)
    if me is None:
        me = _processes[pid] = _Process(_machine(), pid, _process_start(pid))
    return me


def died_here(lease: Lease) -> bool:
    """True when the lease's holder was a process on this machine that no longer exists; False
    when it lives, or when that cannot be known here (another machine: its lease expires)."""
    if lease.machine != _me().machine or lease.pid is None or os.name != "posix":
        return False
    if lease.pid == os.getpid():
        return False  # another holder in this very process: alive
    try:
        os.kill(lease.pid, 0)  # signal 0: does it exist? (POSIX only: on Windows it kills)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, as another user
    if Path("/proc/self/stat").exists():
        started = _process_start(lease.pid)
        # A zombie, or another process that got the same pid since.
        return started is None or (lease.pid_started is not None and started != lease.pid_started)
    return False
