"""Injected faults: which exist, how one is checked, and the seeded draws that decide whether a
fault with ``rate < 1`` fires. The middleware that answers badly is fault_injection.py."""

from __future__ import annotations

import random

from csp_emulator.world.model import Fault

HOSTS = ("login", "graph", "partner_center")
KINDS = ("429", "500", "502", "503", "504", "latency", "drop")
RNG_SEED = 20_240_601


def check_fault(fault: Fault) -> None:
    """Refuse a fault that could never fire as meant; the message names the field and the fix."""
    if fault.host not in (*HOSTS, "*"):
        raise ValueError(f"host {fault.host!r}: expected one of {', '.join(HOSTS)} or '*'")
    if fault.kind not in KINDS:
        raise ValueError(f"kind {fault.kind!r}: expected one of {', '.join(KINDS)}")
    if not 0 <= fault.rate <= 1:
        raise ValueError(f"rate {fault.rate!r}: expected a probability from 0 to 1")
    if fault.count is not None and fault.count < 1:
        raise ValueError(f"count {fault.count!r}: expected at least 1, or null for unlimited")


class FaultState:
    """The draws for partial-rate faults, shared by every host: the same requests in the same
    order meet the same faults, from the start and again after each reset."""

    def __init__(self) -> None:
        self.rng = random.Random(RNG_SEED)

    def reset(self) -> None:
        self.rng.seed(RNG_SEED)
