"""A scripted stand-in for Microsoft Graph, served over real sockets on 127.0.0.1.

Not the emulator: it knows nothing about tenants or permissions. Each test scripts exactly the
answers it needs (pages with nextLinks, 429s with or without Retry-After, 5xx, $batch items) and
then inspects :attr:`GraphStub.seen` to see what the client really put on the wire.
"""

from __future__ import annotations

import random
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import orjson
from aiohttp import web

Handler = Callable[[web.Request, bytes], Awaitable[web.StreamResponse] | web.StreamResponse]


@dataclass
class Seen:
    method: str
    path: str  # decoded path
    raw_path: str  # path and query exactly as sent
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def json_reply(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def graph_error(
    status: int,
    code: str,
    message: str = "",
    *,
    request_id: str = "rid-0000",
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"date": "2024-01-01T00:00:00", "request-id": request_id},
        }
    }
    return json_reply(body, status, {"request-id": request_id, **(headers or {})})


def throttled(retry_after: str | None = "0.001", request_id: str = "rid-429") -> web.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return graph_error(429, "TooManyRequests", "Please retry again later.",
                       request_id=request_id, headers=headers)  # fmt: skip


class GraphStub:
    """Routes are (method, path) -> handler; paths include the version: ``/v1.0/users``."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._routes: dict[tuple[str, str], Handler] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    def route(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method.upper(), path)] = handler

    def script(self, method: str, path: str, replies: Iterable[Callable[[], web.Response]]) -> None:
        """Answer ``path`` with ``replies`` in order (factories: a Response is sent only once)."""
        queue = deque(replies)

        def next_reply(request: web.Request, body: bytes) -> web.Response:
            if not queue:
                return graph_error(500, "StubExhausted", "the script has no more answers")
            return queue.popleft()()

        self.route(method, path, next_reply)

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None)
        assert sockets
        port = sockets[0].getsockname()[1]
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(
                method=request.method,
                path=request.path,
                raw_path=request.raw_path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body,
            )
        )
        handler = self._routes.get((request.method, request.path))
        if handler is None:
            return graph_error(404, "Request_ResourceNotFound", f"no route for {request.path}")
        result = handler(request, body)
        if isinstance(result, web.StreamResponse):
            return result
        return await result


@dataclass
class Collection:
    """A paged Graph collection: ``$skiptoken`` is an offset wrapped like Intune's tokens.

    ``throttle_rate`` answers that share of requests (from a seeded RNG) with 429 + Retry-After.
    The nextLink keeps the request's other query options, as Graph's does, and is absolute.
    """

    items: list[dict[str, Any]]
    page_size: int = 100
    throttle_rate: float = 0.0
    retry_after: str | None = "0.001"
    delta_link: bool = False
    seed: int = 7
    throttled_count: int = 0
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def __call__(self, request: web.Request, _body: bytes) -> web.Response:
        if self.throttle_rate and self._rng.random() < self.throttle_rate:
            self.throttled_count += 1
            return throttled(self.retry_after)
        token = request.query.get("$skiptoken")
        offset = int(token.split("'")[1]) if token else 0
        page_size = min(int(request.query.get("$top", self.page_size)), self.page_size)
        page = self.items[offset : offset + page_size]
        body: dict[str, Any] = {"@odata.context": "stub", "value": page}
        if offset == 0 and request.query.get("$count") == "true":
            body["@odata.count"] = len(self.items)
        if offset + page_size < len(self.items):
            kept = [
                f"{quote(k, safe='$')}={quote(v, safe='$,()')}"
                for k, v in request.query.items()
                if k != "$skiptoken"
            ]
            token = quote(f"Last='{offset + page_size}',Id='x y'", safe="")
            query = "&".join([*kept, f"$skiptoken={token}"])
            body["@odata.nextLink"] = f"{request.url.origin()}{request.path}?{query}"
        elif self.delta_link:
            body["@odata.deltaLink"] = f"{request.url.origin()}{request.path}?$deltatoken=done"
        return json_reply(body)


def users(n: int) -> list[dict[str, Any]]:
    return [{"id": f"user-{i:05d}", "displayName": f"User {i}"} for i in range(n)]


def raw_query_value(raw_path: str, name: str) -> str | None:
    """A query value exactly as it was sent (still percent-encoded)."""
    _, _, query = raw_path.partition("?")
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if unquote(key) == name:
            return value
    return None


# -- TLS with a local CA, as the emulator serves it ------------------------------------------------


def make_tls(directory: Path) -> tuple[ssl.SSLContext, str]:
    """A CA and a 127.0.0.1 server certificate (the emulator's own local CA, which is made for
    exactly this); returns the server context and the CA file."""
    from csp_emulator.server import LocalCA

    ca = LocalCA(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(ca.cert_path, ca.key_path)
    return context, str(ca.ca_path)
