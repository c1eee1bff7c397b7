"""The dashboard's reads: the customer list (search, filter, sort and paging done by the
database), the fleet's figures, and one customer's page.

Why the list stays fast at thousands of customers: it reads the ``customers`` table (one row per
customer) joined to each customer's figures as its last successful sync recorded them
(``run_customers.figures`` of ``customer_state.state_run_id``: users, guests, admins, managed and
non-compliant devices, licences), instead of counting the inventory tables on every request. The
inventory changes only when a sync writes it, and the sync records those figures in the same
transaction, so they are what the store holds. A figure the sync could not know (no Intune, no
role permission) is absent from them and reads as NULL: unknown, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.engine import Connection

from cspgraph.fleet import inventory, security_state
from cspgraph.fleet.history_schema import changes, coverage, customer_state, run_customers, runs
from cspgraph.fleet.outcomes import CustomerStatus
from cspgraph.fleet.resources import ADMIN_ROLES
from cspgraph.fleet.schema import customers, managed_devices, organizations, users

PER_PAGE = 50
# The customer page lists this many users and devices at a time (a large tenant has thousands).
OBJECTS_PER_PAGE = 100
HISTORY_RUNS = 30

NEVER = "never"
GONE = "gone"
STATUSES = (
    CustomerStatus.NEEDS_PERSON.value,
    CustomerStatus.FAILED.value,
    CustomerStatus.PROPAGATING.value,
    CustomerStatus.RUNNING.value,
    CustomerStatus.OK.value,
    NEVER,
    GONE,
)
# Sync problems first, as the report orders them.
_STATUS_RANK = case(
    (customers.c.status == CustomerStatus.NEEDS_PERSON.value, 0),
    (customers.c.status == CustomerStatus.FAILED.value, 1),
    (customers.c.status == CustomerStatus.PROPAGATING.value, 2),
    (customers.c.status == CustomerStatus.RUNNING.value, 3),
    (customers.c.status.is_(None), 4),
    else_=5,
)


def _figure(name: str) -> ColumnElement[Any]:
    # JSON_EXTRACT on SQLite, ->> on PostgreSQL: a missing key is NULL on both.
    value: ColumnElement[Any] = run_customers.c.figures[name].as_integer()
    return value


# The tenant's organization (a singleton whose id is the tenant id), joined rather than looked up
# per row: a correlated subquery in the name made PostgreSQL's planner cost a search of 5,000
# customers at 164,000, above its JIT threshold, and compiling the query cost more than running
# it (docs/benchmarks.md, "Dashboard search at 5,000 customers").
_ORG = organizations.alias("org")
_WITH_ORG = customers.outerjoin(
    _ORG, and_(_ORG.c.tenant_id == customers.c.tenant_id, _ORG.c.id == customers.c.tenant_id)
)
NAME = func.coalesce(
    customers.c.display_name, _ORG.c.display_name, customers.c.domain, customers.c.tenant_id
)
_UNUSED = _figure("licences_bought") - _figure("licences_assigned")
SORTS: dict[str, ColumnElement[Any]] = {
    "attention": _STATUS_RANK,
    "name": func.lower(NAME),
    "status": _STATUS_RANK,
    "last_sync": customers.c.last_sync_at,
    "users": _figure("users"),
    "guests": _figure("guests"),
    "admins": _figure("admins"),
    "managed": _figure("managed"),
    "noncompliant": _figure("noncompliant"),
    "unused": _UNUSED,
}
# The direction a sort starts in: the most first for counts, the worst first for status.
DESCENDING_FIRST = {"users", "guests", "admins", "managed", "noncompliant", "unused", "last_sync"}


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What the customer list asks for; every field comes from the URL, checked here."""

    search: str = ""
    status: str = ""  # one of STATUSES, or "" for all
    region: str = ""
    sort: str = "attention"
    descending: bool = False
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def from_params(cls, params: dict[str, str]) -> ListQuery:
        """Read from query parameters; anything unknown falls back to the default (a link
        someone edited by hand shows the whole list rather than an error)."""
        sort = params.get("sort", "attention")
        sort = sort if sort in SORTS else "attention"
        order = params.get("dir", "")
        descending = order == "desc" if order in ("asc", "desc") else sort in DESCENDING_FIRST
        status = params.get("status", "")
        try:
            page = max(1, int(params.get("page", "1")))
        except ValueError:
            page = 1
        return cls(
            search=params.get("q", "").strip()[:200],
            status=status if status in STATUSES else "",
            region=params.get("region", "").strip()[:40],
            sort=sort,
            descending=descending,
            page=page,
        )

    def params(self, **changes: Any) -> dict[str, str]:
        """This query as URL parameters (defaults left out), with ``changes`` applied."""
        q = replace(self, **changes)
        out = {
            "q": q.search,
            "status": q.status,
            "region": q.region,
            "sort": "" if q.sort == "attention" else q.sort,
            "dir": "" if q.descending == (q.sort in DESCENDING_FIRST) else
            ("desc" if q.descending else "asc"),
            "page": "" if q.page == 1 else str(q.page),
        }  # fmt: skip
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True, slots=True)
class CustomerRow:
    tenant_id: str
    name: str
    domain: str | None
    region: str | None
    status: str | None
    status_reason: str | None
    last_sync_at: datetime | None
    gone_since: datetime | None
    failing_runs: int | None
    # As the last successful sync recorded them; None: unknown.
    users: int | None
    guests: int | None
    admins: int | None
    managed: int | None
    noncompliant: int | None
    licences_bought: int | None
    licences_assigned: int | None

    @property
    def unused(self) -> int | None:
        if self.licences_bought is None or self.licences_assigned is None:
            return None
        return max(0, self.licences_bought - self.licences_assigned)


@dataclass(frozen=True, slots=True)
class CustomerPage:
    rows: list[CustomerRow]
    total: int  # customers matching the query (all pages)
    query: ListQuery

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.per_page))


def _listing() -> Any:
    c, s = customers.c, customer_state.c
    return (
        select(
            c.tenant_id, NAME.label("name"), c.domain, c.region, c.status, c.status_reason,
            c.last_sync_at, s.gone_since, s.failing_runs,
            _figure("users").label("users"), _figure("guests").label("guests"),
            _figure("admins").label("admins"), _figure("managed").label("managed"),
            _figure("noncompliant").label("noncompliant"),
            _figure("licences_bought").label("licences_bought"),
            _figure("licences_assigned").label("licences_assigned"),
        )
        .select_from(_WITH_ORG)
        .outerjoin(customer_state, s.tenant_id == c.tenant_id)
        .outerjoin(
            run_customers,
            and_(run_customers.c.run_id == s.state_run_id,
                 run_customers.c.tenant_id == c.tenant_id),
        )
    )  # fmt: skip


def _filters(query: ListQuery) -> list[ColumnElement[bool]]:
    c, s = customers.c, customer_state.c
    where: list[ColumnElement[bool]] = []
    if query.search:
        # Case-insensitive containment in the name, the domain or the tenant id; the user's
        # text is a bound parameter, its LIKE wildcards escaped.
        text = query.search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{text}%"
        where.append(
            or_(
                func.lower(NAME).like(pattern, escape="\\"),
                func.lower(c.domain).like(pattern, escape="\\"),
                func.lower(c.tenant_id).like(pattern, escape="\\"),
            )
        )
    if query.status == NEVER:
        where.append(c.status.is_(None))
    elif query.status == GONE:
        where.append(s.gone_since.is_not(None))
    elif query.status:
        where.append(c.status == query.status)
    if query.region:
        where.append(c.region == query.region)
    return where


def list_customers(conn: Connection, query: ListQuery) -> CustomerPage:
    """One page of customers matching ``query``, sorted by the database."""
    where = _filters(query)
    count_stmt = select(func.count()).select_from(_WITH_ORG if query.search else customers)
    if query.status == GONE:
        count_stmt = count_stmt.outerjoin(
            customer_state, customer_state.c.tenant_id == customers.c.tenant_id
        )
    total = conn.execute(count_stmt.where(*where)).scalar_one()
    key = SORTS[query.sort]
    ordered = key.desc() if query.descending else key.asc()
    # Unknown last whichever the direction: "the most users" never starts with a dash.
    order = (ordered.nulls_last(), func.lower(NAME), customers.c.tenant_id)
    # The page's tenants first, sorted on the key alone; then their rows. PostgreSQL computes a
    # query's whole select list before it sorts, and each figure is parsed out of a JSON text:
    # 5,000 customers x 7 figures for a page of 50 (docs/benchmarks.md).
    page = (
        _listing()
        .with_only_columns(customers.c.tenant_id)
        .where(*where)
        .order_by(*order)
        .limit(query.per_page)
        .offset((query.page - 1) * query.per_page)
        .subquery("page")
    )
    stmt = _listing().join(page, page.c.tenant_id == customers.c.tenant_id).order_by(*order)
    rows = [CustomerRow(**row._mapping) for row in conn.execute(stmt)]
    return CustomerPage(rows, total, query)


def regions(conn: Connection) -> list[str]:
    stmt = select(customers.c.region).where(customers.c.region.is_not(None)).distinct()
    return sorted(conn.execute(stmt).scalars())


# --- the fleet -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FleetFigures:
    customers: int
    by_status: dict[str, int]  # status (NEVER for never synced) -> customers
    gone: int
    # Sums over the customers whose figure is known, and how many those are.
    users: int
    guests: int
    admins: int
    admins_known: int
    managed: int
    managed_known: int
    noncompliant: int
    synced: int  # customers with a recorded successful sync
    last_run_at: datetime | None
    last_run_outcome: str | None

    @property
    def sync_problems(self) -> int:
        ok = self.by_status.get(CustomerStatus.OK.value, 0)
        return self.customers - ok - self.by_status.get(NEVER, 0)


def fleet_figures(conn: Connection) -> FleetFigures:
    c = customers.c
    by_status = {
        status or NEVER: n
        for status, n in conn.execute(select(c.status, func.count()).group_by(c.status))
    }
    listing = _listing().subquery()
    sums = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(listing.c.users), 0),
            func.coalesce(func.sum(listing.c.guests), 0),
            func.coalesce(func.sum(listing.c.admins), 0),
            func.count(listing.c.admins),
            func.coalesce(func.sum(listing.c.managed), 0),
            func.count(listing.c.managed),
            func.coalesce(func.sum(listing.c.noncompliant), 0),
            func.count(listing.c.users),
            func.count(listing.c.gone_since),
        )
    ).one()
    last = conn.execute(
        select(runs.c.started_at, runs.c.outcome).order_by(runs.c.started_at.desc()).limit(1)
    ).first()
    return FleetFigures(
        customers=sums[0],
        by_status=by_status,
        gone=sums[9],
        users=int(sums[1]),
        guests=int(sums[2]),
        admins=int(sums[3]),
        admins_known=sums[4],
        managed=int(sums[5]),
        managed_known=sums[6],
        noncompliant=int(sums[7]),
        synced=sums[8],
        last_run_at=last.started_at if last else None,
        last_run_outcome=last.outcome if last else None,
    )


def interactive(conn: Connection) -> None:
    """Set up a read transaction for a page's short queries: on PostgreSQL without JIT
    compilation, which costs 30-80 ms a query on a loaded machine and is never won back by
    queries that run in 5-30 ms (measured in docs/benchmarks.md). Local to the transaction."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL jit = off")


def store_version(conn: Connection) -> tuple[Any, ...]:
    """Changes whenever a sync recorded something: what the dashboard's cached check results
    are keyed by (two small queries: ``runs`` has a row per run, ``customers`` one per
    customer)."""
    r, c = runs.c, customers.c
    run_part = conn.execute(select(func.count(), func.max(r.started_at), func.max(r.finished_at)))
    customer_part = conn.execute(select(func.count(), func.max(c.status_at)))
    return (*run_part.one(), *customer_part.one())


# --- one customer ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryRow:
    run_id: str
    finished_at: datetime
    status: str
    reason: str | None
    seconds: float | None
    figures: dict[str, Any]


@dataclass(slots=True)
class CustomerDetail:
    row: CustomerRow
    status_at: datetime | None
    error_class: str | None
    unreadable: dict[str, str]  # resource -> why the last sync could not read it
    admins: list[inventory.RoleHolder]
    roles_known: bool
    licences: list[inventory.LicenceRow]
    users: list[inventory.UserRow]
    users_total: int
    devices: list[inventory.DeviceRow]
    devices_total: int
    history: list[HistoryRow]
    changes: list[security_state.Change] = field(default_factory=list)


def customer_detail(
    conn: Connection, tenant_id: str, *, users_page: int = 1, devices_page: int = 1
) -> CustomerDetail | None:
    """Everything the customer page shows, or None when the store has no such customer."""
    found = conn.execute(_listing().where(customers.c.tenant_id == tenant_id)).first()
    if found is None:
        return None
    extra = conn.execute(
        select(customers.c.status_at, customers.c.error_class).where(
            customers.c.tenant_id == tenant_id
        )
    ).one()
    cv = coverage.c
    unreadable = {
        resource: reason or "not readable in this tenant"
        for resource, reason in conn.execute(
            select(cv.resource, cv.reason).where(cv.tenant_id == tenant_id, cv.available.is_(False))
        )
    }
    u = users.c
    users_total = conn.execute(
        select(func.count()).select_from(users).where(u.tenant_id == tenant_id)
    ).scalar_one()
    user_rows = conn.execute(
        inventory.user_columns()
        .where(u.tenant_id == tenant_id)
        .order_by(func.lower(func.coalesce(u.upn, u.display_name, u.id)), u.id)
        .limit(OBJECTS_PER_PAGE)
        .offset((max(1, users_page) - 1) * OBJECTS_PER_PAGE)
    )  # fmt: skip
    md = managed_devices.c
    devices_total = conn.execute(
        select(func.count()).select_from(managed_devices).where(md.tenant_id == tenant_id)
    ).scalar_one()
    device_ids = list(
        conn.execute(
            select(md.id)
            .where(md.tenant_id == tenant_id)
            .order_by(func.lower(func.coalesce(md.device_name, md.id)), md.id)
            .limit(OBJECTS_PER_PAGE)
            .offset((max(1, devices_page) - 1) * OBJECTS_PER_PAGE)
        ).scalars()
    )
    order = {device: i for i, device in enumerate(device_ids)}
    devices = sorted(
        inventory.managed_devices_of(conn, tenant_id, where=md.id.in_(device_ids or [""])),
        key=lambda d: order[d.id],
    )
    rc = run_customers.c
    history = [
        HistoryRow(row.run_id, row.finished_at, row.status, row.reason, row.seconds,
                   row.figures if isinstance(row.figures, dict) else {})
        for row in conn.execute(
            select(rc.run_id, rc.finished_at, rc.status, rc.reason, rc.seconds, rc.figures)
            .where(rc.tenant_id == tenant_id)
            .order_by(rc.finished_at.desc())
            .limit(HISTORY_RUNS)
        )
    ]  # fmt: skip
    return CustomerDetail(
        row=CustomerRow(**found._mapping),
        status_at=extra.status_at,
        error_class=extra.error_class,
        unreadable=unreadable,
        admins=inventory.role_holders(conn, tenant_id),
        # Rows a sync that could not read the roles left behind are not today's holders.
        roles_known=bool(inventory.roles_synced(conn, tenant_id)) and ADMIN_ROLES not in unreadable,
        licences=inventory.licences(conn, tenant_id),
        users=[inventory.user_from_row(r) for r in user_rows],
        users_total=users_total,
        devices=devices,
        devices_total=devices_total,
        history=history,
        changes=recent_changes(conn, tenant_id),
    )


def recent_changes(
    conn: Connection, tenant_id: str, limit: int = 50
) -> list[security_state.Change]:
    """The customer's security-relevant changes over its runs, newest first."""
    c = changes.c
    stmt = (
        select(c.tenant_id, c.run_id, c.kind, c.item_id, c.change, c.label, c.before, c.after, c.at)
        .where(c.tenant_id == tenant_id)
        .order_by(c.at.desc(), c.kind, c.label)
        .limit(limit)
    )
    return [security_state.Change(*row) for row in conn.execute(stmt)]


__all__ = [
    "GONE",
    "NEVER",
    "STATUSES",
    "CustomerDetail",
    "CustomerPage",
    "CustomerRow",
    "FleetFigures",
    "ListQuery",
    "customer_detail",
    "fleet_figures",
    "interactive",
    "list_customers",
    "regions",
    "store_version",
]
