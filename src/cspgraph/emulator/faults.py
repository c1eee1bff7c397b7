"""PLACEHOLDER replaced by the faults/throttling work in this session."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


class FaultMiddleware:
    def __init__(self, app: ASGIApp, ctx: Any, host: str) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
