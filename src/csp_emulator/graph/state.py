"""What the emulated Graph keeps between requests besides the world: its throttling budgets and
three memos (who a token names, which ids a query matches, how an object projects). A reset of the
emulator forgets all of it (:meth:`GraphState.reset`), as it forgets the world.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from csp_emulator.graph.caller import Caller
from csp_emulator.limits import Throttle
from csp_emulator.world.model import World


@dataclass
class Matches:
    """The ids a query matches, in the order it serves them."""

    ids: list[str]
    by_id: bool  # ordered by id (the default order): resume by bisecting
    _positions: dict[str, int] | None = field(default=None, repr=False)

    def resume_at(self, last_id: str, served: int) -> int:
        if self.by_id:
            return bisect_right(self.ids, last_id)
        if self._positions is None:
            self._positions = {object_id: i for i, object_id in enumerate(self.ids)}
        position = self._positions.get(last_id)
        return served if position is None else position + 1


class GraphState:
    def __init__(self, world: World) -> None:
        self.throttle = self._throttle(world)
        # token -> its Caller (authn), least recently used first
        self.callers: OrderedDict[str, Caller] = OrderedDict()
        # (tenant, its change sequence, query) -> matching ids (listing.cached)
        self.matches: OrderedDict[tuple[Any, ...], Matches] = OrderedDict()
        # (tenant, resource, id, object version, $select) -> projection (listing.projector)
        self.projections: dict[tuple[Any, ...], dict[str, Any]] = {}

    @staticmethod
    def _throttle(world: World) -> Throttle:
        return Throttle(world.settings.throttling, world.clock.now)

    def new_budgets(self, world: World) -> None:
        """Every throttling budget empty again, on ``world``'s throttling settings and clock."""
        self.throttle = self._throttle(world)

    def reset(self, world: World) -> None:
        """Forget everything; the budgets start afresh on ``world`` (the world a reset built)."""
        self.new_budgets(world)
        self.callers.clear()
        self.matches.clear()
        self.projections.clear()
