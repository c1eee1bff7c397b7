"""What the control API shows of the world and the rules for changing its settings at run time."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from csp_emulator import latency
from csp_emulator.world.model import (
    DeltaPaging,
    Tenant,
    ThrottleSettings,
    World,
    iso,
    parse_duration,
)


def tenant_summary(world: World, tenant: Tenant) -> dict[str, Any]:
    now = world.clock.now()
    return {
        "id": tenant.id,
        "domain": tenant.default_domain,
        "domains": tenant.domains,
        "display_name": tenant.display_name,
        "region": tenant.region,
        "cloud": tenant.cloud,
        "kind": tenant.kind,
        "counts": {r: len(objs) for r, objs in tenant.objects.items()},
        "partners": [
            {
                "partner_id": rel.partner_id,
                "created_at": iso(rel.created_at),
                "effective_at": iso(rel.effective_at),
                "in_effect": rel.in_effect(now),
                "dap": rel.dap,
            }
            for rel in world.relationships
            if rel.customer_id == tenant.id and rel.active
        ],
    }


def settings_json(world: World) -> dict[str, Any]:
    s = world.settings
    return {
        "propagation_delay": s.propagation_delay,
        "token_lifetime": s.token_lifetime,
        "refresh_token_lifetime": s.refresh_token_lifetime,
        "page_size": s.page_size,
        "new_customer_access": s.new_customer_access,
        "assignment_delay": s.assignment_delay,
        "consent_delay": s.consent_delay,
        "throttling": dataclasses.asdict(s.throttling),
        "faults": [dataclasses.asdict(f) for f in s.faults],
        "delta": dataclasses.asdict(s.delta),
        "latency": latency.settings_json(s.latency),
    }


def apply_settings(world: World, body: dict[str, Any]) -> None:
    """Change settings at run time; unknown keys are refused by name. Every value is checked
    before any is applied: a refused body changes nothing."""
    s = world.settings
    known = {
        "propagation_delay",
        "token_lifetime",
        "page_size",
        "throttling",
        "delta",
        "latency",
        "new_customer_access",
        "assignment_delay",
        "consent_delay",
    }
    unknown = set(body) - known
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; expected some of {sorted(known)}")
    delay = parse_duration(body["propagation_delay"]) if "propagation_delay" in body else None
    lifetime = parse_duration(body["token_lifetime"]) if "token_lifetime" in body else None
    if lifetime is not None and lifetime <= 300:
        raise ValueError("token_lifetime must be over 5 minutes (MSAL's expiry margin)")
    size = body.get("page_size")
    if "page_size" in body and (
        isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 999
    ):
        raise ValueError(f"page_size must be a whole number from 1 to 999, not {size!r}")
    throttling = _throttling(body["throttling"], s.throttling) if "throttling" in body else None
    delta = delta_paging(body["delta"], s.delta) if "delta" in body else None
    latency_settings = (
        latency.latency_settings(body["latency"], s.latency) if "latency" in body else None
    )
    access = body.get("new_customer_access", s.new_customer_access)
    if access not in ("dap", "gdap"):
        raise ValueError(f"new_customer_access must be 'dap' or 'gdap', not {access!r}")
    gdap_delays = {
        key: parse_duration(body[key])
        for key in ("assignment_delay", "consent_delay")
        if key in body
    }

    if delay is not None:
        s.propagation_delay = delay
        # A relationship not yet in effect takes the new delay from its creation.
        now = world.clock.now()
        for rel in world.relationships:
            if not rel.in_effect(now):
                rel.effective_at = rel.created_at + delay
    if lifetime is not None:
        s.token_lifetime = lifetime
    if isinstance(size, int):
        s.page_size = size
    if throttling is not None:
        # In place: the Graph throttle holds this very object.
        for name, value in dataclasses.asdict(throttling).items():
            setattr(s.throttling, name, value)
    if delta is not None:
        s.delta = delta
    if latency_settings is not None:
        s.latency = latency_settings
    s.new_customer_access = access
    for key, seconds in gdap_delays.items():
        setattr(s, key, seconds)


def _throttling(throttling: Any, current: ThrottleSettings) -> ThrottleSettings:
    """The throttling settings a control-API body asks for; keys left out keep their values."""
    keys = {"enabled", "scale", "partner_center_scale", "window_scale"}
    if not isinstance(throttling, dict) or set(throttling) - keys:
        raise ValueError(
            "throttling takes {'enabled': bool, 'scale': number (Graph's budgets), "
            "'partner_center_scale': number (Partner Center's limit), "
            "'window_scale': number (Graph's and Partner Center's windows)}"
        )
    enabled = throttling.get("enabled", current.enabled)
    if not isinstance(enabled, bool):
        raise ValueError(f"throttling.enabled must be true or false, not {enabled!r}")
    scale = _scale(throttling, "scale", current.scale)
    pc_scale = _scale(throttling, "partner_center_scale", current.partner_center_scale)
    window_scale = _scale(throttling, "window_scale", current.window_scale)
    return ThrottleSettings(enabled, scale, pc_scale, window_scale)


# Whole-number delta paging settings and their ranges (world file: [settings.delta]).
_DELTA_COUNTS = {"object_cap": 999, "link_cap": 5000, "groups_floor_pages": 1000}


def delta_paging(body: Any, current: DeltaPaging) -> DeltaPaging:
    """New delta paging settings from the control API; keys left out keep their values, and a
    refused body changes nothing."""
    known = {*_DELTA_COUNTS, "groups_shrink"}
    if not isinstance(body, dict) or set(body) - known:
        raise ValueError(f"delta takes some of {sorted(known)}")
    values = dataclasses.asdict(current)
    for key, value in body.items():
        if key == "groups_shrink":
            number = not isinstance(value, bool) and isinstance(value, int | float)
            if not number or not math.isfinite(value) or not 0 < value <= 1:
                raise ValueError(
                    f"delta.groups_shrink must be above 0 and at most 1, not {value!r}"
                )
        elif (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 1 <= value <= _DELTA_COUNTS[key]
        ):
            raise ValueError(
                f"delta.{key} must be a whole number from 1 to {_DELTA_COUNTS[key]}, not {value!r}"
            )
        values[key] = value
    return DeltaPaging(**values)


def _scale(throttling: dict[str, Any], key: str, current: float) -> float:
    """A budget factor from the control API: a positive, finite number."""
    value = throttling.get(key, current)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"throttling.{key} must be a positive number, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"throttling.{key} must be a positive number, not {value!r}")
    return float(value)


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """A directory object without the emulator's own ``_`` keys (passwords, secrets, members)."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}
