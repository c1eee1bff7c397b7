"""Watching a fleet sync: the events it reports.

:func:`~cspgraph.fleet.sync.sync_fleet` tells a :class:`SyncProgress` what happens; it never waits
for it, so an observer must return quickly. :class:`NullProgress` reports nothing; the terminal's
live display is :class:`cspgraph.fleet.sync_display.RichSyncProgress`, kept apart so that a sync
without one (``--json``, ``--no-progress``, a library caller) never loads Rich.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from cspgraph.fleet.customers import CustomerRef
from cspgraph.fleet.outcomes import SyncSummary, TenantResult

if TYPE_CHECKING:  # a type only: importing the Graph client would load aiohttp here
    from cspgraph.graph.client import GraphStats


class SyncProgress(Protocol):
    """What a sync reports while it runs. Every method is called on the event loop."""

    def started(self, stats: GraphStats) -> None:
        """The sync begins; ``stats`` are the Graph client's live counters (read, don't keep)."""

    def customers_found(self, count: int) -> None:
        """``count`` more customers to sync (customer lists arrive page by page)."""

    def tenant_started(self, customer: CustomerRef) -> None: ...

    def page_written(self, tenant_id: str, resource: str, objects: int) -> None:
        """One page is in the store (committed with its checkpoint)."""

    def tenant_finished(self, result: TenantResult) -> None: ...

    def finished(self, summary: SyncSummary) -> None: ...


class NullProgress:
    """Reports nothing (the default)."""

    def started(self, stats: GraphStats) -> None:
        pass

    def customers_found(self, count: int) -> None:
        pass

    def tenant_started(self, customer: CustomerRef) -> None:
        pass

    def page_written(self, tenant_id: str, resource: str, objects: int) -> None:
        pass

    def tenant_finished(self, result: TenantResult) -> None:
        pass

    def finished(self, summary: SyncSummary) -> None:
        pass
