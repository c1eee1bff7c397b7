"""The one place HTTP sessions are made, and where what they trust is decided.

Every session the client opens comes from here: the aiohttp sessions of the Graph and Partner
Center clients and of discovery, and the ``requests`` session MSAL (and the v1 sign-in) talk
through; ``tests/unit/test_http_floor.py`` holds every other module to that. Trust:

* a configured CA bundle (``ca_bundle``: the emulator's CA, a corporate TLS proxy's) is what both
  libraries trust, instead of the system store;
* aiohttp sessions never read the environment (``trust_env`` stays False): no proxy or CA
  variables;
* the ``requests`` session reads the environment (proxy variables, ``REQUESTS_CA_BUNDLE``) only
  when no CA bundle is configured: a set ``REQUESTS_CA_BUNDLE`` would silently override
  ``Session.verify`` (client-traps §3), so a configured bundle turns ``trust_env`` off;
* MSAL's requests sent over an event loop (aiohttp) trust exactly what the ``requests`` session
  would for the same URL (:func:`loop_tls_for`).

aiohttp and requests are imported when a session of theirs is first made: these are deliberate
lazy imports (each costs ~150 ms at start-up, and most callers need only one of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import ssl
from asyncio import sslproto
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import aiohttp
    import requests

# connect, read: MSAL passes no timeout through its http_client, so the session has one. The
# read timeout is the configuration's token_timeout (docs/configuration.md).
REQUESTS_TIMEOUT = (10.0, 30.0)
# "Send this request through requests": a proxy or a client certificate applies to it.
USE_REQUESTS: Any = object()
# asyncio gives every TLS connection a zero-filled read buffer of SSLProtocol.max_size (256 KiB):
# resident memory per connection, and a fleet sync at Graph's latency keeps hundreds of them
# open. tracemalloc at the peak of a 1,000-customer sync (realistic latency): 91 MB in 730 such
# buffers, the largest single holder (docs/benchmarks.md). A TLS record carries at most 16 KiB
# of data, so 32 KiB reads cost only a few more read calls per answer.
TLS_READ_BUFFER = 32 * 1024


@functools.lru_cache(maxsize=16)
def tls_context(where: str) -> ssl.SSLContext:
    """A client TLS context trusting the CA file (or directory) at ``where``; one per path, so
    aiohttp pools keyed by the context are shared by everyone trusting the same bundle."""
    if os.path.isdir(where):
        return ssl.create_default_context(capath=where)
    return ssl.create_default_context(cafile=where)


def aiohttp_tls(ca_bundle: str | None) -> ssl.SSLContext | bool:
    """aiohttp's ``ssl=`` for a configured CA bundle; True (the system store) without one."""
    return tls_context(ca_bundle) if ca_bundle else True


def aiohttp_session(
    ca_bundle: str | None = None,
    *,
    limit: int = 100,
    limit_per_host: int = 0,
    connect_timeout: float = 30.0,
    read_timeout: float | None = None,
    total_timeout: float | None = None,
) -> aiohttp.ClientSession:
    """A new aiohttp session on the running loop that trusts ``ca_bundle`` (or the system store)
    and never the environment. The caller closes it."""
    import aiohttp

    small_tls_read_buffers()
    connector = aiohttp.TCPConnector(
        limit=limit, limit_per_host=limit_per_host, ssl=aiohttp_tls(ca_bundle)
    )
    timeout = aiohttp.ClientTimeout(
        total=total_timeout, sock_connect=connect_timeout, sock_read=read_timeout
    )
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)


def small_tls_read_buffers() -> None:
    """asyncio's TLS read buffer down to :data:`TLS_READ_BUFFER` (never up). asyncio has no
    setting per connection, so this holds for every asyncio TLS connection of the process."""
    if getattr(sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER:
        sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


def requests_session(
    ca_bundle: str | None = None,
    *,
    pool_maxsize: int = 64,
    timeout: tuple[float, float] = REQUESTS_TIMEOUT,
) -> requests.Session:
    """A requests session that trusts ``ca_bundle`` whatever the environment says (without one:
    the system store, or what the environment names), with a default timeout and a pool big
    enough for every worker thread to keep its connection. The caller closes it."""
    return _requests_session_type()(ca_bundle, pool_maxsize, timeout)


@functools.cache
def _requests_session_type() -> Callable[[str | None, int, tuple[float, float]], requests.Session]:
    """The session class, defined on first use: requests is imported only then."""
    import requests
    from requests.adapters import HTTPAdapter

    class TransportSession(requests.Session):
        def __init__(
            self, ca_bundle: str | None, pool_maxsize: int, timeout: tuple[float, float]
        ) -> None:
            super().__init__()
            self.timeout = timeout
            if ca_bundle:
                self.verify = ca_bundle
                self.trust_env = False
            # max_retries=1 retries a failed connect only (nothing was sent), as MSAL's own does.
            adapter = HTTPAdapter(pool_connections=8, pool_maxsize=pool_maxsize, max_retries=1)
            self.mount("https://", adapter)
            self.mount("http://", adapter)

        def request(
            self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
        ) -> requests.Response:
            kwargs.setdefault("timeout", self.timeout)
            return super().request(method, url, *args, **kwargs)

    return TransportSession


def loop_tls_for(session: requests.Session, url: str) -> Any:
    """The TLS setting ``session`` would use for ``url``, as aiohttp's ``ssl=``: an SSLContext,
    False (no verification), or :data:`USE_REQUESTS` when a proxy or a client certificate
    applies (those stay with requests).

    requests decides trust per request from the session and, when ``trust_env`` is on, from
    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` and the proxy variables (client-traps §3); its own
    ``merge_environment_settings`` answers, so both paths trust the same CAs."""
    from requests.utils import DEFAULT_CA_BUNDLE_PATH, select_proxy

    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}/"
    settings = session.merge_environment_settings(origin, {}, None, None, None)
    verify = settings.get("verify", True)
    if settings.get("cert") or select_proxy(url, settings.get("proxies")):
        return USE_REQUESTS
    if verify is False:
        return False
    return tls_context(DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify))


class Sessions:
    """The HTTP sessions one token layer shares, all trusting ``ca_bundle``.

    ``requests``: MSAL's transport and discovery's synchronous path. :meth:`aiohttp`: one aiohttp
    session per running event loop (a CLI may run several loops one after another), for
    discovery's asynchronous path and MSAL's requests sent over the caller's loop. Close it with
    :meth:`aclose` (or :meth:`close` where no loop runs).

    ``timeout``: (connect, read) seconds of every request through these sessions — token
    requests and discovery; a request that takes longer is abandoned as transient (and retried
    by whoever sent it)."""

    def __init__(
        self,
        ca_bundle: str | None = None,
        *,
        pool_maxsize: int = 64,
        loop_connections_per_host: int = 8,
        timeout: tuple[float, float] = REQUESTS_TIMEOUT,
    ) -> None:
        self.ca_bundle = ca_bundle
        self.timeout = timeout
        self.requests = requests_session(ca_bundle, pool_maxsize=pool_maxsize, timeout=timeout)
        self._per_host = loop_connections_per_host
        self._aio: aiohttp.ClientSession | None = None
        self._aio_loop: asyncio.AbstractEventLoop | None = None

    @property
    def aiohttp_tls(self) -> ssl.SSLContext | bool:
        """The TLS setting :meth:`aiohttp`'s connector applies by default."""
        return aiohttp_tls(self.ca_bundle)

    async def aiohttp(self) -> aiohttp.ClientSession:
        """The aiohttp session of the running loop, made on first use."""
        loop = asyncio.get_running_loop()
        if self._aio is None or self._aio_loop is not loop or self._aio.closed:
            connect, read = self.timeout
            self._aio = aiohttp_session(
                self.ca_bundle,
                limit_per_host=self._per_host,
                connect_timeout=connect,
                total_timeout=read,
            )
            self._aio_loop = loop
        return self._aio

    async def aclose(self) -> None:
        if self._aio is not None:
            with contextlib.suppress(RuntimeError):  # its loop may be gone already
                await self._aio.close()
            self._aio = None
        self.close()

    def close(self) -> None:
        self.requests.close()
