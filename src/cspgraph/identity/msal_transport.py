"""The HTTP transport MSAL (and the v1 sign-in) talk through: :class:`MsalTransport`.

One ``requests`` session (made by :func:`cspgraph.http.sessions.requests_session`, which also
decides what it trusts) is shared by every MSAL application object: one connection pool. MSAL
ignores its own ``verify=`` once it is given an ``http_client`` (client-traps §3), so trust is
the session's.

MSAL is synchronous and runs in worker threads. When a worker acts for an async caller,
:class:`MsalTransport` sends MSAL's requests on that caller's event loop through aiohttp instead
(``via_loop``): a token POST through ``requests`` costs about 0.5 ms of CPU in Python (request
preparation, cookie and environment merging, ``http.client``'s header parsing), which was most of
a tenant's token cost. The trust and proxy decision stays the session's
(:func:`cspgraph.http.sessions.loop_tls_for`), and failures surface as the same ``requests``
exceptions, so callers cannot tell the paths apart.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from cspgraph.discovery import requests_could_not_connect
from cspgraph.http.retry import HOSTS
from cspgraph.http.sessions import REQUESTS_TIMEOUT, USE_REQUESTS, loop_tls_for

if TYPE_CHECKING:
    import aiohttp


@dataclass(frozen=True, slots=True)
class Answer:
    """What the token layer needs of an HTTP answer that MSAL read."""

    status: int
    retry_after: str | None


class ConnectFailed(requests.ConnectionError):
    """No connection to ``host`` could be made (refused, no route, no such name): the request
    never reached it. A ``requests.ConnectionError`` as before, naming the host for
    :class:`~cspgraph.http.retry.HostWatch`."""

    def __init__(self, message: str, host: str) -> None:
        super().__init__(message)
        self.host = host


def connect_failed(exc: requests.RequestException, url: str) -> requests.RequestException:
    """``exc`` as :class:`ConnectFailed` when requests could not connect at all."""
    if requests_could_not_connect(exc):
        return ConnectFailed(f"{_origin(url)}: cannot connect", urlsplit(url).netloc)
    return exc


class StaticResponse:
    """The part of a response MSAL reads, for a document we already hold."""

    def __init__(self, text: str, status_code: int = 200) -> None:
        self.text = text
        self.status_code = status_code
        self.headers: dict[str, str] = {"content-type": "application/json"}

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise requests.HTTPError(f"HTTP {self.status_code}")


class LoopResponse:
    """What MSAL reads of a response that came over the event loop (``requests``' shape)."""

    def __init__(self, status_code: int, text: str, headers: Mapping[str, str]) -> None:
        self.status_code = status_code
        self.text = text
        self.headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(headers)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise requests.HTTPError(f"HTTP {self.status_code}")


AioSession = Callable[[], Awaitable["aiohttp.ClientSession"]]


class MsalTransport:
    """MSAL's ``http_client``: the shared session, plus discovery documents served from memory.

    Building an MSAL application fetches the tenant's OIDC discovery document, which the router
    has already fetched to learn the tenant's region; ``known_documents(url)`` hands that copy
    back, so a tenant costs one discovery GET instead of two.

    ``aio_session`` (an async factory of an aiohttp session on the running loop, whose connector
    applies ``aio_default_tls``) enables :meth:`via_loop`: inside it, the calling worker thread's
    requests are sent on that loop and the thread waits for the answer. Everywhere else (sync
    callers, no loop, a loop that is gone, a proxy or client certificate in play) requests go
    through ``session`` as before. The session's ``response`` hooks see both kinds.
    """

    def __init__(
        self,
        session: requests.Session,
        known_documents: Callable[[str], str | None] | None = None,
        *,
        aio_session: AioSession | None = None,
        aio_default_tls: Any = None,
    ) -> None:
        self.session = session
        self._known = known_documents
        self._aio_session = aio_session
        # The TLS setting aio_session's connector applies by default: a request that needs exactly
        # that is sent without ssl= and so shares the connector's pool (no extra handshakes).
        self._aio_default_tls = aio_default_tls
        self._local = threading.local()
        self._tls: dict[str, Any] = {}  # per origin: an SSLContext, False, or USE_REQUESTS
        self._tls_lock = threading.Lock()
        self.loop_requests = 0  # requests sent over an event loop (tests and stats)
        self._stopped = False

    @contextlib.contextmanager
    def via_loop(self, loop: asyncio.AbstractEventLoop | None) -> Iterator[None]:
        """Within this block, this thread's requests go over ``loop`` (None: through requests).

        Only for worker threads: the loop must keep running while the thread waits on it."""
        previous = getattr(self._local, "loop", None)
        self._local.loop = loop
        try:
            yield
        finally:
            self._local.loop = previous

    def get(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        if self._known is not None and not params:
            text = self._known(url)
            if text is not None:
                return StaticResponse(text)
        loop = self._loop_for(url, kwargs)
        if loop is not None:
            return self._noted(self._over_loop(loop, "GET", url, params, None, headers), url)
        try:
            response = self.session.get(url, params=params, headers=headers, **kwargs)
        except requests.RequestException as exc:
            raise connect_failed(exc, url) from exc
        return self._noted(response, url)

    def post(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        loop = self._loop_for(url, kwargs)
        if loop is not None:
            return self._noted(self._over_loop(loop, "POST", url, params, data, headers), url)
        try:
            response = self.session.post(url, params=params, data=data, headers=headers, **kwargs)
        except requests.RequestException as exc:
            raise connect_failed(exc, url) from exc
        return self._noted(response, url)

    def close(self) -> None:
        """MSAL never owns the shared session; closing is the provider's job."""

    # -- what the last answer said --------------------------------------------------------------
    # MSAL hands its caller the body of a token answer, never its status or headers; the retry
    # policy needs both (a 429 or 5xx is transient, and Retry-After says when to come back).

    def forget_answer(self) -> None:
        """Start a new request of this thread: :meth:`last_answer` is None until it answers."""
        self._local.answer = None

    def last_answer(self) -> Answer | None:
        """The status and Retry-After of the last answer this thread received (None: none since
        :meth:`forget_answer`, e.g. the request timed out)."""
        answer: Answer | None = getattr(self._local, "answer", None)
        return answer

    def _noted(self, response: Any, url: str) -> Any:
        self._local.answer = Answer(int(response.status_code), response.headers.get("Retry-After"))
        HOSTS.answered(urlsplit(url).netloc)
        return response

    # -- over the event loop --------------------------------------------------------------------

    def _loop_for(self, url: str, kwargs: Mapping[str, Any]) -> asyncio.AbstractEventLoop | None:
        """The loop to send this request on, or None to send it through requests."""
        loop: asyncio.AbstractEventLoop | None = getattr(self._local, "loop", None)
        if loop is None or self._aio_session is None or kwargs or self._stopped:
            return None  # extra requests arguments (a timeout, …) keep requests' semantics
        if loop.is_closed() or not loop.is_running():
            return None
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is loop:
                return None  # on the loop's own thread waiting for it would deadlock
        if self._tls_for(url) is USE_REQUESTS:
            return None
        return loop

    def _tls_for(self, url: str) -> Any:
        """The TLS setting requests would use for ``url``'s origin, as aiohttp's ``ssl=``
        (:func:`~cspgraph.http.sessions.loop_tls_for`), worked out once per origin."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        tls = self._tls.get(origin)
        if tls is not None:
            return tls
        tls = loop_tls_for(self.session, url)
        with self._tls_lock:
            return self._tls.setdefault(origin, tls)

    def _over_loop(
        self,
        loop: asyncio.AbstractEventLoop,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        data: Any,
        headers: Mapping[str, str] | None,
    ) -> Any:
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, doseq=True)
        body, send_headers = encode_body(data, headers)
        connect, read = getattr(self.session, "timeout", REQUESTS_TIMEOUT)
        request = self._send(method, url, body, send_headers, self._tls_for(url), connect, read)
        try:
            future = asyncio.run_coroutine_threadsafe(request, loop)
        except RuntimeError:  # the loop closed in between
            request.close()
            return self._via_requests(method, url, data, headers)
        response = self._wait(future, url, connect + read + 5.0)
        if self.session.hooks.get("response"):
            self._run_hooks(method, url, response)
        return response

    def _wait(self, future: concurrent.futures.Future[LoopResponse], url: str, limit: float) -> Any:
        """The answer, waiting in short steps: the loop enforces the timeouts, but it cannot
        while it is blocked, e.g. by a provider closing its worker pool from the loop's thread
        (:meth:`stop_loop_requests` then ends the wait)."""
        deadline = time.monotonic() + limit
        while True:
            try:
                return future.result(timeout=0.1)
            except concurrent.futures.TimeoutError:
                if self._stopped or time.monotonic() > deadline:
                    future.cancel()
                    raise requests.exceptions.ReadTimeout(
                        f"no answer from {_origin(url)}"
                    ) from None
            except concurrent.futures.CancelledError:
                stopped = "the event loop stopped during the request"
                raise requests.ConnectionError(stopped) from None

    def stop_loop_requests(self) -> None:
        """From now on send through requests, and give up waiting on a loop (closing time)."""
        self._stopped = True

    def _run_hooks(self, method: str, url: str, response: LoopResponse) -> None:
        """Whoever watches the shared session (logging, metrics, tests counting requests) keeps
        seeing MSAL's traffic: its ``response`` hooks get a requests-shaped copy."""
        copy = requests.Response()
        copy.status_code = response.status_code
        copy.headers = CaseInsensitiveDict(response.headers)
        copy._content = response.text.encode("utf-8")
        copy.encoding = "utf-8"
        copy.url = url
        copy.request = requests.Request(method, url).prepare()
        for hook in self.session.hooks["response"]:  # as requests.hooks.dispatch_hook does
            copy = hook(copy) or copy

    def _via_requests(
        self, method: str, url: str, data: Any, headers: Mapping[str, str] | None
    ) -> Any:
        if method == "GET":
            return self.session.get(url, headers=headers)
        return self.session.post(url, data=data, headers=headers)

    async def _send(
        self,
        method: str,
        url: str,
        body: bytes | str | None,
        headers: dict[str, str],
        tls: Any,
        connect: float,
        read: float,
    ) -> LoopResponse:
        # Lazy on purpose: importing the token layer must not load aiohttp (~150 ms); only an
        # async caller's loop, which has it loaded already, gets here.
        import aiohttp
        from yarl import URL

        assert self._aio_session is not None
        session = await self._aio_session()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
        self.loop_requests += 1
        try:
            async with session.request(
                method, URL(url, encoded=True), data=body, headers=headers, timeout=timeout,
                ssl=True if tls is self._aio_default_tls else tls,
            ) as response:  # fmt: skip
                raw = await response.read()
                text = raw.decode(response.charset or "utf-8", "replace")
                return LoopResponse(response.status, text, response.headers)
        # The same exception classes requests raises, so the error taxonomy is unchanged.
        except aiohttp.ClientSSLError as exc:
            raise requests.exceptions.SSLError(f"{_origin(url)}: {exc}") from None
        except aiohttp.ConnectionTimeoutError:
            raise requests.exceptions.ConnectTimeout(f"connecting to {_origin(url)}") from None
        except TimeoutError:
            raise requests.exceptions.ReadTimeout(f"reading from {_origin(url)}") from None
        except aiohttp.ClientConnectorError as exc:
            raise ConnectFailed(f"{_origin(url)}: {exc.os_error}", urlsplit(url).netloc) from None
        except aiohttp.ClientError as exc:
            raise requests.ConnectionError(f"{_origin(url)}: {type(exc).__name__}") from None


def encode_body(
    data: Any, headers: Mapping[str, str] | None
) -> tuple[bytes | str | None, dict[str, str]]:
    """A request body and headers as requests would send them: a dict becomes form fields
    (None values left out, lists repeated) with a form Content-Type unless one is given; text
    and bytes go as they are."""
    send_headers = dict(headers or {})
    if not isinstance(data, Mapping):
        return data, send_headers
    fields = [(k, v) for k, v in data.items() if v is not None]
    if not any(k.lower() == "content-type" for k in send_headers):
        send_headers["Content-Type"] = "application/x-www-form-urlencoded"
    return urlencode(fields, doseq=True), send_headers


def _origin(url: str) -> str:
    """Where a request went, without path or query (a query may carry anything)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class DiscoveryOnlyHttpCache(dict[Any, Any]):
    """MSAL's ``http_cache`` that keeps discovery GETs but never a token endpoint's answer.

    MSAL replays a token endpoint's 400 for 60 s and a 429/5xx for its Retry-After (client-traps
    §5): a "fresh token" retry after consent has propagated would get the stale error back
    without a request being sent. Retrying is the caller's decision here (the error taxonomy says
    when), so POST answers are simply not stored.
    """

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, str) and key.startswith("POST "):
            return
        super().__setitem__(key, value)


# -- log hygiene -----------------------------------------------------------------------------------

_SECRET_FIELDS = re.compile(
    r'("(?:code|code_verifier|client_assertion|client_secret|assertion|password|access_token|'
    r'refresh_token|id_token)"\s*:\s*)"[^"]*"'
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+")


class RedactSecrets(logging.Filter):
    """Scrubs credentials from MSAL's DEBUG records.

    MSAL masks tokens and the client secret in its cache-event dump, but not the authorization
    code nor the PKCE verifier of an auth-code redemption; any JWT-shaped string is masked too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = _JWT.sub("<jwt>", _SECRET_FIELDS.sub(r'\1"********"', message))
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


_REDACTOR = RedactSecrets()


def redact_msal_logs() -> None:
    """Attach the redacting filter to every MSAL logger (idempotent).

    A logger's filters only see records created on that logger, so each ``msal.*`` logger gets
    its own reference (the names MSAL 1.39 logs under, and any created since)."""
    names = {
        "msal",
        "msal.application",
        "msal.token_cache",
        "msal.authority",
        "msal.telemetry",
        "msal.throttled_http_client",
        "msal.oauth2cli.oauth2",
        "msal.oauth2cli.oidc",
        "msal.oauth2cli.assertion",
        "msal.oauth2cli.authcode",
    }
    names.update(n for n in logging.root.manager.loggerDict if n.startswith("msal"))
    for name in names:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
