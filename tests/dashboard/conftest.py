"""The dashboard tests read the planted world's store (tests/e2e/conftest.py), synced a second
time so that each customer has a history over runs, plus customers of their own: one with a
hostile display name and enough never-synced ones to need several pages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cspgraph.dashboard.server import DashboardServer, serve
from cspgraph.fleet.store import Store
from tests.e2e.conftest import Planted, planted  # noqa: F401 - the session's planted store
from tests.fleet_helpers import config_for, run_sync

HOSTILE_ID = "0000bad0-0000-0000-0000-000000000000"
HOSTILE_NAME = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">&amp; Co'
EXTRA = 60  # never-synced customers: with the planted ones, more than one page of 50


@dataclass(frozen=True)
class Dashboard:
    url: str  # where it serves, ending in /
    db: str


@pytest.fixture(scope="session")
def dashboard_db(planted: Planted, tmp_path_factory: pytest.TempPathFactory) -> str:  # noqa: F811
    root = tmp_path_factory.mktemp("dashboard")
    url = planted.copy_of(root / "fleet.db")
    with Store.open(url) as store:
        summary = asyncio.run(run_sync(config_for(planted.emu, root), store))
        assert summary.ok, summary.as_dict()
        store.upsert_customer(
            HOSTILE_ID, domain="hostile.example", display_name=HOSTILE_NAME, region="EU"
        )
        for i in range(EXTRA):
            store.upsert_customer(
                f"e{i:07d}-0000-0000-0000-000000000000",
                domain=f"extra{i:03d}.example",
                display_name=f"Extra {i:03d}",
                region="NA",
            )
    return url


@pytest.fixture(scope="session")
def dashboard(dashboard_db: str) -> Iterator[Dashboard]:
    with Store.open(dashboard_db) as store:
        server: DashboardServer = serve(store)
        server.serve_in_thread()
        try:
            yield Dashboard(server.url, dashboard_db)
        finally:
            server.shutdown()
            server.server_close()


__all__ = ["Dashboard", "Path"]
