"""The benchmark's lower bound (bench/bound.py) on small synthetic latency logs: which of the
chain, Graph's budgets and Partner Center's limit sets it, and the Partner Center arithmetic
checked against the emulator's own rate window."""

from __future__ import annotations

import math
from typing import Any

from bench import bound
from bench.report_realistic import targets

from csp_emulator.partner_center.model import (
    CUSTOMER_RATE_LIMIT,
    CUSTOMER_RATE_WINDOW,
    PartnerCenterError,
    PartnerCenterState,
    rate_limit,
)
from csp_emulator.world.worldfile import demo_world_data, load_world_data

PARTNER, OTHER_PARTNER = "partner-eu", "partner-us"
CUSTOMER = "customer-1"
NO_BUDGETS = {"seconds": 0.0, "binding": "none (every budget covers the plan)"}
# 500 a minute × 0.01: five requests per 60 s, so a few records make it bind.
FIVE_A_MINUTE = {"throttling": {"enabled": True, "partner_center_scale": 0.01}}


class Log:
    """A latency log as ``/_emulator/latency/log`` serves it, built request by request."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def add(
        self,
        host: str,
        tenant: str,
        path: str,
        *,
        at: float,
        seconds: float = 0.5,
        status: int = 200,
        method: str = "GET",
    ) -> Log:
        self.records.append(
            {
                "seq": len(self.records) + 1,
                "host": host,
                "tenant": tenant,
                "method": method,
                "path": path,
                "status": status,
                "objects": 0,
                "seconds": seconds,
                "slow": False,
                "at": at,
            }
        )
        return self

    def customer_gets(
        self, partner: str, count: int, *, start: float, status: int = 200, seconds: float = 0.5
    ) -> Log:
        """``count`` of Partner Center's by-id customer GETs (the DAP question), a second apart."""
        for i in range(count):
            self.add(
                "partner_center",
                partner,
                f"/v1/customers/c{i}",
                at=start + i,
                status=status,
                seconds=seconds,
            )
        return self

    def users_delta(self, tenant: str, pages: int, *, start: float, seconds: float = 1.0) -> Log:
        """A delta round of ``pages`` pages, one after the other."""
        for i in range(pages):
            self.add("graph", tenant, "/v1.0/users/delta", at=start + i * seconds, seconds=seconds)
        return self


def test_a_partner_tenant_over_its_limit_sets_the_bound_with_the_chain_still_shown() -> None:
    log = Log().customer_gets(PARTNER, 12, start=0.0).users_delta(CUSTOMER, 10, start=1.0)
    log.records[11]["seconds"] = 0.75  # the last answered by-id GET

    run = bound.of_run(log.records, 0.5, NO_BUDGETS, FIVE_A_MINUTE)

    # 12 requests at 5 per 60 s: the 11th is admitted 120 s after the first at the earliest.
    assert run["partner_center"]["seconds"] == 0.5 + 120.0 + 0.75
    assert run["partner_center"]["tenant"] == PARTNER
    assert run["seconds"] == run["partner_center"]["seconds"]
    assert run["by"].startswith("Partner Center's limit: 12 requests at 5 per 60 s")
    assert run["chain"]["seconds"] == 0.5 + 0.5 + 10.0  # start-up, listing, the delta round
    assert run["chain"]["path"] == "/v1.0/users/delta"


def test_a_run_whose_longest_chain_outlasts_partner_center_is_bound_by_the_chain() -> None:
    log = Log().customer_gets(PARTNER, 4, start=0.0).users_delta(CUSTOMER, 30, start=1.0)

    run = bound.of_run(log.records, 0.5, NO_BUDGETS, FIVE_A_MINUTE)

    assert run["by"] == "longest chain of dependent requests"
    assert run["seconds"] == run["chain"]["seconds"] == 0.5 + 0.5 + 30.0
    # Under the limit nothing is paced: start-up and the last answer's latency only.
    assert run["partner_center"]["seconds"] == 0.5 + 0.5
    assert run["partner_center"]["paced_s"] == 0.0


def test_graphs_budgets_set_the_bound_when_they_are_the_longest() -> None:
    log = Log().customer_gets(PARTNER, 4, start=0.0).users_delta(CUSTOMER, 3, start=1.0)
    budgets = {"seconds": 40.0, "binding": "identity app+tenant customer-1 (9000 RU)"}

    run = bound.of_run(log.records, 0.5, budgets, FIVE_A_MINUTE)

    assert (run["seconds"], run["by"]) == (40.0, f"Graph's budgets: {budgets['binding']}")
    assert run["budgets"] is budgets


def test_answers_of_429_are_not_counted_against_partner_centers_limit() -> None:
    log = Log().customer_gets(PARTNER, 5, start=0.0)
    log.customer_gets(PARTNER, 20, start=5.0, status=429)

    pc = bound.partner_center_bound(log.records, bound.partner_center_limit(FIVE_A_MINUTE), 0.0)

    assert (pc["answered"], pc["refused_429"], pc["paced_s"]) == (5, 20, 0.0)
    assert pc["seconds"] == 0.5  # the last answered request's latency, nothing paced


def test_only_the_routes_the_emulator_rate_limits_count_against_the_limit() -> None:
    assert bound.counts_against_limit("GET", "/v1/customers")
    assert bound.counts_against_limit("GET", "/v1/customers/3f1a")
    assert bound.counts_against_limit("GET", "/v1/customers/relationshiprequests")
    assert not bound.counts_against_limit("GET", "/v1/customers/3f1a/applicationconsents")
    assert not bound.counts_against_limit("GET", "/v1/domains/contoso.onmicrosoft.com")

    log = Log()
    for i in range(20):
        log.add("partner_center", PARTNER, f"/v1/domains/d{i}.example", at=float(i))
    pc = bound.partner_center_bound(log.records, bound.partner_center_limit(FIVE_A_MINUTE), 0.0)
    assert pc["seconds"] == 0.0 and pc["tenant"] is None


def test_each_partner_tenant_is_paced_by_its_own_limit() -> None:
    log = Log().customer_gets(PARTNER, 11, start=0.0).customer_gets(OTHER_PARTNER, 6, start=0.0)

    pc = bound.partner_center_bound(log.records, bound.partner_center_limit(FIVE_A_MINUTE), 0.0)

    # 11 at 5 a minute: 120 s; not the 17 requests of both partners together (180 s).
    assert (pc["tenant"], pc["seconds"]) == (PARTNER, 120.0 + 0.5)
    seconds = {p["tenant"]: p["seconds"] for p in pc["partners"]}
    assert seconds == {PARTNER: 120.5, OTHER_PARTNER: 60.0 + 0.5}


def test_partner_centers_limit_is_the_published_one_times_the_worlds_scale() -> None:
    published = {"throttling": {"enabled": True, "partner_center_scale": 1.0}}
    assert bound.partner_center_limit(published) == {"limit": 500.0, "window_s": 60.0}
    tiny = {"throttling": {"enabled": True, "partner_center_scale": 0.0001}}
    assert bound.partner_center_limit(tiny) == {"limit": 1.0, "window_s": 60.0}  # never below 1
    compressed = {
        "throttling": {"enabled": True, "partner_center_scale": 0.01, "window_scale": 0.05}
    }
    assert bound.partner_center_limit(compressed) == {"limit": 5.0, "window_s": 3.0}
    assert bound.partner_center_limit({"throttling": {"enabled": False}}) is None

    log = Log().customer_gets(PARTNER, 12, start=0.0).users_delta(CUSTOMER, 3, start=1.0)
    run = bound.of_run(log.records, 0.0, NO_BUDGETS, {"throttling": {"enabled": False}})
    assert run["by"] == "longest chain of dependent requests"
    assert run["partner_center"]["seconds"] == 0.0


def admissions(limit: int, window: float, count: int, first_at: float) -> list[float]:
    """When a client that asks again the moment it may is admitted by the emulator's Partner
    Center limit (its own check, ``partner_center.model.rate_limit``, on a world whose clock the
    test moves)."""
    world = load_world_data(demo_world_data(1, seed=11), source="<bound test>")
    world.settings.throttling.partner_center_scale = limit / CUSTOMER_RATE_LIMIT
    world.settings.throttling.window_scale = window / CUSTOMER_RATE_WINDOW
    partner = world.tenant("partner.com")
    state = PartnerCenterState()
    world.clock.advance(first_at)
    admitted: list[float] = []
    while len(admitted) < count:
        try:
            rate_limit(state, world, partner)
        except PartnerCenterError:
            world.clock.advance(0.25)
        else:
            admitted.append(world.clock.now())
    return admitted


def test_the_partner_center_bound_is_never_above_what_the_emulators_window_admits() -> None:
    limit, window = 5, 60.0
    for first_at in (0.0, 17.3, 59.999):
        for count in range(1, 23):
            admitted = admissions(limit, window, count, first_at)
            spread = admitted[-1] - admitted[0]
            paced = (math.ceil(count / limit) - 1) * window
            assert spread >= paced - 1e-6, (first_at, count, spread, paced)
            # ... and a greedy client gets there within the step it polls at.
            assert spread <= paced + 0.25 + 1e-6, (first_at, count, spread, paced)


def test_graph_pulls_end_is_counted_from_the_first_request_against_the_chain() -> None:
    log = Log().customer_gets(PARTNER, 12, start=0.0).users_delta(CUSTOMER, 10, start=1.0)
    log.add("graph", "customer-2", "/v1.0/groups/delta", at=60.0, seconds=2.0)

    run = bound.of_run(log.records, 0.5, NO_BUDGETS, FIVE_A_MINUTE)

    # The chain less start-up: listing 0.5 s + 10 pages of 1 s; the last Graph answer ends at 62 s.
    assert run["graph_end"] == {"ends_after_s": 62.0, "times_chain": round(62.0 / 10.5, 2)}


def test_the_429_target_counts_every_hosts_429s() -> None:
    counters = {
        "requests": {"graph": 900, "partner_center": 80, "authority_host": 20},
        "statuses": {"graph": {"200": 900}, "partner_center": {"200": 50, "429": 30}},
    }
    hosts = bound.per_host(counters)
    assert hosts["partner_center"] == {"requests": 80, "throttled_429": 30}
    assert hosts["login"] == {"requests": 20, "throttled_429": 0}
    assert bound.throttled(hosts) == (30, 1000)

    sync = {
        "row": "cspgraph",
        "ok": True,
        "problems": [],
        "wall_s": 10.0,
        "bound": {"seconds": 9.0, "by": "longest chain of dependent requests"},
        "load_before": [0.5, 0.5, 0.5],
        "requests_graph": 900,
        "throttled_429": 0,  # Graph's own: none
        "hosts": hosts,
    }
    results = {"machine": {"nproc": 2}, "fleets": {"200": {"runs": [sync]}}}

    target = next(t for t in targets(results) if "429" in t["target"])

    assert "every host" in target["target"]
    assert target["status"] == "MISSED"  # 30 of 1,000 is 3 %, all of them Partner Center's
    assert target["measured"].startswith("3.00 % (30 of 1,000")
