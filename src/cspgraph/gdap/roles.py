"""The roles a GDAP relationship can grant: Entra's built-in roles by template id and name, what
the common ones allow, and the least privilege for cspgraph's own operations.

The names and template ids are public facts (Entra's built-in roles reference, wire-facts §5.1 and
§8) kept once, in ``builtin_roles.json``, which the emulator reads too: never an import from the
emulator (DESIGN.md), the same data file shipped in each distribution. Partner Center offers
about 105 built-in roles for GDAP; the catalog lists the 100 that people are assigned (a
directory-sync account's role and the two "do not use" partner support roles are left out, as
Partner Center leaves them out of its role picker; *unverified*: Microsoft publishes no
machine-readable list).

What cspgraph itself needs comes from the CSP scope table (:mod:`cspgraph.graph.scope`): the
operations of each command, their least-privileged Graph permission, and the least role a partner
technician needs in a customer for the same calls (:func:`cspgraph_needs`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

from cspgraph.graph.scope import (
    SYNC_OPERATIONS,
    permission_for,
    required_permissions,
    resolve,
)

# Template id -> name for every built-in role GDAP offers: builtin_roles.json, the one copy of
# these public facts, which the emulator reads too (this file links to csp_emulator's; each
# distribution ships it as package data, so neither package imports the other).
_CATALOG = json.loads(resources.files("cspgraph.gdap").joinpath("builtin_roles.json").read_text())
ROLE_NAMES: dict[str, str] = {
    t: n for t, n in _CATALOG["roles"].items() if t not in frozenset(_CATALOG["not_in_gdap"])
}
_BY_NAME = {name.lower(): template for template, name in ROLE_NAMES.items()}


def _named(name: str) -> str:
    return _BY_NAME[name.lower()]


GLOBAL_ADMINISTRATOR = _named("Global Administrator")
GLOBAL_READER = _named("Global Reader")
DIRECTORY_READERS = _named("Directory Readers")
USER_ADMINISTRATOR = _named("User Administrator")
GROUPS_ADMINISTRATOR = _named("Groups Administrator")
HELPDESK_ADMINISTRATOR = _named("Helpdesk Administrator")
LICENSE_ADMINISTRATOR = _named("License Administrator")
INTUNE_ADMINISTRATOR = _named("Intune Administrator")
CLOUD_DEVICE_ADMINISTRATOR = _named("Cloud Device Administrator")
APPLICATION_ADMINISTRATOR = _named("Application Administrator")
CLOUD_APPLICATION_ADMINISTRATOR = _named("Cloud Application Administrator")
PRIVILEGED_ROLE_ADMINISTRATOR = _named("Privileged Role Administrator")
SECURITY_READER = _named("Security Reader")
SECURITY_ADMINISTRATOR = _named("Security Administrator")
EXCHANGE_ADMINISTRATOR = _named("Exchange Administrator")
BILLING_ADMINISTRATOR = _named("Billing Administrator")
PASSWORD_ADMINISTRATOR = _named("Password Administrator")
SERVICE_SUPPORT_ADMINISTRATOR = _named("Service Support Administrator")

# What the roles partners commonly request allow (Entra's built-in roles reference, abridged).
ALLOWS: dict[str, str] = {
    GLOBAL_ADMINISTRATOR: "everything in the tenant; cannot be combined with auto-extend",
    GLOBAL_READER: "read everything Global Administrator can, change nothing (Intune included)",
    DIRECTORY_READERS: "read basic directory information: users, groups, devices, roles",
    USER_ADMINISTRATOR: "create and manage users and groups, reset most users' passwords",
    GROUPS_ADMINISTRATOR: "create and manage groups and their settings",
    HELPDESK_ADMINISTRATOR: "reset passwords of non-administrators, invalidate refresh tokens",
    PASSWORD_ADMINISTRATOR: "reset passwords of non-administrators and Password Administrators",
    LICENSE_ADMINISTRATOR: "assign and remove licences of users and groups",
    INTUNE_ADMINISTRATOR: "manage everything in Intune: devices, policies, apps",
    CLOUD_DEVICE_ADMINISTRATOR: "enable, disable and delete devices in Entra ID",
    APPLICATION_ADMINISTRATOR: "manage app registrations and enterprise apps, grant consent "
    "(app proxy included)",
    CLOUD_APPLICATION_ADMINISTRATOR: "manage app registrations and enterprise apps, grant "
    "delegated consent; what Partner Center's app consent asks of a partner",
    PRIVILEGED_ROLE_ADMINISTRATOR: "manage role assignments and grant application permissions "
    "(app roles) of Microsoft Graph",
    SECURITY_READER: "read security information and reports",
    SECURITY_ADMINISTRATOR: "manage security features and read security reports",
    EXCHANGE_ADMINISTRATOR: "manage Exchange Online",
    BILLING_ADMINISTRATOR: "buy and manage subscriptions, manage support tickets",
    SERVICE_SUPPORT_ADMINISTRATOR: "read service health, open Microsoft support requests",
}

# Roles ranked by how much they can do, least first: the least-privilege choice takes the first
# role that covers what is needed.
_RANK = (
    DIRECTORY_READERS,
    GLOBAL_READER,
    CLOUD_APPLICATION_ADMINISTRATOR,
    APPLICATION_ADMINISTRATOR,
    INTUNE_ADMINISTRATOR,
    PRIVILEGED_ROLE_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
)
# The Graph resources (first path segment) each ranked role may read, for the least-privilege
# choice of a technician who syncs with delegated access.
_READS: dict[str, frozenset[str]] = {
    DIRECTORY_READERS: frozenset(
        {"organization", "users", "groups", "devices", "directoryRoles", "domains"}
    ),
    GLOBAL_READER: frozenset(
        {
            "organization",
            "users",
            "groups",
            "devices",
            "directoryRoles",
            "domains",
            "deviceManagement",
            "subscribedSkus",
            "servicePrincipals",
            "applications",
        }
    ),
    INTUNE_ADMINISTRATOR: frozenset(
        {"organization", "users", "groups", "devices", "deviceManagement"}
    ),
}


@dataclass(frozen=True)
class Role:
    """A built-in role as GDAP grants it."""

    template_id: str
    name: str
    allows: str | None  # None: not described here (see Entra's built-in roles reference)

    def as_dict(self) -> dict[str, str | None]:
        return {"template_id": self.template_id, "name": self.name, "allows": self.allows}


class UnknownRoleError(ValueError):
    """A role given by a name or id that is not a built-in role GDAP offers."""


def catalog() -> list[Role]:
    """Every role GDAP offers, by name."""
    return [role(t) for t in sorted(ROLE_NAMES, key=lambda t: ROLE_NAMES[t].lower())]


def role(template_id: str) -> Role:
    """The role of a template id; an id the catalog does not know keeps its id as its name."""
    tid = template_id.lower()
    return Role(tid, ROLE_NAMES.get(tid, tid), ALLOWS.get(tid))


def name_of(template_id: str) -> str:
    return ROLE_NAMES.get(template_id.lower(), template_id)


def resolve_role(text: str) -> str:
    """The template id of a role given by template id or name (any case)."""
    key = text.strip().lower()
    if key in ROLE_NAMES:
        return key
    if key in _BY_NAME:
        return _BY_NAME[key]
    near = [n for n in ROLE_NAMES.values() if key and key in n.lower()][:5]
    hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
    raise UnknownRoleError(
        f"{text!r} is not a built-in role GDAP offers (a name like 'Directory Readers' or a "
        f"template id){hint} — `cspgraph gdap roles` lists them"
    )


def resolve_roles(items: Iterable[str]) -> tuple[str, ...]:
    """Template ids of roles given by name or id, comma-separated or one per item, in order and
    without repeats. ``cspgraph`` stands for :data:`CSPGRAPH_ROLES`."""
    found: list[str] = []
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            ids = CSPGRAPH_ROLES if part.strip().lower() == "cspgraph" else (resolve_role(part),)
            found.extend(i for i in ids if i not in found)
    if not found:
        raise UnknownRoleError("no role given: name at least one (`cspgraph gdap roles`)")
    return tuple(found)


def least_role_reading(resources: Iterable[str]) -> str:
    """The least-privileged ranked role that reads every one of ``resources``."""
    wanted = set(resources)
    for template in _RANK:
        if template == GLOBAL_ADMINISTRATOR or wanted <= _READS.get(template, frozenset()):
            return template
    return GLOBAL_ADMINISTRATOR  # pragma: no cover - the rank ends with it


@dataclass(frozen=True)
class Need:
    """What one of cspgraph's operations needs: where, which roles, which permissions."""

    operation: str
    where: str  # "partner tenant" or "customer"
    roles: tuple[str, ...]  # template ids a technician needs through GDAP (none: ())
    permissions: tuple[str, ...]  # Graph permissions of the app
    kind: str  # "delegated" or "application"
    note: str

    def as_dict(self) -> dict[str, object]:
        return {
            "operation": self.operation,
            "where": self.where,
            "roles": [{"template_id": t, "name": name_of(t)} for t in self.roles],
            "permissions": list(self.permissions),
            "kind": self.kind,
            "note": self.note,
        }


GDAP_API = "/tenantRelationships/delegatedAdminRelationships"


def sync_application_permissions() -> tuple[str, ...]:
    """The application permissions (app roles) the fleet sync needs in a customer, from the CSP
    scope table: what ``cspgraph gdap consent`` grants the app there."""
    return tuple(sorted(required_permissions(SYNC_OPERATIONS)))


def cspgraph_needs() -> list[Need]:
    """The least privilege for each of cspgraph's own operations, derived from the scope table."""
    sync_resources = {resolve(method, path).resource for method, path in SYNC_OPERATIONS}
    write = permission_for("POST", GDAP_API, delegated=True)
    read = permission_for("GET", GDAP_API, delegated=True)
    grant = permission_for("POST", "/servicePrincipals/{id}/appRoleAssignedTo", delegated=True)
    return [
        Need("gdap invite, assign", "partner tenant", (), (write,), "delegated",
             "the technician is in AdminAgents; requests (lockForApproval) are delegated only"),
        Need("gdap status", "partner tenant", (), (read,), "delegated",
             "a caller outside AdminAgents gets an empty list, not an error"),
        Need("gdap consent: Partner Center applicationconsents", "customer",
             (CLOUD_APPLICATION_ADMINISTRATOR,), (), "delegated",
             "or Application Administrator / Global Administrator; the technician is in "
             "AdminAgents (app+user token with MFA)"),
        Need("gdap consent: the sync's app roles (appRoleAssignedTo)", "customer",
             (PRIVILEGED_ROLE_ADMINISTRATOR,), (grant,), "delegated",
             "Entra grants Microsoft Graph's app roles to Privileged Role Administrator or "
             "Global Administrator; without it, the customer's administrator uses the "
             "/adminconsent link"),
        Need("sync: the GDAP relationships (customer list, access modes)", "partner tenant",
             (), (permission_for("GET", GDAP_API),), "application",
             "granted in the partner tenant by `cspgraph setup` (its admin consent step)"),
        Need("sync (the consented app, app-only)", "customer", (),
             sync_application_permissions(), "application",
             "no GDAP role: the app's own consent in the customer"),
        Need("sync as a technician (delegated)", "customer",
             (least_role_reading(sync_resources),),
             tuple(sorted(required_permissions(SYNC_OPERATIONS, delegated=True))), "delegated",
             "Directory Readers is enough without Intune's managed devices"),
    ]  # fmt: skip


# `--roles cspgraph`: the least set that lets every cspgraph operation above run in a customer.
CSPGRAPH_ROLES: tuple[str, ...] = (
    GLOBAL_READER,
    CLOUD_APPLICATION_ADMINISTRATOR,
    PRIVILEGED_ROLE_ADMINISTRATOR,
)


def describe(template_ids: Sequence[str]) -> str:
    return ", ".join(name_of(t) for t in template_ids)
