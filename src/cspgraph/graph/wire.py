"""Graph's side of the wire: prepared requests, Graph's error bodies and headers, the counters.

The sending itself (tokens, retries, the fresh-token rule, the propagation wait) is
:class:`cspgraph.http.sender.Sender`, which :class:`~cspgraph.graph.client.GraphClient` holds;
this module tells the sender what is particular to Microsoft Graph: how a failed answer reads
(``{"error": {"code", "message", "innerError": {"request-id"}}}``, classified through
:mod:`cspgraph.http.errors`), that ``InvalidAuthenticationToken`` is worth one fresh token, and
what Graph's throttling headers teach the limiter (:class:`LimiterPacer`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDictProxy

from cspgraph.graph.limits import Limiter, RequestCost
from cspgraph.graph.scope import Operation
from cspgraph.http.errors import (
    CspGraphError,
    TransientError,
    classify_graph_error,
    error_from_rule,
)
from cspgraph.http.retry import parse_float
from cspgraph.http.sender import Reply, Sent, Service, parse_json, request_name

JsonObject = dict[str, Any]

# Graph's own gateway gives up on a request after about 100 s.
DEFAULT_TIMEOUT = 100.0


def app_of(tokens: object) -> Callable[[str], str | None] | None:
    """The token source's "which app (client id) serves this tenant", when it has one.

    Graph's app-wide budgets are per app; a source serving several apps (a
    :class:`~cspgraph.identity.TokenProvider` with one partner identity per region) names a
    tenant's app with ``app_for(tenant)`` once it has routed the tenant, without any I/O. Pass
    the result to :class:`~cspgraph.graph.limits.GraphLimiter` (``app_of=``) when building a
    limiter to share.
    """
    found = getattr(tokens, "app_for", None)
    return found if callable(found) else None


@dataclass(slots=True)
class GraphStats:
    """Counters for benchmarks and progress displays; cheap to bump on the hot path."""

    requests: int = 0  # HTTP requests sent, retries and $batch envelopes included
    batch_items: int = 0  # requests sent inside $batch envelopes
    throttled: int = 0  # 429 answers seen, $batch items included
    retries: int = 0  # requests (or $batch items) sent again
    errors: int = 0  # calls that ended in an exception
    bytes_sent: int = 0
    bytes_received: int = 0  # after decompression
    objects: int = 0  # collection items handed to callers by pages()/list()

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request ready to send: its URL, what it is (for the limiter) and its headers."""

    url: str
    operation: Operation
    cost: RequestCost
    headers: Mapping[str, str]


class LimiterPacer:
    """The sender's pacer over a Graph limiter: booking goes straight to the limiter (its bound
    method, so the hot path has no extra call), and Graph's throttling headers are read here."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        self.reserve = limiter.reserve

    def throttled(
        self, key: str, cost: RequestCost, delay: float, headers: CIMultiDictProxy[str]
    ) -> None:
        self.limiter.record_throttled(
            key, cost, delay=delay, throttle_scope=headers.get("x-ms-throttle-scope")
        )

    def answered(self, key: str, cost: RequestCost, headers: CIMultiDictProxy[str]) -> None:
        self.limiter.record_response(
            key,
            cost,
            resource_units=parse_float(headers.get("x-ms-resource-unit")),
            limit_percentage=parse_float(headers.get("x-ms-throttle-limit-percentage")),
        )


def graph_error(reply: Reply, sent: Sent) -> CspGraphError:
    """A failed Graph answer in the taxonomy, with Graph's code, message and request id."""
    code, message, request_id = error_fields(parse_json(reply.body))
    if message is None and reply.body:
        message = reply.body[:200].decode("utf-8", "replace")
    rule = classify_graph_error(reply.status, code, message)
    after = f" after {sent.retries} retries" if sent.retries else ""
    return error_from_rule(
        rule,
        f"{sent.what} failed{after}: {message or f'HTTP {reply.status}'}",
        code=code,
        status=reply.status,
        tenant=sent.key,
        request_id=request_id or reply.headers.get("request-id") or sent.request_id,
    )


GRAPH = Service(
    name="Microsoft Graph",
    request_id_header="client-request-id",
    classify=graph_error,
    # An expired or rolled-over token: one retry with a fresh one (a second rejection is real).
    token_rejected=lambda error: error.code == "InvalidAuthenticationToken",
)


def unexpected(tenant: str, method: str, url: str, reply: Reply, wanted: str) -> CspGraphError:
    """Graph answered, but not in the shape the call expects."""
    return TransientError(
        f"{request_name(method, url)}: expected {wanted}, got HTTP {reply.status} "
        f"({len(reply.body)} bytes)",
        status=reply.status,
        tenant=tenant,
        request_id=reply.headers.get("request-id"),
        reason="Microsoft Graph answered in an unexpected shape",
    )


def error_fields(data: Any) -> tuple[str | None, str | None, str | None]:
    """(code, message, request id) from a Graph error body: {"error": {"code", "message", …}}."""
    if not isinstance(data, dict):
        return None, None, None
    error = data.get("error")
    if isinstance(error, dict):
        inner = error.get("innerError") or error.get("innererror") or {}
        request_id = inner.get("request-id") if isinstance(inner, dict) else None
        return _str(error.get("code")), _str(error.get("message")), _str(request_id)
    if isinstance(error, str):  # an OAuth-shaped answer
        return error, _str(data.get("error_description")), None
    return None, None, None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def find_header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup in a $batch item's plain header dict."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None
