"""Talking to Microsoft Graph for many customer tenants: client, limits, CSP scope, errors."""

from cspgraph.graph.batch import BatchRequest, BatchResponse
from cspgraph.graph.client import GraphClient, Page
from cspgraph.graph.errors import (
    BadRequestError,
    CspGraphError,
    CspScopeError,
    ErrorClass,
    NeedsPersonError,
    PropagatingError,
    TransientError,
)
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
from cspgraph.graph.transport import GraphStats, PropagationPolicy, TokenSource

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
