"""A service that stops answering in the middle of a run: the emulator stopped mid-sync.

Every connection to its hosts is then refused. The first call to spend its retry budget on
refused connections, with no answer from the host meanwhile, judges the host gone (the process's
:class:`~cspgraph.http.retry.HostWatch`); every later call to it fails at once, so the run stops
in the time one call's retries take instead of one retry budget per customer, says so in one
line per host, and leaves the store to resume. Short retry budgets keep it fast; no sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from csp_emulator.server import Emulator
from cspgraph.fleet.outcomes import CustomerStatus, SyncSummary
from cspgraph.fleet.progress import NullProgress
from cspgraph.fleet.store import Store
from cspgraph.fleet.sync import sync_fleet
from cspgraph.graph.client import GraphClient
from cspgraph.http.errors import HostUnreachableError
from cspgraph.http.retry import HOSTS, HostWatch, RetryPolicy
from cspgraph.identity import TokenProvider
from tests.client.conftest import emulator_config

MakeEmulator = Callable[..., Emulator]
SHORT = RetryPolicy(max_retries=2, backoff_base=0.001, backoff_cap=0.002)
# Lines the host watch may say about one host in a run: "retrying" again after each answer that a
# request in flight at the stop still got, and "stopped answering" again if the judgment lapses
# (RECHECK_AFTER) with the host still gone: a CI run under load said it twice, no answer between.
HANDFUL = 6


@pytest.fixture
def told() -> Iterator[list[str]]:
    """What the process's host watch says (a command prints it on stderr); forgotten after."""
    lines: list[str] = []
    HOSTS.reset()
    HOSTS.listeners.append(lines.append)
    yield lines
    HOSTS.listeners.remove(lines.append)
    HOSTS.reset()


class StopsTheEmulator(NullProgress):
    """Stops the emulator when the run's first page is in the store: mid-sync, every time."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.pages_before_stop = 0

    def page_written(self, tenant_id: str, resource: str, objects: int) -> None:
        if not self.pages_before_stop:
            self.pages_before_stop = 1
            self.emu.stop()


async def sync_with_short_retries(
    emu: Emulator, tmp_path: Path, store: Store, progress: NullProgress
) -> SyncSummary:
    config = emulator_config(emu, tmp_path, token_retries=SHORT.max_retries)
    provider = TokenProvider(config, retry=SHORT)
    try:
        async with GraphClient(
            provider,
            graph_url=provider.cloud.graph,
            ca_bundle=provider.cloud.ca_bundle,
            max_retries=SHORT.max_retries,
            backoff_base=SHORT.backoff_base,
            backoff_cap=SHORT.backoff_cap,
        ) as graph:
            return await sync_fleet(provider, store, graph=graph, progress=progress)
    finally:
        await provider.aclose()


async def test_a_sync_whose_emulator_stops_midway_stops_early_says_so_and_the_next_run_resumes(
    make_emulator: MakeEmulator, tmp_path: Path, told: list[str]
) -> None:
    emu = make_emulator()
    graph = f"Microsoft Graph at {emu.endpoints.graph.removeprefix('https://')}"
    store = Store.open(f"sqlite:///{tmp_path / 'fleet.db'}")
    with store:
        summary = await sync_with_short_retries(emu, tmp_path, store, StopsTheEmulator(emu))
        assert not summary.ok
        failed = [t for t in summary.tenants if t.status is CustomerStatus.FAILED]
        assert failed, "the emulator stopped after the first page: customers must have failed"
        assert all(t.error_class == "transient" for t in failed)
        # The host was judged gone and said so, in lines about the host, not one per call or
        # customer. (A request in flight when it stopped may still be answered afterwards: an
        # answer means the host is back, and the watch starts over; so "once" is not promised.)
        assert graph in HOSTS.ever_gone()
        about_graph = [line for line in told if line.startswith(graph)]
        assert any(line.endswith("refuses connections: retrying") for line in about_graph)
        assert any("stopped answering" in line for line in about_graph)
        # A handful of lines in all, however many calls failed: never a line per call. (How many
        # calls were in flight at the stop varies from run to run: 4 and 9 in two runs, so a
        # ratio of lines to failed calls is no test when few failed.)
        calls_failed = summary.graph["errors"]
        assert len(about_graph) <= HANDFUL or len(about_graph) < calls_failed / 10
        # Stopped early: after the judgment, calls to it fail without a retry of their own, so
        # the run's retries are far fewer than one budget per failed call would have cost.
        assert summary.graph["retries"] < SHORT.max_retries * calls_failed

        # The next run, against the emulator started again, ends with every customer current.
        HOSTS.reset()
        again = make_emulator()
        resumed = await sync_with_short_retries(again, tmp_path, store, NullProgress())
        assert resumed.ok, resumed.by_status()
        assert {t.tenant_id for t in resumed.tenants} >= {t.tenant_id for t in failed}


def test_a_host_is_judged_gone_only_when_nothing_answered_during_a_whole_retry_budget() -> None:
    now = [0.0]
    watch = HostWatch(recheck_after=60.0, clock=lambda: now[0])
    lines: list[str] = []
    watch.listeners.append(lines.append)
    error = HostUnreachableError("refused", host="graph.example:443", service="Graph")
    first = watch.refused(error)
    watch.answered("graph.example:443")  # another call got an answer meanwhile: a blip
    watch.gave_up(error, first)
    watch.check("graph.example:443")  # not gone
    assert watch.gone() == []
    second = watch.refused(error)
    watch.refused(error)
    watch.gave_up(error, second)
    assert watch.gone() == ["Graph at graph.example:443"]
    with pytest.raises(HostUnreachableError, match="stopped answering"):
        watch.check("graph.example:443")
    now[0] = 60.0  # recheck_after later, calls may try it again
    watch.check("graph.example:443")
    assert watch.gone() == []
    assert watch.ever_gone() == ["Graph at graph.example:443"]
    watch.answered("graph.example:443")
    assert lines == [
        "Graph at graph.example:443 refuses connections: retrying",  # the blip
        "Graph at graph.example:443 refuses connections: retrying",
        "Graph at graph.example:443 stopped answering: every connection refused for a whole "
        "retry budget; calls to it now fail at once",
        "graph.example:443 answers again",
    ]
