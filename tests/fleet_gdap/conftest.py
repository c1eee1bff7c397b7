"""Fixtures of the GDAP fleet tests: a private emulator serving the mixed fleet, its
configuration, and a store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from csp_emulator.server import Emulator
from cspgraph.config import Config
from cspgraph.fleet.store import Store
from tests.conftest import MakeEmulator
from tests.fleet_gdap.mixed_world import mixed_world_data
from tests.fleet_helpers import Control, config_for


@pytest.fixture
def mixed(make_emulator: MakeEmulator) -> Emulator:
    return make_emulator(mixed_world_data())


@pytest.fixture
def mixed_config(mixed: Emulator, tmp_path: Path) -> Config:
    return config_for(mixed, tmp_path)


@pytest.fixture
def control(mixed: Emulator) -> Control:
    return Control(mixed)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as opened:
        yield opened
