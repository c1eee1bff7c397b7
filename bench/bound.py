"""A run's lower bound on its wall time, from the waits the emulator actually applied.

No client can finish before the longest of:

* **its longest chain of dependent requests**: per customer, the requests that must follow one
  another — the Partner Center listing page that names it (the shortest such page is counted, a
  safe under-estimate), its sign-in requests (discovery, then the token), then its longest pull
  (a delta round's or a list's pages follow each other; a group's members follow the groups
  list) — each costing the latency the emulator applied to it (``/_emulator/latency/log``), plus
  the client's start-up before its first request. Only answers below 400 count: a 429 or a retry
  is a request the client chose to make again, not one the plan needs;
* **the budget arithmetic** (:func:`bench.budgets.best_time`): Graph's budgets per tenant, per app
  and global for the requests the run was answered.

The bound is for the plan the client sent (a client that asks for fewer pages has a lower one),
computed for every run; the table prints it beside the wall time.
"""

from __future__ import annotations

import collections
import itertools
import re
from typing import Any

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
    first = min(float(r["at"]) for r in records)
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


def lower_bound(chain: dict[str, Any], budgets: dict[str, Any]) -> dict[str, Any]:
    """The larger of the chain bound and the budget bound, and which one it is."""
    if chain["seconds"] >= budgets["seconds"]:
        return {"seconds": chain["seconds"], "by": "longest chain of dependent requests"}
    return {"seconds": budgets["seconds"], "by": f"budgets: {budgets['binding']}"}
