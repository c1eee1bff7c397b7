"""Route tables for the hosts Starlette routes by path: login, Partner Center and control.

Each host declares its routes as data, one :class:`Route` per path naming the handler of each
method, the way the Graph host declares its table (graph/routes.py); handlers are module-level
functions of the context and the request. Binding a table to one context happens once, here.
HEAD is answered by the GET handler (Starlette allows HEAD wherever GET is allowed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

C = TypeVar("C")
H = TypeVar("H")

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Route(Generic[H]):
    """One path of a host and the handler of each method it answers."""

    path: str
    methods: Mapping[str, H]

    def handler(self, method: str) -> H:
        return self.methods[method] if method in self.methods else self.methods["GET"]


def starlette_routes(
    table: Sequence[Route[H]], endpoint: Callable[[Route[H]], Endpoint]
) -> list[StarletteRoute]:
    """Starlette's routes for ``table``; ``endpoint`` makes the function that serves a row."""
    return [StarletteRoute(r.path, endpoint(r), methods=list(r.methods)) for r in table]


def context_app(
    ctx: C,
    table: Sequence[Route[Callable[[C, Request], Awaitable[Response]]]],
    **options: Any,
) -> Starlette:
    """A Starlette app serving ``table`` with every handler called as ``handler(ctx, request)``."""

    def endpoint(route: Route[Callable[[C, Request], Awaitable[Response]]]) -> Endpoint:
        async def serve(request: Request) -> Response:
            return await route.handler(request.method)(ctx, request)

        return serve

    return Starlette(routes=starlette_routes(table, endpoint), **options)
