"""Throttling arithmetic: the best time Graph's published budgets allow for a request plan.

Budgets (wire-facts §3), each multiplied by the emulator's ``throttling.scale`` (Graph's only;
Partner Center's limit has its own factor and the bench leaves it at the published 500 a minute)
and, as the emulator does, never below 1 unit per window:

* identity & access, per app+tenant: 3,500 / 5,000 / 8,000 RU per 10 s for a tenant with
  <50 / 50-500 / >500 users;
* identity & access, per app over every tenant: 150,000 RU per 20 s;
* Intune, per app+tenant: 2,000 requests per 20 s (per tenant over every app: 4,000);
* Graph as a whole, per app: 130,000 requests per 10 s, identity and Intune alike.

The emulator counts each budget in a sliding window (a fixed window carrying a fading share of
the previous one), which admits a full budget at once and then the budget's rate. A plan that
needs ``R`` units of a budget ``B`` per ``W`` seconds therefore needs at least
``max(0, R - B) / B * W`` seconds after the window its burst falls in: the burst is free, the rest
comes at the budget's rate. The windows are aligned to the emulator's clock, so that window's end
depends on when the run starts: no client starting at ``t0`` gets more than ``B`` through before
the end of the window holding ``t0``, nor more than ``B`` per window after it. The bound is
therefore ``(W - t0 mod W) + (R - B) / B * W`` when ``R > B``, with ``t0`` the world clock at the
run's first Graph request (``first_graph_at`` in the counters); without it, the phase-free
``(R - B) / B * W`` (a burst at the very end of a window), up to ``W`` lower. The plan's best time
is the largest of these over every budget it touches; the resource units and requests are what
the emulator answered, so the figure is for the plan the client actually sent.

Counted per tenant over every app: exact for the bench fleet, where each customer is served by
its one partner's app. Not modelled: the emulator charges a request dearer than a whole scaled
budget only that budget (a 2 RU request against a budget of 1.75 RU), which matters only at
scales where one request outgrows a tenant's budget; writes (the plans read only); ``$batch``
items (no plan batches).
"""

from __future__ import annotations

from typing import Any

IDENTITY_WINDOW = 10.0
APP_BUDGET, APP_WINDOW = 150_000.0, 20.0
INTUNE_BUDGET, INTUNE_WINDOW = 2_000.0, 20.0
GLOBAL_BUDGET, GLOBAL_WINDOW = 130_000.0, 10.0


def tenant_budget(users: int) -> float:
    if users < 50:
        return 3_500.0
    if users <= 500:
        return 5_000.0
    return 8_000.0


def scaled(budget: float, scale: float) -> float:
    """A published budget as the emulator applies it: × scale, at least 1 per window."""
    return max(budget * scale, 1.0)


def _wait(units: float, budget: float, window: float, first_at: float | None = None) -> float:
    """Least seconds from ``first_at`` (world clock) to get ``units`` of ``budget``/``window``."""
    if units <= budget:
        return 0.0
    rest = (units - budget) / budget * window
    if first_at is None:
        return rest
    return window - first_at % window + rest


def best_time(
    counters: dict[str, Any], customers: list[dict[str, Any]], scale: float = 1.0
) -> dict[str, Any]:
    """The lower bound on a run's wall time from the RU and requests it was answered."""
    users = {c["tenant_id"]: c["users"] for c in customers}
    first_at = counters.get("first_graph_at")
    worst: dict[str, Any] = {"seconds": 0.0, "scope": "none (every budget covers the plan)"}
    any_phase = 0.0
    total_ru = 0.0
    total_intune = 0.0

    def consider(units: float, budget: float, window: float, scope: str) -> None:
        nonlocal worst, any_phase
        any_phase = max(any_phase, _wait(units, budget, window))
        seconds = _wait(units, budget, window, first_at)
        if seconds > worst["seconds"]:
            if first_at is not None:
                scope += f", first request {first_at % window:.1f} s into a {window:.0f} s window"
            worst = {"seconds": seconds, "scope": scope}

    for tenant, row in counters.get("tenants", {}).items():
        ru = float(row.get("ru", 0.0))
        intune = float(row.get("intune", 0.0))
        total_ru += ru
        total_intune += intune
        budget = scaled(tenant_budget(users.get(tenant, 0)), scale)
        consider(ru, budget, IDENTITY_WINDOW, f"identity app+tenant {tenant} ({ru:.0f} RU)")
        consider(
            intune,
            scaled(INTUNE_BUDGET, scale),
            INTUNE_WINDOW,
            f"Intune app+tenant {tenant} ({intune:.0f} requests)",
        )
    for app, ru in counters.get("apps", {}).items():
        consider(
            float(ru),
            scaled(APP_BUDGET, scale),
            APP_WINDOW,
            f"identity per app {app} ({ru:.0f} RU)",
        )
    for app, requests in counters.get("app_requests", {}).items():
        consider(
            float(requests),
            scaled(GLOBAL_BUDGET, scale),
            GLOBAL_WINDOW,
            f"Graph per app {app} ({requests:.0f} requests)",
        )
    return {
        "seconds": round(worst["seconds"], 3),
        # The same bound for a run whose first burst lands at the very end of a window.
        "seconds_any_phase": round(any_phase, 3),
        "binding": worst["scope"],
        "resource_units": total_ru,
        "intune_requests": total_intune,
        "scale": scale,
    }
