"""Shared fixtures: the emulator on free loopback ports, over real HTTPS.

`emulator` is one emulator for the whole session with the built-in demo world; tests that only
read use it. Tests that change the world (clock, settings, objects, faults) start their own with
`make_emulator`, so no test depends on another's leftovers.
"""

from __future__ import annotations

import signal
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from csp_emulator.server import Emulator
from csp_emulator.world.model import World
from csp_emulator.world.worldfile import demo_world, load_world_data

EXAMPLE_WORLD = Path(__file__).parent / "data" / "example-world.toml"

# A suite started in the background by a script (`make test &`, nohup) inherits SIGINT ignored,
# and so would every child the Ctrl-C tests start: they then never see the Ctrl-C they are sent
# (seen: five such tests failing in a backgrounded `.ci/run`). Python's own handler here means
# each child starts with the default disposition, as it does under a terminal or CI.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    state = tmp_path_factory.mktemp("emulator-state")
    with Emulator(demo_world, state_dir=state) as emu:
        yield emu


MakeEmulator = Callable[..., Emulator]


def tls(emu: Emulator) -> ssl.SSLContext:
    """An SSL context that trusts the emulator's local CA (and nothing else)."""
    return ssl.create_default_context(cafile=emu.endpoints.ca_bundle)


@pytest.fixture
def make_emulator(tmp_path: Path) -> Iterator[MakeEmulator]:
    """Start a private emulator: `make_emulator()` for the demo world, `make_emulator(data)` for a
    world given as world-file data (a dict), or `make_emulator(factory)` for any World factory."""
    started: list[Emulator] = []

    def make(world: dict[str, Any] | Callable[[], World] | None = None, **kwargs: Any) -> Emulator:
        if world is None:
            factory: Callable[[], World] = demo_world
        elif isinstance(world, dict):
            data = world

            def factory() -> World:
                return load_world_data(data, source="<test world>")
        else:
            factory = world
        emu = Emulator(factory, state_dir=tmp_path / f"emu{len(started)}", **kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()
