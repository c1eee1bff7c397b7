"""The emulated world: tenants, their directory objects, apps, partner relationships, and a clock.

Directory objects are kept as plain dicts in Microsoft Graph's JSON shape, so the Graph routes can
serve, filter and select them without translation. Keys starting with ``_`` are the emulator's own
bookkeeping (a user's password, an app's secrets, a group's members) and never leave the process.

Every change to a tenant's objects goes through :class:`Tenant` methods that bump the tenant's
change sequence: delta queries are answered from those sequence numbers.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from csp_emulator.world.gdap import GdapBook

# Collections a tenant holds, by their Graph resource name.
RESOURCES = (
    "users",
    "groups",
    "devices",
    "applications",
    "servicePrincipals",
    "directoryRoles",
    "managedDevices",
    "deviceCompliancePolicies",
    "appRoleAssignments",
    "oauth2PermissionGrants",
    "subscribedSkus",
)

NAMESPACE = uuid.UUID("5d0c6d1e-8e0f-4c55-9a43-1b2a6f1c9e00")


def stable_id(*parts: str) -> str:
    """A GUID derived from its parts, so the same world always has the same ids."""
    return str(uuid.uuid5(NAMESPACE, "/".join(p.lower() for p in parts)))


def iso(ts: float) -> str:
    """Graph's timestamp form: UTC, seconds, a trailing Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)d)?\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?"
    r"\s*(?:(\d+(?:\.\d+)?)s)?\s*$"
)


# The longest duration a world file or the control API may name: a century. Longer is a typo, and
# the clock must stay where a timestamp can still be written (datetime stops at the year 9999).
MAX_DURATION = 100 * 365 * 86400.0
# How far the world clock may be moved: to the end of the year 9000 (epoch seconds).
MAX_EPOCH = 221_845_392_000.0


def parse_duration(value: str | int | float) -> float:
    """Seconds from ``90``, ``"90"``, ``"1.5s"``, ``"3m"``, ``"1h30m"``, ``"90d"``: finite, from
    0 to a century; anything else (NaN, infinity, a list, ``true``) is a :class:`ValueError`."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a duration like '3m' or a number of seconds: {_shown(value)}")
    if isinstance(value, int | float):
        return _seconds(float(value), value)
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return _seconds(float(text), value)
    match = _DURATION.match(text)
    if not text or not match or not any(match.groups()):
        raise ValueError(f"expected a duration like '30s', '3m', '1h' or '90d': {_shown(value)}")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return _seconds(days * 86400 + hours * 3600 + minutes * 60 + seconds, value)


# A plain number of seconds as text; not float()'s wider grammar ("nan", "inf", "1e999").
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def _seconds(seconds: float, given: object) -> float:
    if math.isnan(seconds):
        raise ValueError(f"a duration must be a number of seconds, not {_shown(given)}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION:
        raise ValueError(f"a duration must be at most a century (3153600000 s): {_shown(given)}")
    return seconds


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Clock:
    """Wall time plus an offset that tests and the control API can advance."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        if not seconds >= 0:  # NaN too: it would make every later time NaN
            raise ValueError("the clock only moves forward")
        if self.now() + seconds > MAX_EPOCH:
            raise ValueError("the clock cannot be moved past the year 9000")
        self._offset += seconds
        return self.now()

    @property
    def offset(self) -> float:
        return self._offset


@dataclass
class ThrottleSettings:
    enabled: bool = True
    # Multiplies every Graph budget: 0.01 makes throttling easy to trigger in a test, 100 makes it
    # rare. Partner Center's customer-endpoint limit has its own factor, so a world whose Graph
    # budgets are scaled down still lists its customers at Partner Center's published rate.
    scale: float = 1.0
    # Multiplies Partner Center's 500 requests a minute per partner tenant (customer endpoints).
    partner_center_scale: float = 1.0
    # Multiplies every Graph budget's window (20 s -> 5 s at 0.25), and Partner Center's minute:
    # a test that must see budgets bind over a window or two then takes a quarter of the wall
    # time, with the same arithmetic (a client whose limiter or pacer knows the same windows
    # paces to them; tests/scale, tests/client/test_partner_center_pacing.py).
    window_scale: float = 1.0


@dataclass
class Fault:
    """A share of requests to one host (and path prefix) answered badly, for resilience tests."""

    host: str  # "login" | "graph" | "partner_center" | "*"
    kind: str  # "429" | "500" | "502" | "503" | "504" | "latency" | "drop"
    rate: float = 1.0  # probability per matching request
    path_prefix: str = ""
    count: int | None = None  # how many times at most; None = unlimited
    latency: float = 0.0  # seconds, for kind="latency"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


@dataclass
class DeltaPaging:
    """How Graph pages a delta round (graph/delta.py; sources in docs/emulator.md).

    Graph caps a delta page at 200 directory objects and 500 link objects (a groups page's
    ``members@delta`` entries), answers that many when no ``odata.maxpagesize`` is asked for, and
    may answer fewer near an internal time limit: groups pages shrink from ~200 towards 1 and
    then recover. ``groups_shrink`` is the factor from one groups page's cap to the next's (1 =
    never shrink); ``groups_floor_pages`` how many pages of one group come before the cap is back.
    The two shrinking figures are the emulator's choice (*unverified*): the source reports the
    pattern, not its numbers."""

    object_cap: int = 200
    link_cap: int = 500
    groups_shrink: float = 0.5
    groups_floor_pages: int = 4


@dataclass
class HostLatency:
    """How long one host takes to answer (csp_emulator/latency.py): ``base`` seconds a request,
    plus ``per_object`` seconds for each object a list or delta page carries (``members@delta``
    entries and Partner Center customers included), times a uniform jitter of ``± jitter``; a
    share ``tail_share`` of answers takes ``tail_factor`` times as long (the heavy tail)."""

    base: float = 0.0
    per_object: float = 0.0
    jitter: float = 0.0
    tail_share: float = 0.0
    tail_factor: float = 1.0

    @property
    def active(self) -> bool:
        return self.base > 0.0 or self.per_object > 0.0


@dataclass
class LatencySettings:
    """Per host (``login``, ``graph``, ``partner_center``): the latency model; ``preset`` names
    the preset the figures came from (for display), None when set by hand."""

    hosts: dict[str, HostLatency] = field(
        default_factory=lambda: {h: HostLatency() for h in ("login", "graph", "partner_center")}
    )
    preset: str | None = None

    def active(self, host: str) -> bool:
        model = self.hosts.get(host)
        return model is not None and model.active


@dataclass
class Settings:
    propagation_delay: float = 180.0
    token_lifetime: float = 3600.0
    refresh_token_lifetime: float = 90 * 86400.0
    page_size: int = 100  # lists without $top (delta pages follow ``delta``)
    throttling: ThrottleSettings = field(default_factory=ThrottleSettings)
    faults: list[Fault] = field(default_factory=list)
    delta: DeltaPaging = field(default_factory=DeltaPaging)
    latency: LatencySettings = field(default_factory=LatencySettings)
    # What a new reseller relationship brings: "dap" (delegated admin privileges, the original
    # story) or "gdap" (no DAP, a default GDAP relationship: what Microsoft does today).
    new_customer_access: str = "dap"
    # How long an access assignment takes to become active, and a consent to reach the customer.
    assignment_delay: float = 60.0
    consent_delay: float = 60.0


@dataclass
class Relationship:
    """A partner relationship; its pre-consent reaches the customer at ``effective_at``."""

    partner_id: str
    customer_id: str
    created_at: float
    effective_at: float
    kind: str = "reseller"
    dap: bool = True  # delegated admin privileges: what makes AdminAgents count in the customer
    active: bool = True

    def in_effect(self, now: float) -> bool:
        return self.active and now >= self.effective_at


@dataclass
class Tenant:
    id: str
    display_name: str
    domains: list[str]  # verified domains, the default one first; includes the initial domain
    region: str = "NA"
    cloud: str = "global"
    kind: str = "customer"  # "partner" or "customer"
    country: str = "US"
    created_at: float = 0.0
    intune_licensed: bool = True
    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {r: {} for r in RESOURCES}
    )
    seq: int = 0
    # resource -> id -> (sequence of the deletion, reason "changed"|"deleted")
    tombstones: dict[str, dict[str, tuple[int, str]]] = field(
        default_factory=lambda: {r: {} for r in RESOURCES}
    )
    _upn_index: dict[str, str] = field(default_factory=dict)

    @property
    def default_domain(self) -> str:
        return self.domains[0]

    @property
    def initial_domain(self) -> str:
        for d in self.domains:
            if d.endswith(".onmicrosoft.com"):
                return d
        return self.domains[0]

    # -- reads ---------------------------------------------------------------------------------
    def get(self, resource: str, object_id: str) -> dict[str, Any] | None:
        return self.objects[resource].get(object_id)

    def find(self, object_id: str) -> tuple[str, dict[str, Any]] | None:
        """A directory object of any kind by id (what ``/directoryObjects/{id}`` serves)."""
        for resource in ("users", "groups", "devices", "servicePrincipals", "applications"):
            obj = self.objects[resource].get(object_id)
            if obj is not None:
                return resource, obj
        return None

    def user_by_upn(self, upn: str) -> dict[str, Any] | None:
        object_id = self._upn_index.get(upn.lower())
        return self.objects["users"].get(object_id) if object_id else None

    def group_by_name(self, display_name: str) -> dict[str, Any] | None:
        wanted = display_name.lower()
        for group in self.objects["groups"].values():
            if str(group.get("displayName", "")).lower() == wanted:
                return group
        return None

    def member_ids(self, group_id: str) -> list[str]:
        group = self.objects["groups"].get(group_id)
        return list(group.get("_members", [])) if group else []

    def groups_of(self, object_id: str) -> list[dict[str, Any]]:
        return [g for g in self.objects["groups"].values() if object_id in g.get("_members", ())]

    def roles_of(self, object_id: str) -> list[str]:
        """Role template ids of the activated directory roles ``object_id`` is a member of."""
        return [
            r["roleTemplateId"]
            for r in self.objects["directoryRoles"].values()
            if object_id in r.get("_members", ())
        ]

    def service_principal_by_app_id(self, app_id: str) -> dict[str, Any] | None:
        for sp in self.objects["servicePrincipals"].values():
            if sp.get("appId") == app_id:
                return sp
        return None

    def application_by_app_id(self, app_id: str) -> dict[str, Any] | None:
        for app in self.objects["applications"].values():
            if app.get("appId") == app_id:
                return app
        return None

    # -- writes (each bumps the change sequence so delta queries see it) -----------------------
    def _bump(self) -> int:
        self.seq += 1
        return self.seq

    def add(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        object_id = obj["id"]
        obj["_seq"] = self._bump()
        if resource == "groups":
            obj.setdefault("_members", [])
            obj.setdefault("_member_log", [])
        self.objects[resource][object_id] = obj
        self.tombstones[resource].pop(object_id, None)
        if resource == "users":
            self._upn_index[str(obj["userPrincipalName"]).lower()] = object_id
        return obj

    def update(self, resource: str, object_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        obj = self.objects[resource][object_id]
        if resource == "users" and "userPrincipalName" in changes:
            self._upn_index.pop(str(obj["userPrincipalName"]).lower(), None)
            self._upn_index[str(changes["userPrincipalName"]).lower()] = object_id
        obj.update(changes)
        obj["_seq"] = self._bump()
        return obj

    def remove(self, resource: str, object_id: str, reason: str = "changed") -> dict[str, Any]:
        """Delete an object; ``reason`` is what delta reports (`changed` = soft-deleted)."""
        obj = self.objects[resource].pop(object_id)
        self.tombstones[resource][object_id] = (self._bump(), reason)
        if resource == "users":
            self._upn_index.pop(str(obj["userPrincipalName"]).lower(), None)
        for group in self.objects["groups"].values():
            if object_id in group.get("_members", ()):
                self.remove_member(group["id"], object_id)
        for role in self.objects["directoryRoles"].values():
            if object_id in role.get("_members", ()):
                role["_members"].remove(object_id)
        return obj

    def add_member(self, group_id: str, member_id: str) -> bool:
        """Add a member; False when it already was one (Graph then answers 400)."""
        group = self.objects["groups"][group_id]
        members: list[str] = group.setdefault("_members", [])
        if member_id in members:
            return False
        members.append(member_id)
        seq = self._bump()
        group["_seq"] = seq
        group.setdefault("_member_log", []).append((seq, member_id, True))
        return True

    def remove_member(self, group_id: str, member_id: str) -> bool:
        group = self.objects["groups"][group_id]
        members: list[str] = group.setdefault("_members", [])
        if member_id not in members:
            return False
        members.remove(member_id)
        seq = self._bump()
        group["_seq"] = seq
        group.setdefault("_member_log", []).append((seq, member_id, False))
        return True

    def ensure_service_principal(self, app: dict[str, Any], home_tenant_id: str) -> dict[str, Any]:
        """The app's service principal here, created on first use as Entra does for a
        pre-consented multi-tenant app."""
        sp = self.service_principal_by_app_id(app["appId"])
        if sp is None:
            sp = self.add(
                "servicePrincipals",
                service_principal_json(
                    stable_id(self.id, "sp", app["appId"]),
                    app["appId"],
                    app.get("displayName", ""),
                    home_tenant_id,
                ),
            )
        return sp


def service_principal_json(
    object_id: str, app_id: str, display_name: str, owner_tenant_id: str
) -> dict[str, Any]:
    return {
        "id": object_id,
        "appId": app_id,
        "displayName": display_name,
        "servicePrincipalType": "Application",
        "accountEnabled": True,
        "appOwnerOrganizationId": owner_tenant_id,
        "servicePrincipalNames": [app_id],
        "signInAudience": "AzureADMultipleOrgs",
        "appRoles": [],
        "oauth2PermissionScopes": [],
        "tags": [],
    }


@dataclass
class IssuedToken:
    """What the control API lists about a token it issued (never the token itself)."""

    jti: str
    tenant_id: str
    client_id: str
    audience: str
    kind: str  # "app" or "user"
    subject: str
    issued_at: float
    expires_at: float
    roles: list[str]
    scp: str
    grant: str


class World:
    """All tenants of the emulated cloud, their relationships, and the clock they live by."""

    def __init__(self, settings: Settings | None = None, clock: Clock | None = None) -> None:
        self.settings = settings or Settings()
        self.clock = clock or Clock()
        self.tenants: dict[str, Tenant] = {}
        self._domains: dict[str, str] = {}
        self.relationships: list[Relationship] = []
        self.gdap = GdapBook()  # granular delegated admin relationships (world/gdap.py)
        self.issued_tokens: deque[IssuedToken] = deque(maxlen=10_000)
        # No lock: every handler runs on the server's one event loop, and code on another thread
        # changes the world through Emulator.call, which runs it on that loop between requests.

    # -- tenants -------------------------------------------------------------------------------
    def add_tenant(self, tenant: Tenant) -> Tenant:
        for domain in tenant.domains:
            if domain.lower() in self._domains:
                raise ValueError(f"domain {domain} belongs to two tenants")
        if tenant.id in self.tenants:
            raise ValueError(f"tenant id {tenant.id} is used twice")
        self.tenants[tenant.id] = tenant
        for domain in tenant.domains:
            self._domains[domain.lower()] = tenant.id
        return tenant

    def add_domain(self, tenant: Tenant, domain: str) -> None:
        if domain.lower() in self._domains:
            raise ValueError(f"domain {domain} belongs to another tenant")
        tenant.domains.append(domain)
        self._domains[domain.lower()] = tenant.id

    def tenant(self, ref: str) -> Tenant | None:
        """A tenant by GUID or by any of its verified domains (case-insensitive)."""
        ref = ref.lower()
        found = self.tenants.get(ref)
        if found is not None:
            return found
        tenant_id = self._domains.get(ref)
        return self.tenants.get(tenant_id) if tenant_id else None

    def domain_taken(self, domain: str) -> bool:
        return domain.lower() in self._domains

    def partners(self) -> Iterator[Tenant]:
        return (t for t in self.tenants.values() if t.kind == "partner")

    # -- relationships -------------------------------------------------------------------------
    def add_relationship(
        self, partner: Tenant, customer: Tenant, *, in_effect: bool = False, kind: str = "reseller"
    ) -> Relationship:
        now = self.clock.now()
        created = now - self.settings.propagation_delay if in_effect else now
        rel = Relationship(
            partner_id=partner.id,
            customer_id=customer.id,
            created_at=created,
            effective_at=created + self.settings.propagation_delay,
            kind=kind,
        )
        self.relationships.append(rel)
        return rel

    def relationship(self, partner_id: str, customer_id: str) -> Relationship | None:
        for rel in self.relationships:
            if rel.partner_id == partner_id and rel.customer_id == customer_id and rel.active:
                return rel
        return None

    def customers_of(self, partner_id: str) -> list[Tenant]:
        return [
            self.tenants[r.customer_id]
            for r in self.relationships
            if r.partner_id == partner_id and r.active and r.customer_id in self.tenants
        ]

    def partner_of(self, customer_id: str) -> list[Tenant]:
        return [
            self.tenants[r.partner_id]
            for r in self.relationships
            if r.customer_id == customer_id and r.active
        ]

    # -- applications --------------------------------------------------------------------------
    def application(self, client_id: str) -> tuple[Tenant, dict[str, Any]] | None:
        """The registration of ``client_id`` and its home tenant, wherever it lives."""
        for tenant in self.tenants.values():
            app = tenant.application_by_app_id(client_id)
            if app is not None:
                return tenant, app
        return None

    def record_token(self, token: IssuedToken) -> None:
        self.issued_tokens.append(token)
