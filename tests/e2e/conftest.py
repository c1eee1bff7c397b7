"""The planted world (tests/e2e/fleet_world.py) synced once for the whole session: the checks,
report, export, notify and dashboard tests read it. A test that changes the store works on its
own copy (:func:`copy_of`)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from csp_emulator.server import Emulator
from cspgraph.fleet.store import Store
from tests.e2e.fleet_world import planted_world
from tests.fleet_helpers import config_for, run_sync


@dataclass(frozen=True)
class Planted:
    emu: Emulator
    path: Path  # the SQLite file

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def copy_of(self, where: Path) -> str:
        """A copy of the synced store to change (its WAL checkpointed first)."""
        with Store.open(self.url) as store, store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        where.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path, where)
        return f"sqlite:///{where}"


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planted]:
    root = tmp_path_factory.mktemp("planted")
    with Emulator(planted_world, state_dir=root / "emulator") as emu:
        path = root / "fleet.db"
        with Store.open(f"sqlite:///{path}") as store:
            summary = asyncio.run(run_sync(config_for(emu, root), store))
            assert summary.ok, summary.as_dict()
        yield Planted(emu, path)
