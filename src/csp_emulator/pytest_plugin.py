"""The emulator's pytest plugin: installed with csp-emulator, found through its ``pytest11`` entry
point, so a partner's test suite gets the emulated cloud with no conftest of its own.

Fixtures (docs/testing-your-code.md):

    csp_emulator        the running emulator (testing.RunningEmulator): one per world, started on
                        first use and kept for the session; under pytest-xdist one per worker
    csp_endpoints       its origins and CA bundle
    csp_requests        a requests session trusting its CA (closed after the test)
    csp_httpx           an httpx client trusting its CA (closed after the test; needs httpx)
    csp_emulator_reset  rebuilds the world before the test that asks for it
    csp_emulator_world  which world (session scope; override it in a conftest): the ini option
                        ``csp_emulator_world`` (``demo``, ``demo:N``, a world file) by default

A test or module picks another world with ``@pytest.mark.csp_emulator(world=...)`` (a path, a
dict, ``"demo"``); it gets an emulator of its own for that world, shared with the tests that ask
for the same one.

Nothing heavy loads when pytest starts: the server is imported by the first test that asks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx
    import requests

    from csp_emulator.testing import EmulatorPool, RunningEmulator, WorldSpec

MARKER = "csp_emulator"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "csp_emulator_world",
        "The emulator's world for the csp_emulator fixture: 'demo' (the default), 'demo:N' "
        "(N customers) or a world file (relative to the rootdir).",
        default="demo",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(world=...): serve these tests another world (a world file path, a dict of "
        "world-file data, 'demo' or 'demo:N').",
    )


@pytest.fixture(scope="session")
def csp_emulator_world(pytestconfig: pytest.Config) -> WorldSpec:
    """The world the ``csp_emulator`` fixture serves unless a marker says otherwise."""
    value = str(pytestconfig.getini("csp_emulator_world")).strip() or "demo"
    if value == "demo" or value.startswith("demo:"):
        return value
    return Path(pytestconfig.rootpath, value)


@pytest.fixture(scope="session")
def _csp_emulator_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorPool]:
    from csp_emulator.testing import EmulatorPool

    # tmp_path_factory is per xdist worker, so each worker's emulators have their own state.
    with EmulatorPool(tmp_path_factory.mktemp("csp-emulator")) as pool:
        yield pool


@pytest.fixture
def csp_emulator(
    request: pytest.FixtureRequest,
    _csp_emulator_pool: EmulatorPool,
    csp_emulator_world: WorldSpec,
) -> RunningEmulator:
    """The running emulator for this test's world (the marker's, else ``csp_emulator_world``)."""
    marker = request.node.get_closest_marker(MARKER)
    world: Any = csp_emulator_world
    if marker is not None:
        world = marker.kwargs.get("world", marker.args[0] if marker.args else world)
    if isinstance(world, str) and not (world == "demo" or world.startswith("demo:")):
        world = Path(request.config.rootpath, world)
    try:
        return _csp_emulator_pool.get(world)
    except ValueError as exc:  # a world file or dict it cannot serve: say which and why
        pytest.fail(f"csp_emulator: {exc}", pytrace=False)


@pytest.fixture
def csp_endpoints(csp_emulator: RunningEmulator) -> Any:
    return csp_emulator.endpoints


@pytest.fixture
def csp_requests(csp_emulator: RunningEmulator) -> Iterator[requests.Session]:
    with csp_emulator.session() as session:
        yield session


@pytest.fixture
def csp_httpx(csp_emulator: RunningEmulator) -> Iterator[httpx.Client]:
    try:
        client = csp_emulator.httpx_client()
    except ModuleNotFoundError:
        pytest.fail("csp_httpx needs httpx: pip install 'csp-emulator[httpx]'", pytrace=False)
    with client:
        yield client


@pytest.fixture
def csp_emulator_reset(csp_emulator: RunningEmulator) -> RunningEmulator:
    """The emulator with its world rebuilt before this test: objects, clock, faults, throttling
    as the world's source has them (a world is shared by the tests that use it otherwise)."""
    csp_emulator.reset()
    return csp_emulator
