"""Shared fixtures: the emulator on free loopback ports, over real HTTPS.

`emulator` is one emulator for the whole session with the built-in demo world; tests that only
read use it. Tests that change the world (clock, settings, objects, faults) start their own with
`make_emulator`, so no test depends on another's leftovers.

`make test` runs the suite on pytest-xdist workers (DESIGN.md, "The test suite in parallel"): each
worker is a session of its own, with its own emulators, databases and home directories (below).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import ssl
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

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

# The commands' default files live under the XDG directories: the configuration, the discovery
# cache, the call audit, onboarding state, the emulator's CA. A test that forgets to name its own
# would write into the home of whoever runs the suite, and two xdist workers into the same file:
# each session (each worker) gets fresh ones, inherited by every command the tests start.
_HOMES = Path(tempfile.mkdtemp(prefix="cspgraph-tests-"))
atexit.register(shutil.rmtree, _HOMES, ignore_errors=True)
for _name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
    os.environ[_name] = str(_HOMES / _name.removeprefix("XDG_").removesuffix("_HOME").lower())
for _name in ("CSPGRAPH_CONFIG", "CSPGRAPH_DB", "CSPGRAPH_AUDIT_FILE"):
    os.environ.pop(_name, None)  # a developer's own set-up is not the tests' business


@pytest.hookimpl(tryfirst=True)  # before xdist's, which turns the groups into what it schedules
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the tests of a module that share a module- or class-scoped fixture (an
    emulator with a world of its own, a browser, built wheels) run on one worker, so the fixture
    is built once, as in a serial run; the other tests are handed out one by one. A test that
    names its own ``xdist_group`` keeps it."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        info = getattr(item, "_fixtureinfo", None)
        defs = getattr(info, "name2fixturedefs", {})
        if any(d.scope in ("module", "class") for chain in defs.values() for d in chain):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def pytest_configure(config: pytest.Config) -> None:
    # pytest 9.2's structured node ids undo xdist 3.8's "@group" without a word (pytest-xdist
    # #1386): the tests that must share a worker would then run anywhere. The dev extras pin
    # pytest below 9.2; a venv with another pytest is refused here instead of running unsafe.
    if config.getoption("dist", "no") == "loadgroup" and Version(pytest.__version__) >= Version(
        "9.2"
    ):
        raise pytest.UsageError(
            f"--dist loadgroup does not group tests under pytest {pytest.__version__} "
            "(pytest-xdist#1386): install the dev extras' pytest (pyproject.toml)"
        )


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
