"""asyncio's TLS read buffer, which every connection holds resident, is kept small once the client
makes a session (cspgraph.http.sessions: 256 KiB per connection was the largest single holder of
a fleet sync's memory)."""

from __future__ import annotations

from asyncio import sslproto

from cspgraph.http.sessions import TLS_READ_BUFFER, aiohttp_session


async def test_a_client_session_makes_every_tls_connection_read_into_a_small_buffer() -> None:
    session = aiohttp_session()
    try:
        assert sslproto.SSLProtocol.max_size <= TLS_READ_BUFFER
        assert TLS_READ_BUFFER >= 16 * 1024 + 512  # a whole TLS record (16 KiB + overhead) fits
    finally:
        await session.close()
