"""What the hosts keep between requests: one typed object per host, emptied by a reset."""

from __future__ import annotations

import random
from pathlib import Path

from csp_emulator.context import EmulatorContext, Endpoints
from csp_emulator.faults import RNG_SEED
from csp_emulator.graph.caller import Caller
from csp_emulator.graph.state import Matches
from csp_emulator.identity.tokens import SigningKeys
from csp_emulator.limits import SlidingWindow
from csp_emulator.partner_center.model import CustomerRecord
from csp_emulator.world.worldfile import demo_world

ENDPOINTS = Endpoints("https://a", "https://g", "https://p", "https://c", "ca.pem")


def test_a_reset_forgets_what_every_host_kept(tmp_path: Path) -> None:
    ctx = EmulatorContext(
        demo_world(2), SigningKeys(tmp_path), ENDPOINTS, world_factory=lambda: demo_world(2)
    )
    state = ctx.state
    first_draws = [state.faults.rng.random() for _ in range(3)]
    state.identity.new_device(
        now=0.0, client_id="app", tenant_id=None, v1=False, scope="", resource=None
    )
    state.partner_center.records["t"] = CustomerRecord("t", "t.example", "c", {}, {})
    state.partner_center.requests[("p", "r")] = "t"
    state.partner_center.windows["p"] = SlidingWindow()
    state.graph.callers["token"] = Caller(
        "t", "app", False, frozenset(), frozenset(), frozenset(), None, {}
    )
    state.graph.matches[("t", 1, "users")] = Matches(["u1"], by_id=True)
    state.graph.projections[("t", "users", "u1", 1, None)] = {"id": "u1"}
    old_world, old_throttle = ctx.world, state.graph.throttle

    ctx.reset()

    assert ctx.world is not old_world
    assert ctx.state is state  # the same typed objects, emptied
    assert (state.identity.devices, state.identity.user_codes) == ({}, {})
    assert (state.identity.codes, state.identity.refresh_tokens) == ({}, {})
    pc = state.partner_center
    assert (pc.records, pc.requests, pc.windows) == ({}, {}, {})
    graph = state.graph
    assert (len(graph.callers), len(graph.matches), len(graph.projections)) == (0, 0, 0)
    # Graph's budgets start afresh, on the settings and clock of the world the reset built.
    assert graph.throttle is not old_throttle
    assert graph.throttle.settings is ctx.world.settings.throttling
    assert graph.throttle.settings is not old_world.settings.throttling
    # The fault draws start over: the same requests meet the same faults again.
    assert [state.faults.rng.random() for _ in range(3)] == first_draws
    assert first_draws[0] == random.Random(RNG_SEED).random()
