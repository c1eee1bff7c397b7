"""The dashboard's pages: a request's path and parameters in, an HTML page out.

Server-rendered with the templates the HTML report uses (:mod:`cspgraph.fleet.html`: Jinja2,
every value escaped), no script at all: sorting, filtering and search are links and one GET
form, answered by the database (:mod:`cspgraph.dashboard.queries`). Nothing here writes to the
store.

=====================  =========================================================================
path                   page
=====================  =========================================================================
``/``                  needs action first (severity filter, pages), the fleet's figures, what
                       changed since the sync before
``/customers``         every customer: search, status and region filters, sort, pages
``/customers/<id>``    one customer: findings, admins by name, licences, users, managed
                       devices, the history over runs, its changes
=====================  =========================================================================
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

from jinja2 import PackageLoader
from markupsafe import Markup

from cspgraph.dashboard import queries
from cspgraph.dashboard.checks_cache import ChecksCache
from cspgraph.fleet.checks import Severity
from cspgraph.fleet.html import environment, render, stylesheet
from cspgraph.fleet.report import top_counts
from cspgraph.fleet.report_html import change_words
from cspgraph.fleet.store import Store

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

ACTIONS_PER_PAGE = 25
CHANGES_SHOWN = 50
HTML = "text/html; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Page:
    status: int
    body: str
    content_type: str = HTML
    headers: dict[str, str] = field(default_factory=dict)


def customer_link(tenant_id: str) -> str:
    return "/customers/" + quote(tenant_id, safe="")


def link(path: str, params: Mapping[str, str]) -> str:
    return path + ("?" + urlencode(params) if params else "")


def _page_number(params: Mapping[str, str], name: str = "page") -> int:
    try:
        return max(1, int(params.get(name, "1")))
    except ValueError:
        return 1


class Pages:
    """The dashboard over one store (thread-safe: each page reads on its own connection)."""

    def __init__(self, store: Store, *, checks: ChecksCache | None = None) -> None:
        self.store = store
        self.checks = checks or ChecksCache(store)
        self.env = environment(PackageLoader("cspgraph.dashboard", "templates"))
        self.env.globals.update(
            customer_link=customer_link,
            link=link,
            change_words=change_words,
            top_counts=top_counts,
            style=Markup(stylesheet()),  # noqa: S704 - the stylesheet shipped with cspgraph
        )

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A page's read transaction, set up for short queries (queries.interactive)."""
        with self.store.reading() as conn:
            queries.interactive(conn)
            yield conn

    def get(self, path: str, params: Mapping[str, str]) -> Page:
        if path in ("/", ""):
            return self.overview(params)
        if path == "/customers":
            return self.customers(params)
        if path.startswith("/customers/") and path.count("/") == 2:
            return self.customer(unquote(path.removeprefix("/customers/")), params)
        return self.not_found(f"There is no page at {path}.")

    def _render(self, name: str, status: int = 200, **context: Any) -> Page:
        now = datetime.now(UTC)
        return Page(status, render(self.env, name, now=now, **context))

    def not_found(self, why: str) -> Page:
        return self._render("dashboard_missing.html", 404, why=why, nav="")

    # --- pages ------------------------------------------------------------------------------------

    def overview(self, params: Mapping[str, str]) -> Page:
        evaluated = self.checks.get()
        wanted = params.get("severity", "")
        try:
            floor = Severity.parse(wanted) if wanted else None
        except ValueError:
            floor = None
        items = [a for a in evaluated.actions if floor is None or a.severity >= floor]
        pages = max(1, -(-len(items) // ACTIONS_PER_PAGE))
        page = min(_page_number(params), pages)
        shown = items[(page - 1) * ACTIONS_PER_PAGE : page * ACTIONS_PER_PAGE]
        counts = {s.label: 0 for s in sorted(Severity, reverse=True)}
        for finding in evaluated.results.findings:
            counts[finding.severity.label] += 1
        with self._reading() as conn:
            figures = queries.fleet_figures(conn)
        return self._render(
            "dashboard_overview.html",
            nav="overview",
            actions=shown,
            actions_total=len(items),
            all_actions=len(evaluated.actions),
            severity=floor.label if floor else "",
            severities=[s.label for s in sorted(Severity, reverse=True)],
            page=page,
            pages=pages,
            page_link=lambda n: link("/", _present(severity=wanted if floor else "", page=n)),
            counts=counts,
            figures=figures,
            changes=evaluated.results.changes[:CHANGES_SHOWN],
            changes_total=len(evaluated.results.changes),
            name_of=evaluated.results.name_of,
            unknowns=len(evaluated.results.unknowns),
            checked_at=evaluated.results.evaluated_at,
            check_seconds=evaluated.seconds,
        )

    def customers(self, params: Mapping[str, str]) -> Page:
        query = queries.ListQuery.from_params(dict(params))
        # Never waits for the checks: the list must answer at once (checks_cache.py).
        evaluated = self.checks.peek()
        with self._reading() as conn:
            found = queries.list_customers(conn, query)
            known_regions = queries.regions(conn)
        if found.rows == [] and query.page > found.pages:
            query = queries.ListQuery.from_params({**params, "page": str(found.pages)})
            with self._reading() as conn:
                found = queries.list_customers(conn, query)
        return self._render(
            "dashboard_customers.html",
            nav="customers",
            found=found,
            query=query,
            statuses=queries.STATUSES,
            regions=known_regions,
            checks_ready=evaluated is not None,
            worst=evaluated.worst if evaluated else {},
            findings_count={
                row.tenant_id: len(evaluated.findings_of(row.tenant_id)) for row in found.rows
            }
            if evaluated
            else {},
            sort_link=lambda key: link("/customers", _sorted(query, key)),
            page_link=lambda n: link("/customers", query.params(page=n)),
        )

    def customer(self, tenant_id: str, params: Mapping[str, str]) -> Page:
        users_page, devices_page = _page_number(params, "users"), _page_number(params, "devices")
        with self._reading() as conn:
            detail = queries.customer_detail(
                conn, tenant_id, users_page=users_page, devices_page=devices_page
            )
        if detail is None:
            return self.not_found(f"No customer with the tenant id {tenant_id} is in the store.")
        evaluated = self.checks.get()
        per = queries.OBJECTS_PER_PAGE
        return self._render(
            "dashboard_customer.html",
            nav="customers",
            c=detail.row,
            d=detail,
            findings=evaluated.findings_of(tenant_id),
            unknowns=[u for u in evaluated.results.unknowns if u.tenant_id == tenant_id],
            sku_names={lic.sku_id: lic.part_number or lic.sku_id for lic in detail.licences},
            users_page=users_page,
            users_pages=max(1, -(-detail.users_total // per)),
            devices_page=devices_page,
            devices_pages=max(1, -(-detail.devices_total // per)),
            object_page=lambda name, n: link(
                customer_link(tenant_id), _present(**{**params, name: n})
            ),
        )


def _present(**params: Any) -> dict[str, str]:
    """URL parameters without the empty ones and without page 1."""
    return {k: str(v) for k, v in params.items() if v and not (k == "page" and v == 1)}


def _sorted(query: queries.ListQuery, key: str) -> dict[str, str]:
    """The link of a column header: sort by it; the same column again turns the order."""
    if query.sort == key:
        return query.params(descending=not query.descending, page=1)
    return query.params(sort=key, descending=key in queries.DESCENDING_FIRST, page=1)
