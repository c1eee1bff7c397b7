"""Talking to Microsoft Graph for many customer tenants: client, limits, CSP scope, errors.

The names below are imported on first use (module ``__getattr__``): a caller after only the CSP
scope or the limiter must not load aiohttp and the whole client through this package. The error
classes live in :mod:`cspgraph.http.errors` (the client's lowest floor) and are re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cspgraph.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from cspgraph.graph.batch import BatchRequest, BatchResponse
    from cspgraph.graph.client import GraphClient, Page
    from cspgraph.graph.limits import (
        Budget,
        GraphBudgets,
        GraphLimiter,
        Limiter,
        NoLimiter,
        RequestCost,
        TenantSize,
    )
    from cspgraph.graph.scope import (
        CSP_RULE,
        OPERATION_SETS,
        SYNC_OPERATIONS,
        Family,
        Operation,
        permission_for,
        required_permissions,
    )
    from cspgraph.graph.wire import GraphStats
    from cspgraph.http.errors import (
        BadRequestError,
        CspGraphError,
        CspScopeError,
        ErrorClass,
        NeedsPersonError,
        PropagatingError,
        TransientError,
    )
    from cspgraph.http.retry import PropagationPolicy
    from cspgraph.http.sender import TokenSource

__all__ = [
    "CSP_RULE",
    "OPERATION_SETS",
    "SYNC_OPERATIONS",
    "BadRequestError",
    "BatchRequest",
    "BatchResponse",
    "Budget",
    "CspGraphError",
    "CspScopeError",
    "ErrorClass",
    "Family",
    "GraphBudgets",
    "GraphClient",
    "GraphLimiter",
    "GraphStats",
    "Limiter",
    "NeedsPersonError",
    "NoLimiter",
    "Operation",
    "Page",
    "PropagatingError",
    "PropagationPolicy",
    "RequestCost",
    "TenantSize",
    "TokenSource",
    "TransientError",
    "permission_for",
    "required_permissions",
]

# name → the submodule that defines it; imported lazily: the client and the sender pull in aiohttp
# (~80 ms), which a caller after only the error classes or the CSP scope does not need.
_EXPORTS: dict[str, str] = {
    "BatchRequest": "batch",
    "BatchResponse": "batch",
    "GraphClient": "client",
    "Page": "client",
    **dict.fromkeys(
        (
            "BadRequestError",
            "CspGraphError",
            "CspScopeError",
            "ErrorClass",
            "NeedsPersonError",
            "PropagatingError",
            "TransientError",
        ),
        "cspgraph.http.errors",
    ),
    **dict.fromkeys(
        (
            "Budget",
            "GraphBudgets",
            "GraphLimiter",
            "Limiter",
            "NoLimiter",
            "RequestCost",
            "TenantSize",
        ),
        "limits",
    ),
    **dict.fromkeys(
        (
            "CSP_RULE",
            "OPERATION_SETS",
            "SYNC_OPERATIONS",
            "Family",
            "Operation",
            "permission_for",
            "required_permissions",
        ),
        "scope",
    ),
    "GraphStats": "wire",
    "PropagationPolicy": "cspgraph.http.retry",
    "TokenSource": "cspgraph.http.sender",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
