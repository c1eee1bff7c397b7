"""The Graph client's in-flight window, sized from Graph's budgets (:mod:`cspgraph.http.inflight`).

The window's Little's-law target needs the request rate the budgets allow. Graph's budgets that
bind a fleet as a whole are the app-wide ones (wire-facts §3): 130,000 requests per 10 s for the
app over all of Graph, and 150,000 resource units per 20 s for identity reads; each tenant's own
budget is paced by the limiter per tenant and does not limit how many tenants are in flight. The
limiter books at most ``STEADY_SHARE`` of a budget in steady state (its default utilisation), so
that is the rate the window aims at.

The rate is read from the limiter's budgets as configured (``budgets`` and ``scale``, the same
figures it books against); what the limiter learns from 429s is not read back: the window cuts
itself on 429s (:class:`~cspgraph.http.inflight.InFlightWindow`), so it follows the same signal
without reaching into the limiter's state (which may live in another process: a shared backend).
"""

from __future__ import annotations

from cspgraph.graph.limits import GraphBudgets, Limiter
from cspgraph.http.inflight import InFlightWindow

# The limiter's default utilisation: the share of a budget it books in steady state.
STEADY_SHARE = 0.8
# Resource units of an average fleet read: a delta or list page with $select costs 1 RU (2 for
# users without it, 3 for memberships); the mean of the sync's plan is about 1.2 (measured from
# the emulator's x-ms-resource-unit answers in the bench), 1.5 leaves room.
UNITS_PER_REQUEST = 1.5
# Requests in flight at most when nothing else bounds them: the connection pool's size. Each
# in flight holds a TLS connection (~100 KB resident with OpenSSL's state and the read buffer),
# which the window's memory bound (answer bytes) does not see: at 1,024, a 5,000-customer sync
# whose customers no longer waited for Partner Center opened ~1,480 TLS connections (tracemalloc)
# and peaked at 404 MB against 287 MB before. Little's law asks ~100 on average there (35,178
# requests x 0.37 s in a 123 s chain bound); 512 leaves five times that.
DEFAULT_MAX_IN_FLIGHT = 512


def budget_rate(limiter: Limiter) -> float | None:
    """Requests a second the app-wide budgets allow in steady state; None without budgets
    (:class:`~cspgraph.graph.limits.NoLimiter`: the window then opens up to its cap)."""
    # Any limiter that books against Graph's budgets says which (GraphLimiter, and the shared
    # RedisLimiter of cspgraph.distributed); one without (NoLimiter) sets no rate.
    budgets = getattr(limiter, "budgets", None)
    scale = getattr(limiter, "scale", None)
    if not isinstance(budgets, GraphBudgets) or not isinstance(scale, int | float):
        return None
    everything = budgets.global_app.amount * scale / budgets.global_app.window
    identity = budgets.identity_app.amount * scale / budgets.identity_app.window
    return STEADY_SHARE * min(everything, identity / UNITS_PER_REQUEST)


def graph_window(limiter: Limiter, cap: int = DEFAULT_MAX_IN_FLIGHT) -> InFlightWindow:
    """An in-flight window whose target follows ``limiter``'s budgets, up to ``cap``."""
    return InFlightWindow(cap, rate=lambda: budget_rate(limiter))
