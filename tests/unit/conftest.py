"""Fixtures shared by the unit tests that talk to the scripted Graph stub over real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.unit.graph_stub import GraphStub


@pytest_asyncio.fixture
async def stub() -> AsyncIterator[GraphStub]:
    """A started :class:`GraphStub` (plain HTTP on 127.0.0.1), closed after the test."""
    server = GraphStub()
    await server.start()
    yield server
    await server.close()
