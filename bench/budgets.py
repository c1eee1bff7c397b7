"""Throttling arithmetic: the best time Graph's published budgets allow for a request plan.

Budgets (wire-facts §3), each multiplied by the emulator's ``throttling.scale``:

* identity & access, per app+tenant: 3,500 / 5,000 / 8,000 RU per 10 s for a tenant with
  <50 / 50-500 / >500 users;
* identity & access, per app over every tenant: 150,000 RU per 20 s;
* Intune, per app+tenant: 2,000 requests per 20 s.

The emulator counts each budget in a sliding window (a fixed window carrying a fading share of
the previous one), which admits a full budget at once and then the budget's rate. A plan that
needs ``R`` units of a budget ``B`` per ``W`` seconds therefore needs at least
``max(0, R - B) / B * W`` seconds: the burst is free, the rest comes at the budget's rate (and a
client that starts late in a window waits up to ``W`` more). The plan's best time is the largest
of these over every budget it touches; the resource units are what the emulator answered, so the
figure is for the plan the client actually sent.
"""

from __future__ import annotations

from typing import Any

IDENTITY_WINDOW = 10.0
APP_BUDGET, APP_WINDOW = 150_000.0, 20.0
INTUNE_BUDGET, INTUNE_WINDOW = 2_000.0, 20.0


def tenant_budget(users: int) -> float:
    if users < 50:
        return 3_500.0
    if users <= 500:
        return 5_000.0
    return 8_000.0


def _wait(units: float, budget: float, window: float) -> float:
    return max(0.0, units - budget) / budget * window


def best_time(
    counters: dict[str, Any], customers: list[dict[str, Any]], scale: float = 1.0
) -> dict[str, Any]:
    """The lower bound on a run's wall time from the RU and Intune requests it was answered."""
    users = {c["tenant_id"]: c["users"] for c in customers}
    worst: dict[str, Any] = {"seconds": 0.0, "scope": "none (every budget covers the plan)"}
    total_ru = 0.0
    total_intune = 0.0
    for tenant, row in counters.get("tenants", {}).items():
        ru = float(row.get("ru", 0.0))
        intune = float(row.get("intune", 0.0))
        total_ru += ru
        total_intune += intune
        budget = tenant_budget(users.get(tenant, 0)) * scale
        for seconds, scope in (
            (_wait(ru, budget, IDENTITY_WINDOW), f"identity app+tenant {tenant} ({ru:.0f} RU)"),
            (
                _wait(intune, INTUNE_BUDGET * scale, INTUNE_WINDOW),
                f"Intune app+tenant {tenant} ({intune:.0f} requests)",
            ),
        ):
            if seconds > worst["seconds"]:
                worst = {"seconds": seconds, "scope": scope}
    for app, ru in counters.get("apps", {}).items():
        seconds = _wait(float(ru), APP_BUDGET * scale, APP_WINDOW)
        if seconds > worst["seconds"]:
            worst = {"seconds": seconds, "scope": f"identity per app {app} ({ru:.0f} RU)"}
    return {
        "seconds": round(worst["seconds"], 3),
        "binding": worst["scope"],
        "resource_units": total_ru,
        "intune_requests": total_intune,
        "scale": scale,
    }
