"""The client's lowest floor: the error taxonomy, HTTP sessions and trust, retries, the sender.

Everything else in the client stands on this package and nothing in it imports the rest of
cspgraph. ``errors`` (the one classification table of Entra, Graph and Partner Center failures)
loads no HTTP library; ``sessions`` is the only module that makes HTTP sessions and decides what
they trust; ``retry`` is the one backoff and ``Retry-After`` policy; ``sender`` sends one request
until it is answered or must not be retried, with the token, the shared fresh-token refresh and the
propagation wait (``GraphClient`` and ``PartnerCenterClient`` each hold one).

The names below are imported on first use, so ``from cspgraph.http import CspGraphError`` does
not load aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cspgraph.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from cspgraph.http.errors import (
        BadRequestError,
        CspGraphError,
        CspScopeError,
        ErrorClass,
        NeedsPersonError,
        PropagatingError,
        TransientError,
    )

__all__ = [
    "BadRequestError",
    "CspGraphError",
    "CspScopeError",
    "ErrorClass",
    "NeedsPersonError",
    "PropagatingError",
    "TransientError",
]

_EXPORTS: dict[str, str] = {
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
        "errors",
    ),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
