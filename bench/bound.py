"""A run's lower bound on its wall time, from the waits the emulator actually applied.

No client can finish before the longest of:

* **its longest chain of dependent requests**: per customer, the requests that must follow one
  another — the Partner Center listing page that names it (the shortest such page is counted, a
  safe under-estimate), its sign-in requests (discovery, then the token), then its longest pull
  (a delta round's or a list's pages follow each other; a group's members follow the groups
  list) — each costing the latency the emulator applied to it (``/_emulator/latency/log``), plus
  the client's start-up before its first request. Only answers below 400 count: a 429 or a retry
  is a request the client chose to make again, not one the plan needs;
* **Graph's budget arithmetic** (:func:`bench.budgets.best_time`): Graph's budgets per tenant,
  per app and global for the requests the run was answered;
* **Partner Center's limit** (:func:`partner_center_bound`): each partner tenant's requests that
  counted against its 500 a minute, at that rate.

The bound is for the plan the client sent (a client that asks for fewer pages has a lower one),
computed for every run; the table prints it beside the wall time, with each part beside it and
when Graph's last answer ended (:func:`graph_end`): whether the client kept Graph busy, whatever
Partner Center held afterwards.
"""

from __future__ import annotations

import collections
import itertools
import math
import re
from typing import Any

from csp_emulator.partner_center.model import CUSTOMER_RATE_LIMIT, CUSTOMER_RATE_WINDOW
from csp_emulator.partner_center.routes import ROUTES as PARTNER_CENTER_ROUTES

# /v1.0/groups/{id}/members (the list plan's memberships, after the groups list).
_MEMBERS = re.compile(r"^/(?:v1\.0|beta)/groups/[^/]+/members")


def latency_log(control: Any) -> list[dict[str, Any]]:
    """Every wait the emulator applied since its log was last cleared (``control(method, path)``
    calls its control API)."""
    records: list[dict[str, Any]] = []
    after = 0
    while True:
        page = control("GET", f"/_emulator/latency/log?after={after}&limit=100000")
        records += page["value"]
        if not page["more"]:
            return records
        after = page["next_after"]


def chains(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per tenant: seconds of sign-in (login host), of its longest Graph chain, and which."""
    login: dict[str, float] = collections.defaultdict(float)
    pulls: dict[tuple[str, str], float] = collections.defaultdict(float)
    members: dict[str, dict[str, float]] = collections.defaultdict(
        lambda: collections.defaultdict(float)
    )
    for r in records:
        if r["status"] >= 400:
            continue
        tenant, seconds = r["tenant"], float(r["seconds"])
        if r["host"] == "login":
            login[tenant] += seconds
        elif r["host"] == "graph":
            path = r["path"]
            if _MEMBERS.match(path):
                members[tenant][path] += seconds
            else:
                pulls[(tenant, path)] += seconds
    out: dict[str, dict[str, Any]] = {}
    longest: dict[str, tuple[float, str]] = {}
    for (tenant, path), seconds in pulls.items():
        if "/groups" in path and members.get(tenant):
            seconds += max(members[tenant].values())  # members follow the groups list
            path += " + members"
        if seconds > longest.get(tenant, (0.0, ""))[0]:
            longest[tenant] = (seconds, path)
    for tenant, (seconds, path) in longest.items():
        out[tenant] = {"login": login.get(tenant, 0.0), "graph": seconds, "path": path}
    return out


def chain_bound(records: list[dict[str, Any]], startup_s: float) -> dict[str, Any]:
    """The longest chain of dependent requests, with start-up, as seconds and what it was."""
    listing = [float(r["seconds"]) for r in records if r["host"] == "partner_center"]
    first_page = min(listing) if listing else 0.0
    per_tenant = chains(records)
    worst: dict[str, Any] = {"seconds": startup_s, "tenant": None}
    for tenant, chain in per_tenant.items():
        total = startup_s + first_page + float(chain["login"]) + float(chain["graph"])
        if total > worst["seconds"]:
            worst = {
                "seconds": total,
                "tenant": tenant,
                "path": chain["path"],
                "graph_s": round(float(chain["graph"]), 3),
                "login_s": round(float(chain["login"]), 3),
            }
    worst["startup_s"] = round(startup_s, 3)
    worst["listing_s"] = round(first_page, 3)
    worst["seconds"] = round(worst["seconds"], 3)
    applied = [r for r in records if r["host"] == "graph"]
    worst["graph_waits"] = len(applied)
    worst["graph_wait_mean_s"] = (
        round(sum(float(r["seconds"]) for r in applied) / len(applied), 4) if applied else None
    )
    return worst


def chain_gaps(records: list[dict[str, Any]], chain: dict[str, Any]) -> dict[str, Any] | None:
    """Where the longest chain's time went: when its first request began (seconds after the
    run's first request) and the time between one answer's end and the next request's wait
    (the client's own delay: parsing, writing, waiting for a slot), summed."""
    tenant, path = chain.get("tenant"), str(chain.get("path", "")).removesuffix(" + members")
    if tenant is None or not records:
        return None
    mine = sorted(
        (
            r
            for r in records
            if r["tenant"] == tenant and r["host"] == "graph" and r["path"] == path
        ),
        key=lambda r: r["seq"],
    )
    if not mine:
        return None
    first = _first_at(records)
    gaps = [
        float(b["at"]) - (float(a["at"]) + float(a["seconds"])) for a, b in itertools.pairwise(mine)
    ]
    last = mine[-1]
    return {
        "starts_after_s": round(float(mine[0]["at"]) - first, 3),
        "ends_after_s": round(float(last["at"]) + float(last["seconds"]) - first, 3),
        "pages": len(mine),
        "gaps_s": round(sum(gaps), 3),
        "largest_gap_s": round(max(gaps), 3) if gaps else 0.0,
    }


def in_flight_peak(records: list[dict[str, Any]], host: str = "graph") -> int:
    """The most answers of ``host`` the emulator held at once (requests in flight, seen from the
    server)."""
    events: list[tuple[float, int]] = []
    for r in records:
        if r["host"] == host:
            events.append((float(r["at"]), 1))
            events.append((float(r["at"]) + float(r["seconds"]), -1))
    events.sort(key=lambda e: (e[0], e[1]))
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def _template(path: str) -> re.Pattern[str]:
    """A route's path template (``/v1/customers/{customer_id}``) as a pattern for whole paths."""
    return re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")


# The Partner Center routes that count against the partner's limit, read from the emulator's own
# route table (``rate_limited``) so the two cannot drift: the customer endpoints, not app consent
# (its own limit, not emulated) nor the domain check.
_RATE_LIMITED = tuple(
    (method, _template(route.path))
    for route in PARTNER_CENTER_ROUTES
    for method, operation in route.methods.items()
    if operation.rate_limited
)


def counts_against_limit(method: str, path: str) -> bool:
    """Whether a Partner Center request counts against the partner's requests a minute."""
    return any(method == m and pattern.match(path) for m, pattern in _RATE_LIMITED)


def partner_center_limit(settings: dict[str, Any]) -> dict[str, float] | None:
    """Partner Center's limit as the world applies it (the control API's ``/_emulator/settings``):
    the published 500 requests × ``partner_center_scale`` (whole, never below 1) per 60 s ×
    ``window_scale``; None when throttling is off."""
    throttling = settings.get("throttling", {})
    if not throttling.get("enabled", True):
        return None
    scale = float(throttling.get("partner_center_scale", 1.0))
    span = CUSTOMER_RATE_WINDOW * float(throttling.get("window_scale", 1.0))
    return {"limit": float(max(math.floor(CUSTOMER_RATE_LIMIT * scale), 1)), "window_s": span}


def partner_center_bound(
    records: list[dict[str, Any]], limit: dict[str, float] | None, startup_s: float
) -> dict[str, Any]:
    """The least wall time Partner Center's limit allows, per partner tenant; the largest.

    For each partner tenant (the log's ``tenant`` on the ``partner_center`` host), ``N`` is its
    answered (< 400) requests on the routes that count against the limit: a 429 was refused
    before it was counted, so it is not in ``N`` (a refused request costs the client time, not
    budget). With ``L`` requests per ``W`` seconds, the bound is::

        start-up + (ceil(N / L) - 1) × W + the latency applied to the last of the N

    Why: the emulator counts a true sliding window (a log of arrivals,
    ``partner_center.model.rate_limit``): no ``W`` seconds hold more than ``L`` admitted
    requests, so request ``k·L + 1`` is admitted at least ``k·W`` after the first, and the last
    one's answer is then held for its latency. Measured from the first request, so everything
    before the first Partner Center request but start-up is left out.
    """
    answered: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    refused: dict[str, int] = collections.defaultdict(int)
    for r in records:
        if r["host"] != "partner_center" or not counts_against_limit(r["method"], r["path"]):
            continue
        if r["status"] == 429:
            refused[r["tenant"]] += 1
        elif r["status"] < 400:
            answered[r["tenant"]].append(r)
    worst: dict[str, Any] = {"seconds": 0.0, "tenant": None}
    if limit is not None:
        worst.update(limit=limit["limit"], window_s=limit["window_s"])
    partners = []
    for tenant in sorted(answered.keys() | refused.keys()):
        mine = answered.get(tenant, [])
        row: dict[str, Any] = {
            "tenant": tenant,
            "answered": len(mine),
            "refused_429": refused[tenant],
        }
        partners.append(row)
        if limit is None or not mine:
            continue
        paced = (math.ceil(len(mine) / limit["limit"]) - 1) * limit["window_s"]
        last = max(mine, key=lambda r: r["seq"])
        row["seconds"] = round(startup_s + paced + float(last["seconds"]), 3)
        if row["seconds"] > worst["seconds"]:
            worst.update(
                row, paced_s=round(paced, 3), last_latency_s=round(float(last["seconds"]), 3)
            )
    worst["partners"] = partners
    return worst


def _first_at(records: list[dict[str, Any]]) -> float:
    return min(float(r["at"]) for r in records)


def graph_end(records: list[dict[str, Any]], chain: dict[str, Any]) -> dict[str, Any] | None:
    """When the run's last Graph answer ended, seconds after its first request, and that as a
    multiple of the chain bound less start-up (both counted from the first request): near 1×,
    the client kept Graph as busy as its longest chain allows, whatever came after."""
    ends = [float(r["at"]) + float(r["seconds"]) for r in records if r["host"] == "graph"]
    if not ends:
        return None
    seconds = max(ends) - _first_at(records)
    chain_s = float(chain["seconds"]) - float(chain.get("startup_s", 0.0))
    return {
        "ends_after_s": round(seconds, 3),
        "times_chain": round(seconds / chain_s, 2) if chain_s > 0 else None,
    }


# The hosts as the bench's counters name them (bench/serve.py), as the tables name them.
HOSTS = {"graph": "graph", "partner_center": "partner_center", "login": "authority_host"}


def per_host(counters: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Requests and 429s per host, from the bench's counters on the emulator."""
    return {
        name: {
            "requests": int(counters.get("requests", {}).get(key, 0)),
            "throttled_429": int(counters.get("statuses", {}).get(key, {}).get("429", 0)),
        }
        for name, key in HOSTS.items()
    }


def throttled(hosts: dict[str, dict[str, int]]) -> tuple[int, int]:
    """429s and requests over every host."""
    return (
        sum(h["throttled_429"] for h in hosts.values()),
        sum(h["requests"] for h in hosts.values()),
    )


def lower_bound(
    chain: dict[str, Any], budgets: dict[str, Any], partner_center: dict[str, Any]
) -> dict[str, Any]:
    """The largest of the chain bound, Graph's budgets and Partner Center's limit, and which one
    it is (the chain on a tie)."""
    pc = partner_center
    parts = [
        (float(chain["seconds"]), "longest chain of dependent requests"),
        (float(budgets["seconds"]), f"Graph's budgets: {budgets['binding']}"),
        (
            float(pc["seconds"]),
            f"Partner Center's limit: {pc.get('answered', 0):,} requests at "
            f"{pc.get('limit', 0):.0f} per {pc.get('window_s', 0):.0f} s, partner tenant "
            f"{pc.get('tenant')}",
        ),
    ]
    seconds, by = max(parts, key=lambda part: part[0])
    return {"seconds": seconds, "by": by}


def of_run(
    records: list[dict[str, Any]],
    startup_s: float,
    budgets: dict[str, Any],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """A run's lower bound and each of its parts, from its latency log, Graph's budget arithmetic
    and the world's settings (``/_emulator/settings``)."""
    chain = chain_bound(records, startup_s)
    pc = partner_center_bound(records, partner_center_limit(settings), startup_s)
    return {
        **lower_bound(chain, budgets, pc),
        "chain": chain,
        "budgets": budgets,
        "partner_center": pc,
        "graph_end": graph_end(records, chain),
    }
