"""The benchmark fleet: a world file of mixed-size customers, and what it holds.

Sizes follow Graph's own throttling classes (wire-facts §3): small tenants (<50 users), medium
(50-500) and large (>500), in proportions that give about 40,000 directory objects and 8,000
managed devices for 200 customers. The fleet is deterministic for a seed, so two runs of the
benchmark pull the same world.
"""

from __future__ import annotations

import math
import random
from typing import Any

from csp_emulator.world.worldfile import DEMO_PARTNERS, demo_world_data

# (share of customers, lowest and highest user count); sizes are log-uniform within a class.
SIZE_MIX = (
    (0.55, 5, 49),  # S
    (0.37, 50, 500),  # M
    (0.08, 501, 1000),  # L
)


def customer_sizes(customers: int, seed: int) -> list[int]:
    """User counts, one per customer: the mix above, shuffled deterministically."""
    rng = random.Random(f"bench-fleet/{seed}")

    def draw(low: int, high: int) -> int:
        return round(math.exp(rng.uniform(math.log(low), math.log(high))))

    sizes: list[int] = []
    for share, low, high in SIZE_MIX:
        sizes += [draw(low, high) for _ in range(round(customers * share))]
    while len(sizes) < customers:
        sizes.append(draw(SIZE_MIX[0][1], SIZE_MIX[0][2]))
    sizes = sizes[:customers]
    rng.shuffle(sizes)
    return sizes


def fleet_world_data(
    customers: int = 200,
    *,
    seed: int = 11,
    throttling: bool = False,
    throttle_scale: float = 1.0,
    partner_center_scale: float = 1.0,
) -> dict[str, Any]:
    """The demo world's two partners (NA and EU apps) with ``customers`` generated customers.

    ``throttle_scale`` multiplies Graph's budgets only; Partner Center keeps its published limit
    unless ``partner_center_scale`` says otherwise.
    """
    data = demo_world_data(0, seed, gdap=False)  # the DAP fleet: app-only tokens everywhere
    data["settings"]["throttling"] = {
        "enabled": throttling,
        "scale": throttle_scale,
        "partner_center_scale": partner_center_scale,
    }
    rng = random.Random(f"bench-regions/{seed}")
    for i, users in enumerate(customer_sizes(customers, seed)):
        region = "NA" if rng.random() < 0.6 else "EU"
        devices = int(users * 0.4)
        data["tenant"].append(
            {
                "domain": f"bench{i:05d}.onmicrosoft.com",
                "display_name": f"Bench Customer {i:05d}",
                "region": region,
                "country": "US" if region == "NA" else "DE",
                "kind": "customer",
                "partner": DEMO_PARTNERS[region]["domain"],
                "generate": {
                    "users": users,
                    "groups": max(2, users // 25),
                    "devices": devices,
                    "managed_devices": int(devices * 0.72),
                    "seed": seed * 100_003 + i,
                },
            }
        )
    return data


# What a full pull of one customer returns, by the name the runners report.
OBJECT_KINDS = ("users", "groups", "devices", "organization", "managedDevices")
COUNT_KEYS = (*OBJECT_KINDS, "members")


def expected_counts(world: Any) -> dict[str, Any]:
    """Per customer and in all: the objects a complete pull must return, read off the world.

    ``members`` counts (group, member) links. Customers without an Intune licence have no
    managed devices to pull.
    """
    per_tenant: dict[str, dict[str, int]] = {}
    for tenant in world.tenants.values():
        if tenant.kind != "customer":
            continue
        objects = tenant.objects
        per_tenant[tenant.id] = {
            "users": len(objects["users"]),
            "groups": len(objects["groups"]),
            "devices": len(objects["devices"]),
            "organization": 1,
            "managedDevices": len(objects["managedDevices"]) if tenant.intune_licensed else 0,
            "members": sum(len(g.get("_members", ())) for g in objects["groups"].values()),
        }
    totals = {k: sum(c[k] for c in per_tenant.values()) for k in COUNT_KEYS}
    return {"tenants": per_tenant, "totals": totals}


def customer_list(world: Any) -> list[dict[str, Any]]:
    """What the baselines are handed instead of asking Partner Center: id, domain, region, the
    user count (which sets the tenant's throttling budget), and whether it has DAP."""
    out = []
    with_dap = {r.customer_id for r in world.relationships if r.dap and r.active}
    for tenant in world.tenants.values():
        if tenant.kind != "customer":
            continue
        out.append(
            {
                "tenant_id": tenant.id,
                "domain": tenant.default_domain,
                "region": tenant.region,
                "users": len(tenant.objects["users"]),
                "dap": tenant.id in with_dap,
            }
        )
    return out
