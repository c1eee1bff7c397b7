"""Microsoft Graph's throttling model: resource-unit costs, budgets per scope, and 429 answers.

The budgets are the published ones (wire-facts §3), their windows multiplied by
``settings.throttling.window_scale`` (1 unless a test compresses time), each multiplied by
``settings.throttling.scale`` (Graph's only: Partner Center's limit has its own
``partner_center_scale``, see ``partnercenter.rate_limit``) and never below 1:

* identity & access, per app+tenant: 3,500 / 5,000 / 8,000 RU per 10 s for a small (<50 users),
  medium (50-500) or large (>500) tenant; writes 3,000 per 150 s;
* identity & access, per app over all tenants: 150,000 RU per 20 s; writes 70,000 per 5 min;
* identity & access, per tenant over all apps: writes 18,000 per 5 min;
* Graph as a whole, per app: 130,000 requests per 10 s;
* Intune, per app+tenant: 2,000 requests per 20 s (writes 200); per tenant 4,000 (writes 400).

Every budget is a *sliding window counter* (a fixed window that carries a share of the previous
window's usage: ``previous * (1 - elapsed fraction) + current``). It costs O(1) time and three
numbers per budget, never lets a burst at a window edge double the rate the way plain fixed
windows do, and gives a closed-form answer to "when does this request fit?", which is what
``Retry-After`` must say. A request is checked against every budget it falls under before any is
charged, so a rejected request consumes nothing.

Time is the world clock, so tests advance it instead of sleeping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from csp_emulator.world.model import Tenant, ThrottleSettings

# RU cost of a GET by what it reads (wire-facts §3); anything not listed costs 1.
BASE_COSTS: dict[str, int] = {
    "users": 2,
    "applications": 2,
    "memberOf": 2,
    "members": 3,
    "subscribedSkus": 3,
    "getByIds": 3,
    "transitiveMembers": 5,
    "other": 1,
}

IDENTITY = "identity"
INTUNE = "intune"

RESOURCE_UNIT_EXCEEDED = "ResourceUnitLimitExceeded"
WRITE_EXCEEDED = "WriteLimitExceeded"

# The comparison slack: costs are integers but the carried share of the previous window is not.
_EPSILON = 1e-9


def resource_cost(
    method: str, path_kind: str, *, has_select: bool, top: int | None, expand: bool = False
) -> int:
    """RU cost of one request, as Graph reports it in ``x-ms-resource-unit``.

    ``POST directoryObjects/getByIds`` is a read sent as a POST, so it is priced as a read; every
    other non-GET is a write at 1 RU (the caller also passes ``write=True`` to :meth:`charge`).
    """
    if path_kind not in BASE_COSTS:
        raise ValueError(f"unknown path kind {path_kind!r}; expected one of {sorted(BASE_COSTS)}")
    if method.upper() not in ("GET", "HEAD") and path_kind != "getByIds":
        return 1
    cost = BASE_COSTS[path_kind]
    if has_select:
        cost -= 1
    if expand:
        cost += 1
    if top is not None and top < 20:
        cost -= 1
    return max(cost, 1)


def tenant_ru_budget(user_count: int) -> int:
    """RU per 10 s for one app in one tenant, by the tenant's size."""
    if user_count < 50:
        return 3_500
    if user_count <= 500:
        return 5_000
    return 8_000


class SlidingWindow:
    """One budget's usage: the current fixed window plus a fading share of the previous one."""

    __slots__ = ("_current", "_index", "_previous")

    def __init__(self) -> None:
        self._index = -2  # no window yet: the first roll finds no previous window to carry
        self._current = 0.0
        self._previous = 0.0

    def _fraction(self, now: float, window: float) -> float:
        """Roll to the window holding ``now``; how far into it ``now`` is (0 to 1)."""
        index = math.floor(now / window)
        if index != self._index:
            self._previous = self._current if index == self._index + 1 else 0.0
            self._current = 0.0
            self._index = index
        return now / window - index

    def usage(self, now: float, window: float) -> float:
        fraction = self._fraction(now, window)  # rolls first: the carried share may change
        return self._previous * (1.0 - fraction) + self._current

    def add(self, amount: float) -> None:
        """Charge ``amount``; call right after :meth:`usage` for the same ``now``."""
        self._current += amount

    def wait(self, now: float, window: float, cost: float, limit: float) -> float:
        """Seconds until ``cost`` fits under ``limit`` if nothing else is charged meanwhile."""
        fraction = self._fraction(now, window)
        room = limit - cost - self._current
        if room >= 0:
            if self._previous <= 0 or self._previous * (1.0 - fraction) <= room:
                return 0.0
            # The previous window's share fades linearly; it fits once the share drops to room.
            return max(0.0, (1.0 - room / self._previous - fraction) * window)
        # Not even this window's own usage leaves room: wait for the next window, where this one
        # becomes the fading share.
        fits_at = max(0.0, 1.0 - (limit - cost) / self._current) if self._current > 0 else 0.0
        return (1.0 - fraction) * window + fits_at * window


@dataclass
class Verdict:
    allowed: bool
    retry_after: float | None
    headers: dict[str, str]


@dataclass(frozen=True)
class _Budget:
    key: tuple[str, ...]
    limit: float  # before scaling
    window: float  # seconds
    scope: str  # "Tenant_Application" | "Tenant" | "Application"
    kind: str  # "Read" | "Write" | "ReadWrite"
    information: str
    amount: float  # what this request costs against it (RU, or 1 for request and write counts)


@dataclass
class Throttle:
    """Every budget of one emulated Graph, checked and charged per request."""

    settings: ThrottleSettings
    now: Callable[[], float]
    _windows: dict[tuple[str, ...], SlidingWindow] = field(default_factory=dict)

    def charge(self, app_id: str, tenant: Tenant, family: str, cost: int, write: bool) -> Verdict:
        """Admit or refuse one request of ``cost`` RU from ``app_id`` in ``tenant``.

        ``family`` is ``"identity"`` (identity & access: users, groups, devices, organization,
        applications, ...) or ``"intune"``; Intune budgets count requests, not RU, and Intune
        answers carry no ``x-ms-resource-unit``.
        """
        if family not in (IDENTITY, INTUNE):
            raise ValueError(
                f"unknown throttling family {family!r}; expected 'identity' or 'intune'"
            )
        headers: dict[str, str] = {}
        if family == IDENTITY:
            headers["x-ms-resource-unit"] = str(cost)
        if not self.settings.enabled:
            return Verdict(True, None, headers)
        scale, stretch = self.settings.scale, self.settings.window_scale
        now = self.now()
        budgets = self._budgets(app_id, tenant, family, cost, write)
        worst_share = 0.0
        refused: list[tuple[float, _Budget]] = []
        for budget in budgets:
            limit = max(budget.limit * scale, 1.0)
            # A request dearer than a whole (scaled-down) budget needs all of it, not the
            # impossible: it waits for an idle window instead of being refused forever.
            amount = min(budget.amount, limit)
            window = self._windows.get(budget.key)
            if window is None:
                window = self._windows[budget.key] = SlidingWindow()
            seconds = budget.window * stretch
            used = window.usage(now, seconds) + amount
            worst_share = max(worst_share, used / limit)
            if used > limit + _EPSILON:
                refused.append((window.wait(now, seconds, amount, limit), budget))
        if worst_share > 0.8:
            headers["x-ms-throttle-limit-percentage"] = f"{min(worst_share, 1.8):.1f}"
        if refused:
            wait, budget = max(refused, key=lambda pair: pair[0])
            # Rounded up to the millisecond, so a client that waits exactly this long fits.
            retry_after = max(math.ceil(wait * 1000) / 1000, 0.001)
            headers["Retry-After"] = _decimal(retry_after)
            if family == IDENTITY:
                headers["x-ms-throttle-scope"] = (
                    f"{budget.scope}/{budget.kind}/{app_id}/{tenant.id}"
                )
                headers["x-ms-throttle-information"] = budget.information
            return Verdict(False, retry_after, headers)
        for budget in budgets:
            limit = max(budget.limit * scale, 1.0)
            self._windows[budget.key].add(min(budget.amount, limit))
        return Verdict(True, None, headers)

    def _budgets(
        self, app_id: str, tenant: Tenant, family: str, cost: int, write: bool
    ) -> list[_Budget]:
        ru, writes = RESOURCE_UNIT_EXCEEDED, WRITE_EXCEEDED
        # Graph's global per-app request budget; Graph documents no scope header for it, so the
        # emulator names it as an application-wide read/write budget.
        out = [_Budget(("graph", app_id), 130_000, 10, "Application", "ReadWrite", ru, 1)]
        if family == IDENTITY:
            size_budget = tenant_ru_budget(len(tenant.objects["users"]))
            out += [
                _Budget(
                    ("ta", app_id, tenant.id), size_budget, 10, "Tenant_Application", "ReadWrite",
                    ru, cost,
                ),
                _Budget(("a", app_id), 150_000, 20, "Application", "ReadWrite", ru, cost),
            ]  # fmt: skip
            if write:
                out += [
                    _Budget(("taw", app_id, tenant.id), 3_000, 150, "Tenant_Application",
                            "Write", writes, 1),
                    _Budget(("aw", app_id), 70_000, 300, "Application", "Write", writes, 1),
                    _Budget(("tw", tenant.id), 18_000, 300, "Tenant", "Write", writes, 1),
                ]  # fmt: skip
        else:
            out += [
                _Budget(("it", app_id, tenant.id), 2_000, 20, "Tenant_Application", "ReadWrite",
                        ru, 1),
                _Budget(("itt", tenant.id), 4_000, 20, "Tenant", "ReadWrite", ru, 1),
            ]  # fmt: skip
            if write:
                out += [
                    _Budget(("itw", app_id, tenant.id), 200, 20, "Tenant_Application", "Write",
                            writes, 1),
                    _Budget(("ittw", tenant.id), 400, 20, "Tenant", "Write", writes, 1),
                ]  # fmt: skip
        return out


def _decimal(seconds: float) -> str:
    """Graph's decimal Retry-After: ``2.128``, ``0.5``, ``3``."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def throttled_response_body(request_id: str, client_request_id: str, date: str) -> dict[str, Any]:
    """Graph's 429 body (wire-facts §3); ``date`` is Graph's zone-less form, 2020-08-18T12:51:51."""
    return {
        "error": {
            "code": "TooManyRequests",
            "message": "Please retry again later.",
            "innerError": {
                "code": "429",
                "date": date,
                "message": "Please retry after",
                "request-id": request_id,
                "status": "429",
                "client-request-id": client_request_id,
            },
        }
    }
