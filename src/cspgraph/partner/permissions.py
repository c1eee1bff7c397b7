"""Which Graph permissions the partner-managed app asks for, and the CSP rule that limits them.

:func:`plan_permissions` turns a named set of operations (``"sync"``), explicit operations
(``"GET /users"``) or permission names into a :class:`PermissionPlan`: the least-privileged
application and delegated permissions, from the CSP scope table (:mod:`cspgraph.graph.scope`).
A partner-managed app may only use directory and Intune permissions in customer tenants;
:func:`check_csp_scope` refuses anything else, quoting the rule, before set-up changes anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cspgraph.graph import scope
from cspgraph.http.errors import BadRequestError, CspScopeError


@dataclass(frozen=True)
class PermissionPlan:
    """The Graph permissions the app asks for: application (app roles) and delegated (scopes)."""

    application: tuple[str, ...]
    delegated: tuple[str, ...]
    why: str = ""  # what they were computed from, for the report

    def as_dict(self) -> dict[str, Any]:
        return {
            "application": list(self.application),
            "delegated": list(self.delegated),
            "why": self.why,
        }


def csp_permission_names() -> frozenset[str]:
    """Graph permissions inside directory and Intune, as the CSP scope table knows them."""
    names: set[str] = set(scope.APPLICATION_ROLE_IDS)
    for rule in scope.RESOURCES.values():
        for grant in (rule.read, rule.write):
            names |= {n for n in (grant.application, grant.delegated) if n is not None}
    # The delegated "act as the signed-in user" over the directory (what agents use).
    names.add("Directory.AccessAsUser.All")
    return frozenset(names)


def in_csp_scope(permission: str) -> bool:
    # Every Intune permission is named DeviceManagement*; the table lists only the common ones.
    return permission in csp_permission_names() or permission.startswith("DeviceManagement")


def check_csp_scope(permissions: Iterable[str]) -> None:
    """Refuse permissions outside directory and Intune, quoting the rule."""
    outside = sorted({p for p in permissions if not in_csp_scope(p)})
    if outside:
        raise CspScopeError(
            f"refused {', '.join(outside)}: {scope.CSP_RULE} A partner-managed app cannot use "
            "these in customer tenants; choose directory (User., Group., Device., "
            "Organization., Directory., …) or Intune (DeviceManagement…) permissions.",
            code="CspScopeViolation",
        )


def _operation(text: str) -> tuple[str, str]:
    method, _, path = text.strip().partition(" ")
    if not path:
        method, path = "GET", text.strip()
    return method.upper(), path.strip()


def plan_permissions(
    *,
    preset: str | None = None,
    operations: Sequence[str] = (),
    permissions: Sequence[str] = (),
    delegated: Sequence[str] | None = None,
) -> PermissionPlan:
    """The permissions for a named set of operations (``"sync"``), for explicit operations
    (``"GET /users"``), or given by name.

    Operations are turned into the least-privileged set by :func:`scope.required_permissions`.
    Names given with ``permissions`` are asked for as application permissions and, unless
    ``delegated`` names others, as delegated ones too. Anything outside directory and Intune is
    refused (:class:`CspScopeError`) before anything is changed.
    """
    ops: list[tuple[str, str]] = []
    why: list[str] = []
    if preset is not None:
        if preset not in scope.OPERATION_SETS:
            known = ", ".join(sorted(scope.OPERATION_SETS))
            raise BadRequestError(
                f"unknown operation set {preset!r}; expected one of: {known}",
            )
        ops.extend(scope.OPERATION_SETS[preset])
        why.append(f"for {preset}")
    if operations:
        ops.extend(_operation(o) for o in operations)
        why.append(f"{len(operations)} operation(s)")
    named = [p.strip() for p in permissions if p.strip()]
    named_delegated = [p.strip() for p in (delegated or ()) if p.strip()]
    check_csp_scope([*named, *named_delegated])
    application: set[str] = set(named)
    scopes: set[str] = set(named_delegated if delegated is not None else named)
    # Directory.AccessAsUser.All exists only as a delegated permission.
    application.discard("Directory.AccessAsUser.All")
    if named:
        why.append("named permissions")
    if ops:
        try:
            application |= scope.required_permissions(ops)
            scopes |= scope.required_permissions(ops, delegated=True)
        except ValueError:
            # Some operation has no application permission (/me): ask for the others per kind.
            application |= _each(ops, delegated=False)
            scopes |= _each(ops, delegated=True)
    if not application and not scopes:
        raise BadRequestError(
            "no permissions to ask for: name an operation set (--for sync), operations or "
            "permissions",
        )
    check_csp_scope([*application, *scopes])
    return PermissionPlan(tuple(sorted(application)), tuple(sorted(scopes)), ", ".join(why))


def _each(ops: Sequence[tuple[str, str]], *, delegated: bool) -> set[str]:
    usable = []
    for method, path in ops:
        with contextlib.suppress(ValueError):
            scope.permission_for(method, path, delegated=delegated)
            usable.append((method, path))
    return set(scope.required_permissions(usable, delegated=delegated)) if usable else set()
