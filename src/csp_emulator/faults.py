"""Injected faults: which exist, how one is checked, and the seeded draws that decide whether a
fault with ``rate < 1`` fires. The middleware that answers badly is fault_injection.py."""

from __future__ import annotations

import random

from csp_emulator.world.model import Fault

HOSTS = ("login", "graph", "partner_center")
KINDS = ("429", "500", "502", "503", "504", "latency", "drop")
RNG_SEED = 20_240_601


# The longest a latency fault may hold a request: longer than any client waits (aiohttp's read
# timeout is 100 s in cspgraph, 300 s at most elsewhere), so more only keeps connections open.
MAX_LATENCY = 600.0


def check_fault(fault: Fault) -> None:
    """Refuse a fault that could never fire as meant, or that would break the host it is on (a
    number where a path belongs fails every request; an endless latency holds every connection);
    the message names the field and the fix."""
    if not isinstance(fault.host, str) or fault.host not in (*HOSTS, "*"):
        raise ValueError(f"host {fault.host!r}: expected one of {', '.join(HOSTS)} or '*'")
    if not isinstance(fault.kind, str) or fault.kind not in KINDS:
        raise ValueError(f"kind {fault.kind!r}: expected one of {', '.join(KINDS)}")
    if isinstance(fault.rate, bool) or not isinstance(fault.rate, int | float):
        raise ValueError(f"rate {fault.rate!r}: expected a probability from 0 to 1")
    if not 0 <= fault.rate <= 1:  # NaN too
        raise ValueError(f"rate {fault.rate!r}: expected a probability from 0 to 1")
    if fault.count is not None and (
        isinstance(fault.count, bool) or not isinstance(fault.count, int) or fault.count < 1
    ):
        raise ValueError(f"count {fault.count!r}: expected a whole number from 1, or null")
    if not isinstance(fault.path_prefix, str):
        raise ValueError(f"path_prefix {fault.path_prefix!r}: expected a path like '/v1.0/users'")
    if not isinstance(fault.id, str) or not fault.id:
        raise ValueError(f"id {fault.id!r}: expected a non-empty string")
    if not 0 <= fault.latency <= MAX_LATENCY:
        raise ValueError(f"latency {fault.latency!r}: expected at most {MAX_LATENCY:.0f} s")


class FaultState:
    """The draws for partial-rate faults, shared by every host: the same requests in the same
    order meet the same faults, from the start and again after each reset."""

    def __init__(self) -> None:
        self.rng = random.Random(RNG_SEED)

    def reset(self) -> None:
        self.rng.seed(RNG_SEED)
