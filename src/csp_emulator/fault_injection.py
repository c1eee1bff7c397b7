"""Fault injection: answer a share of requests badly, the way each real host fails.

Faults come from ``world.settings.faults`` (the world file's ``[[settings.fault]]`` and the control
API's ``/_emulator/faults``). Each emulated host sits behind one :class:`FaultMiddleware`; for every
request it walks the faults in order:

* a ``latency`` fault sleeps (really: this is wall time, not the world clock) and keeps walking;
* the first other fault that fires answers the request instead of the host: ``429`` without
  ``Retry-After`` (the point is to exercise a client's own backoff), ``500``-``504`` in the host's
  own error shape, or ``drop``, which starts a response and then cuts the connection, so the client
  sees a broken transfer, never a status it could mistake for an answer.

A fault with a ``count`` fires at most that many times and is removed once spent. Whether a fault
with ``rate < 1`` fires is drawn from the seeded generator in ``faults.FaultState``, so the same
requests in the same order always meet the same faults; a reset reseeds it. Which faults exist and
how one is checked is faults.py.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from csp_emulator.context import EmulatorContext
from csp_emulator.faults import HOSTS, KINDS
from csp_emulator.http import json_response
from csp_emulator.world.model import Fault

_REASONS = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

# Graph's error codes for server faults (Graph docs: errors). 502 has no code of its own there.
_GRAPH_CODES = {
    429: ("TooManyRequests", "Please retry again later."),
    500: ("generalException", "An unspecified error has occurred."),
    502: ("generalException", "Bad gateway."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Please retry later."),
    504: ("timeout", "The operation timed out."),
}

# Entra's answers when the STS itself is in trouble (Entra docs: AADSTS error codes; which code
# goes with which status is the emulator's reading, unverified).
_LOGIN_CODES = {
    429: ("temporarily_unavailable", 90055, "The number of incoming requests has exceeded the "
          "throttling threshold. Try again later."),
    500: ("server_error", 50000, "There was an error issuing a token or an issue with our "
          "sign-in service."),
    502: ("temporarily_unavailable", 50000, "There was an error issuing a token or an issue "
          "with our sign-in service."),
    503: ("temporarily_unavailable", 90033, "A transient error has occurred. Please try again."),
    504: ("temporarily_unavailable", 50000, "The request timed out. Please try again."),
}  # fmt: skip


class DroppedConnection(Exception):
    """Raised after a response has started, so the server closes the connection mid-answer."""


class _HideDrops(logging.Filter):
    """Keeps uvicorn from logging a deliberate drop as an application crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


_HIDE_DROPS = _HideDrops()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class FaultMiddleware:
    """Applies the world's faults for one host (``"login"``, ``"graph"``, ``"partner_center"``)."""

    def __init__(self, app: ASGIApp, ctx: EmulatorContext, host: str) -> None:
        if host not in HOSTS:
            raise ValueError(f"unknown host {host!r}; expected one of {', '.join(HOSTS)}")
        self.app = app
        self.ctx = ctx
        self.host = host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.ctx.world.settings.faults:
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        for fault in list(self.ctx.world.settings.faults):
            if not self._fires(fault, path):
                continue
            if fault.kind == "latency":
                await asyncio.sleep(fault.latency)
                continue
            if fault.kind == "drop":
                await self._drop(send)
            else:
                await self._answer(int(fault.kind), scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _fires(self, fault: Fault, path: str) -> bool:
        if fault.host not in (self.host, "*") or not path.startswith(fault.path_prefix):
            return False
        if fault.kind not in KINDS:  # set behind the control API's back: never guess
            return False
        if fault.count is not None and fault.count <= 0:
            return False
        # Draw only for partial rates, so adding a rate-1 fault does not shift every later draw.
        if fault.rate < 1.0 and self.ctx.state.faults.rng.random() >= fault.rate:
            return False
        if fault.count is not None:
            fault.count -= 1
            if fault.count <= 0:
                faults = self.ctx.world.settings.faults
                if fault in faults:
                    faults.remove(fault)
        return True

    async def _drop(self, send: Send) -> None:
        # uvicorn answers 500 to an app that fails before responding, and closes the connection
        # when it fails after: so start a response that promises a body, then fail. (A HEAD
        # request has no body to break, so its client sees a complete, empty 200.)
        logger = logging.getLogger("uvicorn.error")
        if _HIDE_DROPS not in logger.filters:
            logger.addFilter(_HIDE_DROPS)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"512")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"value":[', "more_body": True})
        raise DroppedConnection(f"fault injected on {self.host}: connection dropped")

    async def _answer(self, status: int, scope: Scope, receive: Receive, send: Send) -> None:
        body, headers = self._error(status, scope)
        await _drain(receive)
        response = json_response(body, status, headers)
        await response(scope, receive, send)

    def _error(self, status: int, scope: Scope) -> tuple[dict[str, Any], dict[str, str]]:
        now = datetime.fromtimestamp(self.ctx.world.clock.now(), UTC)
        if self.host == "graph":
            request_id = str(uuid.uuid4())
            client_request_id = _header(scope, b"client-request-id") or request_id
            code, message = _GRAPH_CODES.get(status, ("generalException", _REASONS[status]))
            inner = {
                "date": now.strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_request_id,
            }
            if status == 429:
                inner.update({"code": "429", "message": "Please retry after", "status": "429"})
            return (
                {"error": {"code": code, "message": message, "innerError": inner}},
                {"request-id": request_id, "client-request-id": client_request_id},
            )
        if self.host == "login":
            trace_id = str(uuid.uuid4())
            correlation_id = _header(scope, b"client-request-id") or str(uuid.uuid4())
            error, number, text = _LOGIN_CODES.get(
                status, ("temporarily_unavailable", 50000, _REASONS[status])
            )
            stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
            return (
                {
                    "error": error,
                    "error_description": (
                        f"AADSTS{number}: {text}\r\nTrace ID: {trace_id}\r\n"
                        f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"
                    ),
                    "error_codes": [number],
                    "timestamp": stamp,
                    "trace_id": trace_id,
                    "correlation_id": correlation_id,
                    "error_uri": f"https://login.microsoftonline.com/error?code={number}",
                },
                {"client-request-id": correlation_id, "x-ms-request-id": trace_id},
            )
        headers = {
            "MS-CorrelationId": _header(scope, b"ms-correlationid") or str(uuid.uuid4()),
            "MS-RequestId": _header(scope, b"ms-requestid") or str(uuid.uuid4()),
        }
        if status == 429:
            # Partner Center's own throttling shape, minus the seconds it would normally promise.
            return (
                {"statusCode": 429, "message": "Rate limit is exceeded. Try again later."},
                headers,
            )
        description = "Unexpected service error" if status == 500 else _REASONS[status]
        return (
            {"code": "800003", "description": description, "data": [], "source": "PartnerFD"},
            headers,
        )


async def _drain(receive: Receive) -> None:
    """Read the request body the host will never see, so the connection stays reusable."""
    while True:
        message: Message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
