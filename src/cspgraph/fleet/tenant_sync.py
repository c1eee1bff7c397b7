"""One customer tenant's sync: every resource pulled at once, page by page, into the store.

Each resource is a *stream*: pages follow one another from Graph into :meth:`Store.write_page`,
which commits a page together with the checkpoint after it. Store calls are blocking SQLAlchemy,
so they run on the :class:`StoreWriter`'s thread while the event loop fetches the next page; a
stream hands the writer its next page only once the previous one is committed, so at most two of
its pages are alive at a time and a failed write stops the stream at once.

Where a stream starts (:meth:`TenantSync._pull`):

* an interrupted pull of a delta resource (the checkpoint has a ``next_link``) continues there,
  and is then followed by one more delta round: the pages written before the interruption are
  as old as the interruption, and the round catches up on what changed since, so the store ends
  as an uninterrupted run would have left it;
* an interrupted pull of a resource without delta starts again from the beginning: nothing
  could catch up on its older pages;
* a resource with a delta link runs a delta round: changes and ``@removed`` only;
* otherwise a full pull: ``begin_full_pull`` (mark & sweep: the last page deletes what the pull
  did not see) and, for groups, a fresh start of the memberships.

A saved link that Graph refuses (an expired delta token: 410, or 400 ``syncStateNotFound`` /
``resyncRequired``; a skip token it no longer knows), or one that points to another host than
the Graph host of this run (a token is never sent there), restarts that resource as a full pull,
with a note on the customer.

Every page is written with the position its stream fetched it from (:class:`PullPosition`): if
another run moved the checkpoint meanwhile, the store refuses the page and the resource fails
(:class:`~cspgraph.fleet.store.CheckpointMovedError`) instead of sweeping rows it did not see.
Before any of this, :func:`sync_tenant` takes the customer's lease (:mod:`cspgraph.fleet.leases`):
a customer another run is syncing is left to it, or waited for.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from cspgraph.customer_ref import domain_of, is_guid
from cspgraph.discovery import Route
from cspgraph.fleet.access import AccessResolver, abandon, gdap_note
from cspgraph.fleet.access import record as record_access
from cspgraph.fleet.customers import CustomerRef
from cspgraph.fleet.leases import LeaseHeldError, TenantLeases
from cspgraph.fleet.outcomes import CustomerStatus, TenantResult, clip, describe_failure, short
from cspgraph.fleet.progress import SyncProgress
from cspgraph.fleet.resources import ADMIN_ROLE_TEMPLATES, ADMIN_ROLES, PULLS, Pull
from cspgraph.fleet.store import (
    MemberChanges,
    PullPosition,
    RoleMember,
    Store,
    member_changes_from_delta,
)
from cspgraph.fleet.store_writer import StoreWriter
from cspgraph.graph.client import GraphClient, Page
from cspgraph.http import token_claims
from cspgraph.http.errors import BadRequestError, CspGraphError, ErrorClass
from cspgraph.http.inflight import REQUEST_PRIORITY

# Graph codes of an expired delta token (wire-facts §2.2).
RESYNC_CODES = frozenset({"syncStateNotFound", "resyncRequired"})
# A stream this many pages deep is a long chain: it never waits for the writer's backlog.
LONG_CHAIN = 3
# Intune's answer in a tenant without an Intune licence (CIPP's field experience).
NOT_LICENSED_TEXT = "not applicable to target tenant"


# Run ids of full pulls: a random prefix per process and a counter. Unique like uuid4 (80 random
# bits per process), without a getrandom() system call for each of a fleet's thousands of pulls.
_RUN_PREFIX = uuid.uuid4().hex[:20]
_run_numbers = itertools.count()


def new_run_id() -> str:
    return f"{_RUN_PREFIX}{next(_run_numbers):012x}"


# (resource, its failure, whether other resources worked) -> (the failure as explained, why the
# resource is skipped or None), or None when the explanation has nothing to add.
Explain = Callable[[str, BaseException, bool], tuple[BaseException, str | None] | None]


class TenantAccess(Protocol):
    """Routing and tokens per customer; :class:`cspgraph.identity.TokenProvider` is one."""

    async def route(self, customer: str) -> Route: ...

    async def get_token(self, tenant: str, *, fresh: bool = False) -> str: ...


@dataclass(frozen=True, slots=True)
class SyncSettings:
    full: bool
    page_size: int
    resources: frozenset[str]
    wait: bool = False  # for a customer another run holds: wait for it (else leave it alone)


# -- one tenant ------------------------------------------------------------------------------------


class LinkRefused(Exception):
    """Graph no longer accepts a saved nextLink/deltaLink."""

    def __init__(self, error: CspGraphError) -> None:
        super().__init__(str(error))
        self.error = error


class TenantSync:
    """Pulls every wanted resource of one tenant; the outcome lands on ``result``."""

    def __init__(
        self,
        client: GraphClient,
        writer: StoreWriter,
        progress: SyncProgress,
        settings: SyncSettings,
        tenant_id: str,
        result: TenantResult,
        explain: Explain | None = None,
    ) -> None:
        self.explain = explain  # a failure read with how the customer is reached (GDAP roles)
        self.client = client
        self.writer = writer
        self.store = writer.store
        self.progress = progress
        self.settings = settings
        self.tenant = tenant_id
        self.result = result

    async def run(self) -> None:
        """Pull everything at once; record how it went (raises only when cancelled)."""
        self.judge(*await self.pull_all())

    async def pull_all(self) -> tuple[dict[str, BaseException], int]:
        """Pull everything at once: (each failed resource's failure, how many succeeded); raises
        only when cancelled. :meth:`judge` turns them into the outcome."""
        jobs: dict[str, Coroutine[Any, Any, None]] = {
            p.resource: self._pull(p) for p in PULLS if p.resource in self.settings.resources
        }
        if ADMIN_ROLES in self.settings.resources:
            jobs[ADMIN_ROLES] = self._admins()
        outcomes = await asyncio.gather(*jobs.values(), return_exceptions=True)
        failures: dict[str, BaseException] = {}
        for name, outcome in zip(jobs, outcomes, strict=True):
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            if isinstance(outcome, BaseException):
                failures[name] = outcome
        return failures, len(jobs) - len(failures)

    # -- the outcome -------------------------------------------------------------------------------
    def judge(self, failures: dict[str, BaseException], succeeded: int) -> None:
        """The customer's outcome from its resources' failures (read through ``explain``)."""
        result = self.result
        real: dict[str, BaseException] = {}
        for name, exc in failures.items():
            explained = self.explain(name, exc, bool(succeeded)) if self.explain else None
            if explained is not None:
                exc, why = explained
            else:
                why = _unavailable(name, exc) if succeeded else None
            if why is None:
                real[name] = exc
            else:
                result.modes[name] = f"skipped: {why}"
                result.notes.append(f"{name} skipped: {why}")
        if not real:
            result.status = CustomerStatus.OK
            return
        # What a person must act on first, then "wait for it", then plain errors.
        name, exc = min(real.items(), key=lambda item: _severity(item[1]))
        result.status, result.error_class, result.reason = describe_failure(exc, name)
        result.notes.extend(f"{other}: {short(e)}" for other, e in real.items() if other != name)

    # -- one resource ------------------------------------------------------------------------------
    async def _pull(self, pull: Pull) -> None:
        # One trip to the writer thread: read the checkpoint and, for a full pull, begin it.
        start, mode = await self.writer.run_first(self._open, pull, new_run_id())
        self.result.modes[pull.resource] = mode
        if start.link is not None:
            why = self._unusable(start.link)
            if why is None:
                try:
                    delta_link = await self._stream(pull, start)
                    if mode == "resumed" and delta_link is not None:
                        # What the pages before the interruption hold is as old as the
                        # interruption: one more round brings it up to date.
                        await self._stream(pull, PullPosition(delta_link, None))
                    return
                except LinkRefused as refused:
                    why = f"saved link refused ({short(refused.error)})"
            self.result.notes.append(f"{pull.resource}: {why}; pulled in full")
            self.result.modes[pull.resource] = "full"
            start = await self.writer.run(self._begin_full_pull, pull, new_run_id())
        try:
            await self._stream(pull, start)
        except LinkRefused as refused:
            raise refused.error from None  # refused within a pull we just started: give up

    def _unusable(self, link: str) -> str | None:
        """Why a saved link cannot be followed, or None. A link to another host than the one
        this run talks to (an emulator restarted on a new port, a changed configuration) would
        take the customer's token there: it is never followed, and the resource starts over."""
        if self.client.sends_to(link):
            return None
        parts = urlsplit(link)
        return (
            f"the saved link points to {parts.scheme}://{parts.netloc}, not to the Graph host "
            f"this run talks to ({self.client.base_url}), and no token was sent there"
        )

    def _open(self, pull: Pull, run_id: str) -> tuple[PullPosition, str]:
        """(where to start, mode) of a resource; a full pull is begun here. Runs on the writer
        thread."""
        checkpoint = self.store.checkpoint(self.tenant, pull.resource)
        full = self.settings.full
        if checkpoint is not None and checkpoint.next_link and (checkpoint.full_pull or not full):
            # --full continues a full pull under way, but not a delta round. Only a delta
            # resource's pull is worth continuing: a round after it catches up on its older
            # pages; without delta they would stay as old as the interruption.
            run = checkpoint.run_id if checkpoint.full_pull else None
            if pull.delta and (run is not None or not checkpoint.full_pull):
                return PullPosition(checkpoint.next_link, run), "resumed"
        elif checkpoint is not None and checkpoint.delta_link and pull.delta and not full:
            return PullPosition(checkpoint.delta_link, None), "delta"
        return self._begin_full_pull(pull, run_id), "full"

    def _begin_full_pull(self, pull: Pull, run_id: str) -> PullPosition:
        """Runs on the writer thread. The old links are dropped first: a crash from here on
        starts a full pull again; and the run id recorded here is the one every page of the pull
        must find (a page of another run that began meanwhile is refused)."""
        self.store.begin_full_pull(self.tenant, pull.resource, run_id)
        if pull.resource == "groups":
            self.store.clear_members(self.tenant)
        return PullPosition(None, run_id)

    async def _stream(self, pull: Pull, start: PullPosition) -> str | None:
        """Follow one pull page by page, from a saved link or from its start; returns the
        deltaLink it ended with (None for a resource without delta)."""
        if start.link is None:
            params, headers = pull.first_request(self.settings.page_size)
            pages = self.client.pages(self.tenant, pull.path, params=params, headers=headers)
        else:
            headers = pull.link_headers(self.settings.page_size)
            pages = self.client.pages(self.tenant, start.link, headers=headers)
        position, delta_link = start, None
        pending: asyncio.Future[None] | None = None
        stream = _refusals_as_link_refused(pages, following_link=start.link is not None)
        # A stream's later pages go first when requests queue for the in-flight window: the
        # long chains set the run's end (cspgraph.fleet.scheduling). Each stream is its own task,
        # so this is its own.
        depth = 0
        async for page in stream:
            depth += 1
            REQUEST_PRIORITY.set(depth)
            items = page.items
            changes = member_changes_from_delta(items) if pull.resource == "groups" else None
            if pending is not None:
                await pending  # a failed write stops the stream before the next page goes in
            delta_link = page.delta_link if pull.delta else None
            pending = self.writer.submit(
                self.store.write_page,
                self.tenant,
                pull.resource,
                items,
                (),
                next_link=page.next_link,
                delta_link=delta_link,
                full_pull=start.run_id is not None,
                member_changes=changes,
                position=position,
            )
            backlog = self.writer.backlog
            weight = len(items) + _links(changes)
            backlog.add(weight)
            pending.add_done_callback(
                functools.partial(self._written, pull.resource, len(items), weight)
            )
            self._count(pull.resource, len(items), sum(1 for o in items if "@removed" in o))
            position = PullPosition(page.next_link, start.run_id)
            if backlog.full and depth < LONG_CHAIN:
                # The writer is behind: fetch no further page until it catches up, so pages
                # do not pile up in memory faster than they are written. A long chain goes on
                # (its pages are written first, and it holds two at most): it sets the run's
                # end, the bulk of short pulls does not.
                await backlog.room()
        if pending is not None:
            await pending
        return delta_link

    def _written(self, resource: str, n: int, weight: int, future: asyncio.Future[None]) -> None:
        self.writer.backlog.done(weight)
        # Also marks a failed write's exception as retrieved (the stream raises it anyway).
        if not future.cancelled() and future.exception() is None:
            self.progress.page_written(self.tenant, resource, n)

    def _count(self, resource: str, n: int, removed: int, pages: int = 1) -> None:
        self.result.pages[resource] = self.result.pages.get(resource, 0) + pages
        self.result.received[resource] = self.result.received.get(resource, 0) + n
        if removed:
            self.result.removed[resource] = self.result.removed.get(resource, 0) + removed

    # -- admins ------------------------------------------------------------------------------------
    async def _admins(self) -> None:
        """Holders of the privileged roles, with their names. directoryRoles takes no query
        options and lists activated roles only; a role never activated has no members, which is
        recorded too (all roles in one write)."""
        self.result.modes[ADMIN_ROLES] = "full"
        activated: dict[str, dict[str, Any]] = {}
        async for page in self.client.pages(self.tenant, "/directoryRoles"):
            self._count(ADMIN_ROLES, 0, 0)
            for item in page.items:
                template = str(item.get("roleTemplateId") or "").lower()
                if template in ADMIN_ROLE_TEMPLATES:
                    activated[template] = item
        roles: dict[str, tuple[str, list[RoleMember]]] = {}
        for template, default_name in ADMIN_ROLE_TEMPLATES.items():
            role = activated.get(template)
            members: list[RoleMember] = []
            name = default_name
            if role is not None:
                name = str(role.get("displayName") or default_name)
                path = f"/directoryRoles/{role['id']}/members"
                async for page in self.client.pages(self.tenant, path):
                    members.extend(role_member(m) for m in page.items if "id" in m)
                    self._count(ADMIN_ROLES, len(page.items), 0)
            roles[template] = (name, members)
        await self.writer.run(self.store.replace_roles, self.tenant, roles)
        self.progress.page_written(self.tenant, ADMIN_ROLES, sum(len(m) for _, m in roles.values()))


def _links(changes: dict[str, MemberChanges] | None) -> int:
    """Membership links a groups page carries (they cost memory as objects do)."""
    if not changes:
        return 0
    return sum(len(c.added) + len(c.removed) for c in changes.values())


def role_member(item: dict[str, Any]) -> RoleMember:
    """A role's member as its member list describes it (users by UPN)."""
    kind = str(item.get("@odata.type") or "").rpartition(".")[2] or None
    name = item.get("userPrincipalName") or item.get("displayName")
    return RoleMember(str(item["id"]), kind, str(name) if name else None)


async def _refusals_as_link_refused(
    pages: AsyncIterator[Page], *, following_link: bool
) -> AsyncIterator[Page]:
    """The pages, with Graph's refusal of a saved link raised as :class:`LinkRefused`.

    An expired-token code means "start over" wherever it comes; any other 400/404/410 does only
    for the first request of a saved link (later in a round it is a real error)."""
    first = True
    while True:
        try:
            page = await anext(pages)
        except StopAsyncIteration:
            return
        except BadRequestError as exc:
            if _is_resync(exc) or (following_link and first and exc.status in (400, 404, 410)):
                raise LinkRefused(exc) from exc
            raise
        first = False
        yield page


def _is_resync(exc: CspGraphError) -> bool:
    return exc.status == 410 or exc.code in RESYNC_CODES


def _unavailable(name: str, exc: BaseException) -> str | None:
    """Why a resource is simply not available in a tenant whose other pulls worked, or None
    when its failure is the tenant's failure."""
    if not isinstance(exc, CspGraphError):
        return None
    if name == "managedDevices" and NOT_LICENSED_TEXT in str(exc).lower():
        return "the tenant has no Intune licence"
    if name == ADMIN_ROLES and exc.status == 403:
        # The same token just read the directory, so this is not a young relationship: the
        # partner-managed app lacks the permission directoryRoles needs.
        return "the app lacks RoleManagement.Read.Directory, so admins are unknown"
    if name == "subscribedSkus" and exc.status == 403:
        return "the app lacks Organization.Read.All, so licences are unknown"
    return None


def _severity(exc: BaseException) -> int:
    if isinstance(exc, CspGraphError):
        if exc.error_class is ErrorClass.NEEDS_PERSON:
            return 0
        if exc.error_class is ErrorClass.PROPAGATING:
            return 1
    return 2


# -- routing and recording -------------------------------------------------------------------------


async def sync_tenant(
    client: GraphClient,
    access: TenantAccess,
    writer: StoreWriter,
    progress: SyncProgress,
    settings: SyncSettings,
    customer: CustomerRef,
    leases: TenantLeases | None = None,
    resolver: AccessResolver | None = None,
    *,
    on_pulling: Callable[[], None] | None = None,
    on_pulled: Callable[[], None] | None = None,
) -> TenantResult:
    """Place, lease, register and pull one customer. Its failure ends up in the result (and on
    the customer in the store), never raised: one customer must not stop the fleet.

    ``leases``: the customer's lease is taken from these before anything of it is written, and
    given back at the end; a customer another run holds is left alone (``running``, with the
    reason) or, with ``settings.wait``, waited for. None: no lease (the caller holds it).
    ``on_pulling``: called once the customer is placed, leased and has a token, as its pulls
    start (the fleet's admission counts it as starting until then). ``on_pulled``: called when
    its pulls have ended and it waits for nothing but Partner Center's answer about DAP (the
    fleet's admission then starts another customer: see below). ``resolver``: finds out and
    records how the customer is reached (its access mode); None: app-only tokens only, nothing
    recorded about access."""
    result = TenantResult(customer=customer, tenant_id=customer.tenant_id, region=customer.region)
    progress.tenant_started(customer)
    clock = time.monotonic()
    store = writer.store
    leased: str | None = None
    try:
        try:
            route = await access.route(customer.tenant_id or customer.reference)
        except CspGraphError as exc:
            await _unplaceable(access, writer, customer, result, exc)
            return result
        result.tenant_id, result.region = route.tenant_id, route.region
        # One token first: a tenant without access fails once, not once per resource. Asked for
        # now and awaited after the store's trips (lease, registration): at Entra's latency
        # (~0.3 s) the two overlap instead of adding up for every customer.
        token = asyncio.ensure_future(access.get_token(route.tenant_id))
        registered = False
        try:
            if leases is not None:
                try:
                    await _take_lease(writer, leases, route.tenant_id, wait=settings.wait)
                except LeaseHeldError as held:
                    result.status, result.reason = CustomerStatus.RUNNING, _left_alone(held)
                    result.held_by = held.lease.holder
                    return result
                leased = route.tenant_id
            await writer.run_first(
                _register,
                store,
                route.tenant_id,
                domain=customer.domain or domain_of(customer.reference),
                display_name=customer.display_name,
                region=route.region,
            )
            registered = True
        finally:
            if not registered:  # left alone, or a failure: nobody will use the token
                abandon(token)
        if resolver is not None:
            # How the customer is reached (DAP, GDAP app, ...), from the answer to the token
            # asked for above (never asked twice) and what the partner knows of the customer.
            answer: str | CspGraphError
            try:
                answer = await token
            except CspGraphError as exc:
                answer = exc
            name = customer.domain or domain_of(customer.reference) or route.tenant_id
            settled = asyncio.Event()  # set once the pulls have ended (a DAP refresh gives up)
            resolving = asyncio.ensure_future(
                resolver.resolve(
                    route.tenant_id, route.region, name, answer=answer, settled=settled
                )
            )
            try:
                pulled: tuple[dict[str, BaseException], int] | None = None
                pulling = TenantSync(client, writer, progress, settings, route.tenant_id, result)
                if isinstance(answer, str) and token_claims.roles(answer):
                    # An app-only token with application permissions reaches the customer
                    # whatever Partner Center says of DAP (which only names the mode): pull
                    # while the resolver asks. Partner Center answers ~8 such questions a
                    # second (500 a minute), so waiting for it held a first run's customers
                    # back: the largest of 200 started 4.3 s after its token (bench, 2026-12-07).
                    if on_pulling is not None:
                        on_pulling()
                    pulled = await pulling.pull_all()
                    settled.set()
                    if on_pulled is not None and not resolving.done():
                        # Only Partner Center's answer is missing: at 500 questions a minute
                        # per partner tenant a first run's customers queue for it, and holding
                        # their admission held back every later customer's pulls with them
                        # (5,000 customers: Graph's last answer at 301 s, its chain bound 122 s;
                        # bench, 2026-12-07). Parked, it costs a task and a lease.
                        on_pulled()
                found, failure = await resolving
            finally:
                if not resolving.done():
                    abandon(resolving)
            result.access = found
            if (note := gdap_note(found)) is not None:
                result.notes.append(note)
            pulling.explain = found.explain
            if failure is not None:
                result.status, result.error_class, result.reason = describe_failure(failure)
            elif pulled is not None:
                pulling.judge(*pulled)
            else:
                if on_pulling is not None:
                    on_pulling()
                await pulling.run()
            await writer.run(record_access, store, found)
        else:
            try:
                await token
            except CspGraphError as exc:
                result.status, result.error_class, result.reason = describe_failure(exc)
            else:
                if on_pulling is not None:
                    on_pulling()
                await TenantSync(client, writer, progress, settings, route.tenant_id, result).run()
        if leases is not None and leases.lost(route.tenant_id):
            _lease_lost(result)
            return result  # the run that holds the customer now records its status
        await _record(writer, result)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug or a broken store in one customer must not stop the fleet
        result.status, result.error_class, result.reason = describe_failure(exc)
        if result.tenant_id is not None and not (leases and leases.lost(result.tenant_id)):
            try:
                await _record(writer, result)
            except Exception as again:
                result.notes.append(f"could not record the status: {short(again)}")
    finally:
        result.seconds = time.monotonic() - clock
    if leased is not None and leases is not None:
        try:
            await writer.run(leases.release, leased)
        except Exception as exc:  # it expires on its own; the run's end gives it back too
            result.notes.append(f"could not give the customer's lease back: {short(exc)}")
    return result


async def _take_lease(
    writer: StoreWriter, leases: TenantLeases, tenant_id: str, *, wait: bool
) -> None:
    """Take the tenant's lease; while another run holds it, raise, or with ``wait`` ask again
    every ``leases.poll`` seconds until that run gives it back or its lease expires."""
    while True:
        try:
            await writer.run_first(leases.acquire, tenant_id)
            return
        except LeaseHeldError:
            if not wait:
                raise
        await asyncio.sleep(leases.poll)


def _left_alone(held: LeaseHeldError) -> str:
    return clip(
        f"left alone: another sync run is syncing this customer ({held.lease.holder}); run "
        "again when it has finished, or with --wait to wait for it"
    )


def _lease_lost(result: TenantResult) -> None:
    """The run's lease on the customer expired while it worked (its renewals failed for longer
    than the lease lasts) and another run took it: what this run wrote is not overwritten
    (pages are written only at their position), but it cannot vouch for the customer."""
    result.status = CustomerStatus.FAILED
    result.error_class = ErrorClass.TRANSIENT.value
    result.reason = clip(
        "this run's lease on the customer expired while it synced and another run took it over; "
        "run again"
    )


def _register(
    store: Store,
    tenant_id: str,
    *,
    domain: str | None,
    display_name: str | None,
    region: str | None,
) -> None:
    """Record the customer and mark it running (one trip to the writer thread)."""
    store.upsert_customer(tenant_id, domain=domain, display_name=display_name, region=region)
    store.set_status(tenant_id, CustomerStatus.RUNNING)


async def _unplaceable(
    access: TenantAccess,
    writer: StoreWriter,
    customer: CustomerRef,
    result: TenantResult,
    exc: CspGraphError,
) -> None:
    """A customer that cannot be routed (no partner identity for its region, unknown tenant):
    recorded on the customer when its tenant GUID is known."""
    result.status, result.error_class, result.reason = describe_failure(exc)
    tenant = exc.tenant if exc.tenant and is_guid(exc.tenant) else customer.tenant_id
    result.tenant_id = tenant
    result.region = customer.region or _known_region(access, customer.reference)
    if tenant is None:
        return
    await writer.run(
        writer.store.upsert_customer,
        tenant,
        domain=customer.domain or domain_of(customer.reference),
        display_name=customer.display_name,
        region=result.region,
    )
    await _record(writer, result)


def _known_region(access: TenantAccess, reference: str) -> str | None:
    """The region discovery found for a customer it could place but not route."""
    discovery = getattr(access, "discovery", None)
    try:
        info = discovery.cached(reference) if discovery is not None else None
    except CspGraphError:  # not even a customer reference
        return None
    region = getattr(info, "region", None)
    return str(region) if region else None


async def _record(writer: StoreWriter, result: TenantResult) -> None:
    assert result.tenant_id is not None
    reason = result.reason
    if result.status is CustomerStatus.OK and result.notes:
        reason = clip("; ".join(result.notes))  # what was skipped, for the report
    await writer.run(
        writer.store.set_status,
        result.tenant_id,
        result.status,
        reason=reason,
        error_class=result.error_class,
    )
