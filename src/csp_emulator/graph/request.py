"""The values every Graph handler works with: the request, the caller, the answer.

HTTP requests and ``$batch`` items both become a :class:`GraphRequest`, so one pipeline serves
both and a batch item is authorized, scoped and throttled exactly like a top-level request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from csp_emulator.context import EmulatorContext
from csp_emulator.graph.caller import Caller
from csp_emulator.world.model import Tenant, World

# What Graph sends with a JSON success body (wire-facts §2.2).
JSON_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
ERROR_CONTENT_TYPE = "application/json"
TEXT_CONTENT_TYPE = "text/plain"


@dataclass
class GraphRequest:
    method: str
    version: str  # "v1.0" | "beta"
    # Path segments after the version, percent-decoded and normalized (see routes.normalize).
    segments: list[str]
    # Query options by lower-cased name ("$top"), and the originals in order for nextLinks.
    query: dict[str, str]
    query_items: list[tuple[str, str]]
    headers: dict[str, str]  # lower-cased names
    body: Any = None
    # The path after the version as the client sent it (still percent-encoded): links reuse it.
    raw_path: str = ""
    request_id: str = ""
    client_request_id: str = ""

    @property
    def eventual(self) -> bool:
        """``ConsistencyLevel: eventual`` was sent: the switch for advanced queries."""
        return self.headers.get("consistencylevel", "").strip().lower() == "eventual"

    @property
    def count_requested(self) -> bool:
        return self.query.get("$count", "").strip().lower() == "true"


@dataclass
class GraphResponse:
    status: int = 200
    body: Any = None  # dict → JSON; str → text/plain; None → no body
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


@dataclass
class Call:
    """One request on its way through a handler."""

    ctx: EmulatorContext
    request: GraphRequest
    caller: Caller
    tenant: Tenant
    params: tuple[str, ...]  # the path's ids, in order
    now: float

    @property
    def world(self) -> World:
        return self.ctx.world
