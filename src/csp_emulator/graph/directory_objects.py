"""Directory objects of any type: finding one by id and emitting it with its ``@odata.type``.

Collections that mix types (group members, memberOf, getByIds, directoryObjects/{id}) tag every
item with ``@odata.type`` so clients can tell a user from a group or a service principal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from csp_emulator.graph import odata
from csp_emulator.world.model import Tenant

# Where an id is looked for, in order.
KINDS = ("users", "groups", "devices", "servicePrincipals", "applications", "directoryRoles")

ODATA_TYPES: dict[str, str] = {
    "users": "#microsoft.graph.user",
    "groups": "#microsoft.graph.group",
    "devices": "#microsoft.graph.device",
    "servicePrincipals": "#microsoft.graph.servicePrincipal",
    "applications": "#microsoft.graph.application",
    "directoryRoles": "#microsoft.graph.directoryRole",
}

# The authz operation that reads each kind (directoryObjects reads check the object's own type).
READ_OPERATIONS: dict[str, str] = {
    "users": "users.read",
    "groups": "groups.read",
    "devices": "devices.read",
    "servicePrincipals": "servicePrincipals.read",
    "applications": "applications.read",
    "directoryRoles": "directoryRoles.read",
}


def find(tenant: Tenant, object_id: str) -> tuple[str, dict[str, Any]] | None:
    for kind in KINDS:
        obj = tenant.objects[kind].get(object_id)
        if obj is not None:
            return kind, obj
    return None


def lookup(tenant: Tenant) -> Callable[[str], dict[str, Any] | None]:
    """A lookup function (id -> object) over every directory kind, for mixed collections."""

    def get(object_id: str) -> dict[str, Any] | None:
        found = find(tenant, object_id)
        return found[1] if found else None

    return get


def odata_type(tenant: Tenant, object_id: str, default: str = "#microsoft.graph.user") -> str:
    """The type of a live object, or of a deleted one by its tombstone, else ``default``."""
    found = find(tenant, object_id)
    if found is not None:
        return ODATA_TYPES[found[0]]
    for kind in KINDS:
        if object_id in tenant.tombstones.get(kind, {}):
            return ODATA_TYPES[kind]
    return default


def typed(tenant: Tenant, obj: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    found = find(tenant, obj["id"])
    kind = found[0] if found else "directoryObjects"
    out: dict[str, Any] = {"@odata.type": ODATA_TYPES.get(kind, "#microsoft.graph.directoryObject")}
    out.update(odata.project(obj, select, kind))
    return out
