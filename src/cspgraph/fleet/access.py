"""How cspgraph reaches each customer of a mixed DAP/GDAP fleet, found out and recorded per sync.

A partner reaches a customer in one of these ways (:class:`AccessMode`):

* ``dap``: the customer still has delegated admin privileges, so the partner-managed app is
  pre-consented there (its service principal in the partner's ``AdminAgents``);
* ``gdap-app``: no DAP, but the app was consented in the customer (Partner Center
  ``applicationconsents`` plus app role assignments, or an administrator's ``/adminconsent``):
  app-only tokens work;
* ``gdap-delegated``: no app-only access, but a partner service account signs in at the
  customer's authority and acts through the roles its groups hold in a GDAP relationship (the
  Secure Application Model, :mod:`cspgraph.fleet.service_account`);
* ``none``: none of these, with why (the GDAP-aware reason of the one error table,
  :func:`cspgraph.http.errors.classify_access_failure`).

What decides it: whether an app-only token can be had; Partner Center's ``allowDelegatedAccess``
(``GET /v1/customers/{id}``, asked again at most once a day, or whenever the app-only token is
refused); and the partner's GDAP relationships, read once per sync per region
(``/tenantRelationships/delegatedAdminRelationships``, app-only: the app needs
``DelegatedAdminRelationship.Read.All`` and the "Partner Customer Delegated Administration"
service principal in the partner tenant). An empty list is checked against ``AdminAgents``:
Graph answers a caller outside it with 200 and nothing, which is said as such, never as "0
relationships". Whatever could not be read is unknown, and shown so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select

from cspgraph.fleet.history_schema import customer_access
from cspgraph.fleet.outcomes import clip, short
from cspgraph.fleet.store import Store
from cspgraph.gdap.roles import name_of
from cspgraph.graph.client import GraphClient
from cspgraph.http import token_claims
from cspgraph.http.errors import (
    APP_NOT_IN_TENANT_CODES,
    GDAP_ENDED,
    GDAP_IN_EFFECT,
    GDAP_ON_ITS_WAY,
    GDAP_WAITING,
    AccessFacts,
    CspGraphError,
    NeedsPersonError,
    RelationshipFact,
    aadsts_code,
    classify_access_failure,
    not_in_admin_agents_error,
    role_missing_error,
)
from cspgraph.partner.center import NotYourCustomerError, PartnerCenterClient

if TYPE_CHECKING:
    from cspgraph.discovery import Route
    from cspgraph.http.sender import TokenSource
    from cspgraph.identity import TokenProvider

log = logging.getLogger(__name__)

RELATIONSHIPS_PATH = "/tenantRelationships/delegatedAdminRelationships"
# The least-privileged built-in role for what a sync reads, for a partner user under GDAP (Entra's
# built-in roles reference: Directory Readers reads the directory, directory roles and licences;
# Intune's managed devices need Intune Administrator, or Global Reader).
ROLE_FOR_RESOURCE = {
    "users": "Directory Readers",
    "groups": "Directory Readers",
    "devices": "Directory Readers",
    "organization": "Directory Readers",
    "subscribedSkus": "Directory Readers",
    "directoryRoles": "Directory Readers",
    "managedDevices": "Intune Administrator",
}
# What a customer's sync can do without (skipped with why); the rest is the customer's inventory.
OPTIONAL_RESOURCES = frozenset({"managedDevices", "subscribedSkus", "directoryRoles"})
# Partner Center's word on DAP is asked again after this long (DAP is only ever taken away, and
# a refused token asks at once).
DAP_RECHECK = timedelta(days=1)
# A stored answer between DAP_RECHECK and this old is refreshed only while the customer is busy
# anyway (its pulls); older, the sync waits for Partner Center as it does for a first answer.
# Partner Center answers 500 such questions a minute per partner tenant: re-asking 5,000
# customers every day would hold every daily run for ten minutes after its pulls (a first run
# at 5,000 customers: pulls done in ~130 s, Partner Center's answers at ~300 s; bench,
# 2026-12-07), for a flag that only ever goes from true to false.
DAP_MAX_AGE = timedelta(days=7)
# Relationships of Microsoft-led transition tools (read-only, Microsoft's own): left out on request.
MLT_PREFIX = "MLT_"
T = TypeVar("T")


class AccessMode(StrEnum):
    DAP = "dap"
    GDAP_APP = "gdap-app"
    GDAP_DELEGATED = "gdap-delegated"
    NONE = "none"


# -- the partner's GDAP relationships -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GdapRelationship:
    """A delegatedAdminRelationship as Graph lists it (the fields cspgraph uses)."""

    id: str
    display_name: str
    status: str
    customer_id: str | None
    customer_name: str | None
    end: datetime | None
    roles: tuple[str, ...]  # role template ids
    region: str | None = None  # the configured region whose partner tenant has it
    auto_extend: bool | None = None  # autoExtendDuration P180D; None: not said
    created: datetime | None = None  # createdDateTime (how long an approval has waited)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GdapRelationship:
        customer = data.get("customer") or {}
        details = data.get("accessDetails") or {}
        return cls(
            id=str(data.get("id") or ""),
            display_name=str(data.get("displayName") or ""),
            status=str(data.get("status") or "unknown"),
            customer_id=str(customer["tenantId"]).lower() if customer.get("tenantId") else None,
            customer_name=customer.get("displayName"),
            end=parse_time(data.get("endDateTime")),
            roles=tuple(
                str(r.get("roleDefinitionId")).lower()
                for r in details.get("unifiedRoles") or []
                if isinstance(r, dict) and r.get("roleDefinitionId")
            ),
            auto_extend=_auto_extends(data.get("autoExtendDuration")),
            created=parse_time(data.get("createdDateTime")),
        )

    @property
    def is_mlt(self) -> bool:
        return self.display_name.startswith(MLT_PREFIX)

    @property
    def in_effect(self) -> bool:
        return self.status in GDAP_IN_EFFECT

    def fact(self) -> RelationshipFact:
        return RelationshipFact(
            name=self.display_name,
            status=self.status,
            end=self.end.isoformat() if self.end else None,
        )


def _auto_extends(value: Any) -> bool | None:
    """Graph's autoExtendDuration: P180D extends, PT0S and P0D do not (the only values)."""
    if value in ("PT0S", "P0D"):
        return False
    return True if isinstance(value, str) and value.startswith("P") else None


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def nearest(relationships: Iterable[GdapRelationship]) -> GdapRelationship | None:
    """The relationship that matters most for a customer: the one in effect that ends first;
    else one on its way (approved, activating); else one waiting for approval; else the one that
    ended last."""
    rels = list(relationships)
    far = datetime.max.replace(tzinfo=UTC)
    never = datetime.min.replace(tzinfo=UTC)
    live = [r for r in rels if r.in_effect]
    if live:
        return min(live, key=lambda r: r.end or far)
    for statuses in (GDAP_ON_ITS_WAY, GDAP_WAITING, GDAP_ENDED):
        found = [r for r in rels if r.status in statuses]
        if found:
            return max(found, key=lambda r: r.end or never)
    return max(rels, key=lambda r: r.end or never, default=None)


@dataclass
class GdapRelationships:
    """The partner's GDAP relationships per customer, as one sync read them (per region)."""

    by_customer: dict[str, list[GdapRelationship]] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)  # region -> why they are unknown
    read: set[str] = field(default_factory=set)  # regions whose relationships were read

    def of(self, tenant_id: str, region: str | None) -> tuple[GdapRelationship, ...] | None:
        """This customer's relationships; None when its region's could not be read."""
        if region is None or region not in self.read:
            return None
        return tuple(self.by_customer.get(tenant_id.lower(), ()))

    def active_customers(self, *, exclude_mlt: bool = False) -> dict[str, GdapRelationship]:
        """Customers with at least one relationship in effect, with the one that ends first."""
        out: dict[str, GdapRelationship] = {}
        for tenant, rels in self.by_customer.items():
            live = [r for r in rels if r.in_effect and not (exclude_mlt and r.is_mlt)]
            if live:
                best = nearest(live)
                assert best is not None
                out[tenant] = best
        return out


async def read_gdap_relationships(
    graph: GraphClient, provider: TokenProvider, regions: Iterable[str] | None = None
) -> GdapRelationships:
    """Every configured region's GDAP relationships, app-only in its partner tenant; a region
    whose relationships cannot be read is recorded with why (never as "none")."""
    found = GdapRelationships()
    identities = provider.config.identities
    wanted = [r for r in identities if regions is None or r in set(regions)]

    await asyncio.gather(*(read_region(graph, provider, region, found) for region in wanted))
    return found


async def read_region(
    graph: GraphClient, provider: TokenProvider, region: str, into: GdapRelationships
) -> None:
    """One region's relationships into ``into`` (or why they are unknown)."""
    identity = provider.config.identities[region]
    partner = identity.partner_tenant
    try:
        rels = await list_relationships(graph, partner)
        if not rels:
            await check_admin_agents(graph, partner, identity.client_id)
    except CspGraphError as exc:
        why = exc.reason if isinstance(exc, NeedsPersonError) else short(exc)
        if exc.status == 403:
            why = (
                "the app may not read GDAP relationships (it needs the application "
                "permission DelegatedAdminRelationship.Read.All, granted in the partner tenant "
                f"by `cspgraph setup --region {region}`, and the Partner Customer Delegated "
                f"Administration service principal in {partner}): {exc}"
            )
        into.unknown[region] = clip(why)
        # Info, not a warning: the run's summary carries it (gdap_unknown), and the sync
        # command says it once.
        log.info("GDAP relationships of region %s unknown: %s", region, why)
        return
    into.read.add(region)
    for rel in rels:
        if rel.customer_id:
            placed = dataclasses.replace(rel, region=region)
            into.by_customer.setdefault(rel.customer_id, []).append(placed)


async def list_relationships(graph: GraphClient, partner_tenant: str) -> list[GdapRelationship]:
    rels: list[GdapRelationship] = []
    async for page in graph.pages(partner_tenant, RELATIONSHIPS_PATH, params={"$top": "300"}):
        rels.extend(GdapRelationship.from_json(item) for item in page.items)
    return rels


async def check_admin_agents(graph: GraphClient, partner_tenant: str, client_id: str) -> None:
    """Raise when the app's service principal is not in the partner's ``AdminAgents`` (whose
    members alone see relationships): an empty list then means nothing."""
    found = await graph.get(
        partner_tenant,
        "/groups",
        params={"$filter": "displayName eq 'AdminAgents'", "$select": "id"},
    )
    groups = found.get("value") if isinstance(found, dict) else None
    if not groups:
        raise not_in_admin_agents_error(f"the app {client_id}", tenant=partner_tenant)
    group_id = groups[0]["id"]
    async for page in graph.pages(
        partner_tenant, f"/groups/{group_id}/members", params={"$select": "id,appId"}
    ):
        if any(str(m.get("appId") or "").lower() == client_id.lower() for m in page.items):
            return
    raise not_in_admin_agents_error(f"the app {client_id}", tenant=partner_tenant)


# -- one customer's access ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerAccess:
    """How one customer was reached in one sync (what :func:`record` stores)."""

    tenant_id: str
    mode: AccessMode | None  # None: reached, but whether through DAP is unknown
    reason: str | None
    dap: bool | None
    dap_checked_at: datetime | None
    relationships: tuple[GdapRelationship, ...] | None
    # gdap-delegated: which partner groups hold which roles in the relationship in effect.
    holders: RelationshipFact | None = None

    @property
    def nearest(self) -> GdapRelationship | None:
        return nearest(self.relationships or ())

    def explain(
        self, resource: str, exc: BaseException, others_worked: bool
    ) -> tuple[BaseException, str | None] | None:
        """A resource's failure in a gdap-delegated customer, read as what it is: Graph's 403
        means the service account's groups hold no role that allows it here. Returns (the
        failure, why the resource is skipped or None), or None for "not a role matter"."""
        if self.mode is not AccessMode.GDAP_DELEGATED or not isinstance(exc, CspGraphError):
            return None
        if exc.status != 403:
            return None
        role = ROLE_FOR_RESOURCE.get(resource, "Directory Readers")
        explained = role_missing_error(exc, f"reading {resource}", role, self.holders)
        if resource in OPTIONAL_RESOURCES and others_worked:
            return explained, f"needs the role {role}, which the service account does not hold here"
        return explained, None

    def as_dict(self) -> dict[str, Any]:
        best = self.nearest
        return {
            "mode": self.mode.value if self.mode else None,
            "reason": self.reason,
            "dap": self.dap,
            "gdap": None
            if self.relationships is None
            else {
                "relationships": len(self.relationships),
                "nearest": None
                if best is None
                else {
                    "name": best.display_name,
                    "status": best.status,
                    "end": best.end.isoformat() if best.end else None,
                },
            },
        }


def gdap_note(access: CustomerAccess) -> str | None:
    """What a customer's report line should say about its GDAP relationship when the sync itself
    went well: one that is expiring, or one that ended while the app still reaches it."""
    best = access.nearest
    if best is None or best.status not in ("expiring", *GDAP_ENDED):
        return None
    end = best.end.date().isoformat() if best.end else "an unknown date"
    if best.status == "expiring":
        return f"GDAP relationship {best.display_name} is expiring (ends {end})"
    if access.mode in (AccessMode.DAP, AccessMode.GDAP_APP):
        return (
            f"GDAP relationship {best.display_name} is {best.status} (ended {end}): the app "
            "still reaches the customer, but partner users hold no role there"
        )
    return None


@dataclass(frozen=True, slots=True)
class StoredAccess:
    mode: str | None
    dap: bool | None
    dap_checked_at: datetime | None


def facts_for(
    customer: str,
    dap: bool | None,
    relationships: Sequence[GdapRelationship] | None,
    *,
    reached_before: bool,
    delegated: bool = False,
    reseller: bool | None = None,
) -> AccessFacts:
    return AccessFacts(
        customer=customer,
        dap=dap,
        relationships=None if relationships is None else tuple(r.fact() for r in relationships),
        reached_before=reached_before,
        delegated=delegated,
        reseller=reseller,
    )


def stored_access(store: Store, tenant_id: str) -> StoredAccess | None:
    c = customer_access.c
    with store.reading() as conn:
        row = conn.execute(
            select(c.mode, c.dap, c.dap_checked_at).where(c.tenant_id == tenant_id)
        ).first()
    return None if row is None else StoredAccess(row.mode, row.dap, row.dap_checked_at)


@dataclass(frozen=True, slots=True)
class RecordedAccess:
    """How a customer was reached, read back from the store (``customer_access``): a Celery
    run's outcome, whose :class:`CustomerAccess` stayed with the worker that found it out. Says
    what :meth:`CustomerAccess.as_dict` says."""

    mode: AccessMode | None
    reason: str | None
    dap: bool | None
    relationships: int | None  # None: the partner's relationships were not read
    nearest_name: str | None
    nearest_status: str | None
    nearest_end: datetime | None

    def as_dict(self) -> dict[str, Any]:
        nearest = None
        if self.nearest_name is not None or self.nearest_status is not None:
            end = self.nearest_end.isoformat() if self.nearest_end else None
            nearest = {"name": self.nearest_name, "status": self.nearest_status, "end": end}
        return {
            "mode": self.mode.value if self.mode else None,
            "reason": self.reason,
            "dap": self.dap,
            "gdap": None
            if self.relationships is None
            else {"relationships": self.relationships, "nearest": nearest},
        }


def recorded_access(
    store: Store, tenant_ids: Iterable[str], since: datetime
) -> dict[str, RecordedAccess]:
    """Each of ``tenant_ids``' access as recorded at or after ``since`` (older records are
    another run's finding, not this one's: left out, so they read as unknown)."""
    wanted = set(tenant_ids)
    c = customer_access.c
    found: dict[str, RecordedAccess] = {}
    with store.reading() as conn:
        rows = conn.execute(select(customer_access).where(c.checked_at >= since))
        for row in rows:
            if row.tenant_id not in wanted:
                continue
            found[row.tenant_id] = RecordedAccess(
                mode=AccessMode(row.mode) if row.mode else None,
                reason=row.reason,
                dap=row.dap,
                relationships=row.gdap_relationships if row.gdap_known else None,
                nearest_name=row.gdap_relationship,
                nearest_status=row.gdap_status,
                nearest_end=row.gdap_end,
            )
    return found


def recorded_mode(store: Store, tenant_id: str) -> AccessMode | None:
    """How the last sync reached ``tenant_id`` (None: never recorded, or not a mode)."""
    found = stored_access(store, tenant_id.lower()) or stored_access(store, tenant_id)
    if found is None or found.mode is None:
        return None
    try:
        return AccessMode(found.mode)
    except ValueError:
        return None


async def app_reaches(provider: TokenProvider, tenant_id: str) -> bool:
    """Whether the app's own token can do anything in ``tenant_id``: refused as "not in this
    tenant", or issued without application permissions (a consent of delegated scopes only),
    it cannot. Other failures say nothing about the mode (True: the app's call reports them)."""
    try:
        token = await provider.get_token(tenant_id)
    except CspGraphError as exc:
        code = aadsts_code(exc.message) or aadsts_code(exc.code)
        return code not in APP_NOT_IN_TENANT_CODES
    return bool(token_claims.roles(token))


def record(store: Store, access: CustomerAccess) -> None:
    """Store how the customer was reached (one row per customer, replaced)."""
    best = access.nearest
    now = datetime.now(UTC)
    values = (
        access.tenant_id,
        access.mode.value if access.mode else None,
        access.reason,
        access.dap,
        store.driver_time(access.dap_checked_at),
        access.relationships is not None,
        best.display_name if best else None,
        best.status if best else None,
        store.driver_time(best.end if best else None),
        None if access.relationships is None else len(access.relationships),
        best.auto_extend if best else None,
        store.driver_time(best.created if best else None),
        store.driver_time(now),
    )
    with store.write_transaction() as cursor:
        cursor.execute(
            store.driver_sql("DELETE FROM customer_access WHERE tenant_id = ?"),
            (access.tenant_id,),
        )
        cursor.execute(
            store.driver_sql(
                "INSERT INTO customer_access (tenant_id, mode, reason, dap, dap_checked_at, "
                "gdap_known, gdap_relationship, gdap_status, gdap_end, gdap_relationships, "
                "gdap_auto_extend, gdap_created, checked_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            values,
        )


# -- finding out, per customer --------------------------------------------------------------------


class AccessResolver:
    """Finds out how each customer of one sync is reached (see the module docstring).

    ``provider``: app-only tokens and Partner Center per region. ``graph``: reads each
    region's GDAP relationships when its first customer comes (inside the run, so its requests
    count among the run's); ``relationships``: the partner's relationships, already read (then
    ``graph`` is not needed). Close it (``aclose``) to close its Partner Center clients."""

    def __init__(
        self,
        provider: TokenProvider,
        store: Store,
        graph: GraphClient | None = None,
        *,
        relationships: GdapRelationships | None = None,
        tokens: FleetTokens | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.tokens = tokens  # with a service account: the sync's tokens, to switch a customer
        self.provider = provider
        self.store = store
        self.graph = graph
        self.relationships = relationships if relationships is not None else GdapRelationships()
        self._read_ahead = relationships is not None
        self.now = now
        self._partner_center: dict[str, PartnerCenterClient] = {}
        self._lock = asyncio.Lock()
        self._region_locks: dict[str, asyncio.Lock] = {}

    async def _relationships_of(
        self, tenant_id: str, region: str | None
    ) -> tuple[GdapRelationship, ...] | None:
        known = self.relationships
        if region is not None and not self._read_ahead and self.graph is not None:
            lock = self._region_locks.setdefault(region, asyncio.Lock())
            async with lock:
                if region not in known.read and region not in known.unknown:
                    await read_region(self.graph, self.provider, region, known)
        return known.of(tenant_id, region)

    async def aclose(self) -> None:
        clients, self._partner_center = list(self._partner_center.values()), {}
        for client in clients:
            await client.close()

    async def resolve(
        self,
        tenant_id: str,
        region: str | None,
        name: str,
        *,
        answer: str | CspGraphError | None = None,
        settled: asyncio.Event | None = None,
    ) -> tuple[CustomerAccess, CspGraphError | None]:
        """(how ``tenant_id`` is reached, the failure that leaves it unreached or None).

        ``name``: how commands name the customer (its domain, else its tenant id). The failure
        is GDAP-aware (:func:`~cspgraph.http.errors.classify_access_failure`). ``answer``: the
        app-only token request's answer when the caller already asked (the token, or its
        failure: not asked again, so the retry policy's count holds); None: asked here.
        ``settled``: set by the caller once the customer's pulls have ended; a refresh of a
        stored DAP answer (older than :data:`DAP_RECHECK`, younger than :data:`DAP_MAX_AGE`)
        still waiting for Partner Center then gives up, and the stored answer stands with its
        date."""
        stored = await asyncio.to_thread(stored_access, self.store, tenant_id)
        rels = await self._relationships_of(tenant_id, region)
        refused: CspGraphError | None = None
        roles: list[str] | None = None
        if isinstance(answer, CspGraphError):
            refused = answer
        else:
            try:
                token = answer if answer is not None else await self.provider.get_token(tenant_id)
                roles = token_claims.roles(token)
            except CspGraphError as exc:
                refused = exc
        dap, checked, reseller = await self._dap(
            tenant_id, region, stored, asked=refused is not None, settled=settled
        )
        # Entra leaves the roles claim out of a token without application permissions.
        if refused is None and (dap is not False or roles):
            mode, reason = self._reached_by_app(dap, rels)
            return CustomerAccess(tenant_id, mode, reason, dap, checked, rels), None
        if refused is None:
            # Consented without application permissions (Partner Center's consent grants
            # delegated scopes only): app-only tokens come, but allow nothing.
            refused = NeedsPersonError(
                f"app-only token for tenant {tenant_id} carries no application permissions",
                code="NoAppRoles",
                tenant=tenant_id,
                reason="the app is consented in this customer without application permissions: "
                f"run `cspgraph gdap consent --customer {name}`",
            )
        service = self.tokens.service if self.tokens is not None else None
        if service is not None and dap is not True:
            delegated = await self._delegated(
                tenant_id, region, name, (dap, checked, reseller), rels
            )
            if delegated is not None:
                return delegated
        reached_before = stored is not None and stored.mode in (
            AccessMode.DAP,
            AccessMode.GDAP_APP,
        )
        facts = facts_for(name, dap, rels, reached_before=reached_before, reseller=reseller)
        failure = classify_access_failure(refused, facts)
        access = CustomerAccess(
            tenant_id, AccessMode.NONE, clip(short(failure)), dap, checked, rels
        )
        return access, failure

    async def _delegated(
        self,
        tenant_id: str,
        region: str | None,
        name: str,
        partner_center: tuple[bool | None, datetime | None, bool | None],
        rels: tuple[GdapRelationship, ...] | None,
    ) -> tuple[CustomerAccess, CspGraphError | None] | None:
        """The customer through the service account, or its GDAP-aware failure; None when the
        service account has not signed in (the app's failure then stands)."""
        assert self.tokens is not None and self.tokens.service is not None
        live = nearest(r for r in rels or () if r.in_effect)
        holders = await self._holders(region, live) if live is not None else None
        dap, checked, reseller = partner_center
        try:
            await self.tokens.service.get_token(tenant_id)
        except CspGraphError as exc:
            if exc.code in ("NotSignedIn", "AmbiguousAgent"):
                log.warning("the service account cannot be used: %s", exc)
                return None
            facts = facts_for(name, dap, rels, reached_before=False, delegated=True,
                              reseller=reseller)  # fmt: skip
            if holders is not None and facts.relationships is not None:
                facts = dataclasses.replace(
                    facts,
                    relationships=tuple(
                        holders if r.name == holders.name else r for r in facts.relationships
                    ),
                )
            failure = classify_access_failure(exc, facts)
            reason = clip(short(failure))
            return CustomerAccess(tenant_id, AccessMode.NONE, reason, dap, checked, rels), failure
        self.tokens.delegated.add(tenant_id.lower())
        found = CustomerAccess(
            tenant_id, AccessMode.GDAP_DELEGATED, None, dap, checked, rels, holders=holders
        )
        return found, None

    async def _holders(self, region: str | None, rel: GdapRelationship) -> RelationshipFact | None:
        if self.graph is None or region is None:
            return None
        partner = self.provider.config.region_identity(region).partner_tenant
        try:
            return await read_holders(self.graph, partner, rel)
        except CspGraphError as exc:
            log.info("the access assignments of %s are unknown: %s", rel.display_name, exc)
            return None

    @staticmethod
    def _reached_by_app(
        dap: bool | None, rels: Sequence[GdapRelationship] | None
    ) -> tuple[AccessMode | None, str | None]:
        if dap is True:
            return AccessMode.DAP, None
        if dap is False:
            return AccessMode.GDAP_APP, None
        return (
            None,
            "app-only tokens work, but whether through DAP is unknown (Partner Center did not say)",
        )

    async def _dap(
        self,
        tenant_id: str,
        region: str | None,
        stored: StoredAccess | None,
        *,
        asked: bool,
        settled: asyncio.Event | None = None,
    ) -> tuple[bool | None, datetime | None, bool | None]:
        """(Partner Center's ``allowDelegatedAccess``, when it said so, whether it lists the
        tenant as a customer): the stored answer while it is fresh and the app's token works,
        else asked again; None where it would not say. A refresh (see :meth:`resolve`'s
        ``settled``) keeps the stored answer when Partner Center is slower than the pulls."""
        now = self.now()
        kept = (stored.dap, stored.dap_checked_at, None) if stored else (None, None, None)
        age = (
            now - stored.dap_checked_at
            if not asked
            and stored is not None
            and stored.dap is not None
            and stored.dap_checked_at is not None
            else None
        )
        if age is not None and age < DAP_RECHECK:
            return kept
        given_up = settled if age is not None and age < DAP_MAX_AGE else None
        try:
            client = await self._client(region)
            question = client.get_customer(tenant_id)
            if given_up is None:
                customer = await question
            elif (answered := await _unless_set(given_up, question)) is None:
                return kept
            else:
                customer = answered
        except NotYourCustomerError:
            return False, now, False  # no commerce relationship: no DAP either
        except (CspGraphError, ValueError) as exc:
            log.info("Partner Center did not say whether %s has DAP: %s", tenant_id, exc)
            return kept
        value = customer.raw.get("allowDelegatedAccess")
        return (value, now, True) if isinstance(value, bool) else (None, None, True)

    async def _client(self, region: str | None) -> PartnerCenterClient:
        identity = self.provider.config.region_identity(region)
        async with self._lock:
            client = self._partner_center.get(identity.region)
            if client is None:
                # A question asked beside the sync: a Partner Center that fails leaves DAP
                # unknown for a while rather than holding every customer up.
                client = PartnerCenterClient.for_region(
                    self.provider, identity.region, max_retries=2, backoff_cap=5.0
                )
                await client.__aenter__()
                self._partner_center[identity.region] = client
            return client


# -- the service account (gdap-delegated) ---------------------------------------------------------


class FleetTokens:
    """A sync's tokens: app-only for every customer, except those found reachable only through
    the service account (``delegated``), whose tokens are its delegated ones. Implements the
    Graph client's ``TokenSource`` and the sync's routing."""

    def __init__(self, provider: TokenProvider, service: TokenSource | None) -> None:
        self.provider = provider
        self.service = service
        self.delegated: set[str] = set()
        self.discovery = provider.discovery

    async def route(self, customer: str) -> Route:
        return await self.provider.route(customer)

    async def get_token(self, tenant: str, *, fresh: bool = False) -> str:
        if self.service is not None and tenant.lower() in self.delegated:
            return await self.service.get_token(tenant, fresh=fresh)
        return await self.provider.get_token(tenant, fresh=fresh)

    def app_for(self, tenant: str) -> str | None:
        return self.provider.app_for(tenant)


async def read_holders(
    graph: GraphClient, partner_tenant: str, rel: GdapRelationship
) -> RelationshipFact:
    """The relationship with which partner groups hold which of its roles (its active access
    assignments), and whether some assignments are still pending."""
    holders: dict[str, list[str]] = {name_of(r): [] for r in rel.roles}
    pending = False
    group_names: dict[str, str] = {}
    path = f"{RELATIONSHIPS_PATH}/{rel.id}/accessAssignments"
    async for page in graph.pages(partner_tenant, path):
        for item in page.items:
            status = str(item.get("status") or "")
            if status == "pending":
                pending = True
            if status != "active":
                continue
            group = str((item.get("accessContainer") or {}).get("accessContainerId") or "")
            if group and group not in group_names:
                try:
                    found = await graph.get(
                        partner_tenant, f"/groups/{group}", params={"$select": "displayName"}
                    )
                    group_names[group] = str(found.get("displayName") or group)
                except CspGraphError:
                    group_names[group] = group
            roles = (item.get("accessDetails") or {}).get("unifiedRoles") or []
            for role in roles:
                name = name_of(str(role.get("roleDefinitionId") or "?"))
                holders.setdefault(name, []).append(group_names.get(group, group))
    return dataclasses.replace(
        rel.fact(),
        holders=tuple((role, tuple(groups)) for role, groups in sorted(holders.items())),
        assignments_pending=pending,
    )


async def explain_refusal(
    provider: TokenProvider,
    graph: GraphClient,
    tenant_id: str,
    region: str | None,
    name: str,
    refused: CspGraphError,
) -> CspGraphError:
    """An app-only token refused in one customer, read as a sync reads it (DAP flag, the
    partner's GDAP relationships: :meth:`AccessResolver.resolve`), for callers outside a sync
    (``cspgraph call``): "not consented" or "awaits approval" is a person's matter with its next
    step, not "wait". Nothing is kept: the resolver works on a scratch store of its own (a
    file, as the resolver reads it from worker threads; SQLite's memory databases are one per
    connection)."""
    with (
        tempfile.TemporaryDirectory(prefix="cspgraph-call-") as scratch_dir,
        Store.open(str(Path(scratch_dir) / "scratch.db")) as scratch,
    ):
        resolver = AccessResolver(provider, scratch, graph)
        try:
            _, failure = await resolver.resolve(tenant_id, region, name, answer=refused)
        finally:
            await resolver.aclose()
    return failure or refused


async def _unless_set(event: asyncio.Event, asked: Awaitable[T]) -> T | None:
    """``asked``'s answer, or None when ``event`` is set first (``asked`` is then dropped)."""
    question = asyncio.ensure_future(asked)
    given_up = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((question, given_up), return_when=asyncio.FIRST_COMPLETED)
    finally:
        given_up.cancel()
    if not question.done():
        abandon(question)
        return None
    return question.result()


def abandon(future: asyncio.Future[Any]) -> None:
    """Cancel a request nobody will await any more; whatever it ends with (it may end before
    the cancel lands) is not reported as an unhandled error."""
    future.cancel()
    future.add_done_callback(_retrieved)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
