"""The emulator's Graph host over HTTP/2, for measuring (``python -m bench.http2``).

The emulator serves every host with uvicorn, which speaks HTTP/1.1 only; Graph speaks HTTP/2.
This swaps the Graph host's server for hypercorn, which offers ``h2`` and ``http/1.1`` by ALPN on
the same TLS socket, with the same ASGI app (latency model, faults and the bench's counters
included), so that a client on HTTP/2 and one on HTTP/1.1 meet the same server. The emulator's
own code is untouched: the bench wraps the servers it makes, as ``bench.serve`` wraps its apps.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

# What Graph's front end allows per connection is not published; 100 is hypercorn's default and
# the value most HTTP/2 servers advertise (RFC 9113 recommends no fewer than 100). Unverified.
MAX_CONCURRENT_STREAMS = 100


class HypercornServer:
    """Quacks like the ``uvicorn.Server`` the emulator's serving loop drives: ``serve(sockets)``,
    ``started``, ``should_exit`` / ``force_exit``."""

    def __init__(self, app: Any, certfile: str, keyfile: str, keep_alive: float) -> None:
        from hypercorn.config import Config

        self.app = app
        self.started = False
        self.should_exit = False
        self.force_exit = False
        self.config = Config()
        self.config.certfile = certfile
        self.config.keyfile = keyfile
        self.config.alpn_protocols = ["h2", "http/1.1"]
        self.config.h2_max_concurrent_streams = MAX_CONCURRENT_STREAMS
        self.config.keep_alive_timeout = keep_alive
        self.config.accesslog = None
        self.config.errorlog = None
        self.config.backlog = 2048

    async def serve(self, sockets: list[socket.socket]) -> None:
        from hypercorn.app_wrappers import ASGIWrapper
        from hypercorn.asyncio.run import worker_serve
        from hypercorn.config import Sockets

        self.started = True
        await worker_serve(
            ASGIWrapper(self.app),
            self.config,
            sockets=Sockets(secure_sockets=list(sockets), insecure_sockets=[], quic_sockets=[]),
            shutdown_trigger=self._until_exit,
        )

    async def _until_exit(self) -> None:
        # The emulator stops its servers by setting should_exit from another thread (as uvicorn
        # polls it), so this polls too.
        while not self.should_exit:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


def serve_graph_with_hypercorn(emulator: Any) -> None:
    """From now on ``emulator`` serves its Graph host with hypercorn (before it starts)."""
    stock = emulator._make_servers

    def make_servers() -> list[tuple[Any, socket.socket]]:
        pairs = stock()
        graph_socket = emulator._sockets["graph"]
        out = []
        for server, sock in pairs:
            if sock is graph_socket:
                config = server.config
                server = HypercornServer(
                    config.app, config.ssl_certfile, config.ssl_keyfile, config.timeout_keep_alive
                )
            out.append((server, sock))
        return out

    emulator._make_servers = make_servers
