"""The emulated Microsoft Graph over HTTP: ``/v1.0`` and ``/beta``.

This module only translates between HTTP and :mod:`pipeline`: it reads the path, query, headers
and body into a :class:`GraphRequest`, authenticates the bearer token, hands ``$batch`` to
:mod:`batch` and everything else to the pipeline, and writes the answer with the headers Graph
sends on every response (wire-facts §2.2): ``request-id``, ``client-request-id`` (echoed),
``Date`` (from the server), ``OData-Version``, ``x-ms-ags-diagnostic`` and Graph's Content-Type.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from csp_emulator.context import EmulatorContext
from csp_emulator.graph import authn, batch, pipeline, routes
from csp_emulator.graph.errors import GraphError, bad_request, invalid_json
from csp_emulator.graph.request import (
    JSON_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    GraphRequest,
    GraphResponse,
)
from csp_emulator.latency import OBJECTS_HEADER, objects_in

VERSIONS = ("v1.0", "beta")
METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE"]

# The data centre Graph names in x-ms-ags-diagnostic, by the tenant's region.
_DATA_CENTERS = {"NA": "East US", "EU": "North Europe", "WW": "West US"}


def _diagnostic(region: str) -> str:
    server = {
        "DataCenter": _DATA_CENTERS.get(region, "West US"),
        "Slice": "E",
        "Ring": "5",
        "ScaleUnit": "001",
        "RoleInstance": "EMULATOR000001",
    }
    return orjson.dumps({"ServerInfo": server}).decode()


_DIAGNOSTICS = {region: _diagnostic(region) for region in _DATA_CENTERS}


def build_app(ctx: EmulatorContext) -> Starlette:
    async def graph(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        request_id = str(uuid.uuid4())
        client_request_id = headers.get("client-request-id") or request_id
        graph_request = GraphRequest(
            method=request.method,
            version="",
            segments=[],
            query={},
            query_items=[],
            headers=headers,
            request_id=request_id,
            client_request_id=client_request_id,
        )
        region = "NA"
        try:
            _read_target(request, graph_request)
            caller = authn.authenticate(ctx, headers.get("authorization"))
            region = ctx.world.tenants[caller.tenant_id].region
            graph_request.body = await _read_body(request)
            if graph_request.segments == ["$batch"] and request.method == "POST":
                answer = batch.handle(ctx, graph_request, caller)
            else:
                answer = pipeline.execute(ctx, graph_request, caller)
        except GraphError as exc:
            answer = pipeline.error_response(exc, graph_request, ctx.world.clock.now())
        response = _render(answer, request_id, client_request_id, region)
        if ctx.world.settings.latency.active("graph"):
            # For the latency model's per-object cost (latency_middleware removes it).
            response.headers[OBJECTS_HEADER] = str(objects_in(answer.body))
        return response

    return Starlette(routes=[Route("/{path:path}", graph, methods=METHODS)])


def _read_target(request: Request, into: GraphRequest) -> None:
    """Version, path segments and query options, from the raw (still encoded) request line."""
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    raw_path = raw.decode("latin-1").split("?", 1)[0].lstrip("/")
    version, _, rest = raw_path.partition("/")
    if version not in VERSIONS:
        # Graph's answer to an unknown version (wording guessed).
        raise bad_request(f"Invalid version: {unquote(version)}", "BadRequest")
    into.version = version
    into.raw_path = rest
    into.segments = routes.normalize([unquote(s) for s in rest.split("/") if s])
    query_string = request.scope.get("query_string", b"").decode("latin-1")
    into.query_items = parse_qsl(query_string, keep_blank_values=True)
    into.query = {k.lower(): v for k, v in into.query_items}


async def _read_body(request: Request) -> Any:
    if request.method not in ("POST", "PATCH", "PUT"):
        return None
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid_json() from None


def _render(
    answer: GraphResponse, request_id: str, client_request_id: str, region: str
) -> Response:
    headers = {
        "request-id": request_id,
        "client-request-id": client_request_id,
        "x-ms-ags-diagnostic": _DIAGNOSTICS.get(region, _DIAGNOSTICS["WW"]),
        "Strict-Transport-Security": "max-age=31536000",
        "Cache-Control": "no-cache",
    }
    headers.update(answer.headers)
    if answer.body is None:
        return Response(status_code=answer.status, headers=headers)
    if isinstance(answer.body, str):
        return Response(
            answer.body,
            status_code=answer.status,
            headers=headers,
            media_type=answer.content_type or TEXT_CONTENT_TYPE,
        )
    headers["OData-Version"] = "4.0"
    content = orjson.dumps(answer.body)
    response = Response(content, status_code=answer.status, headers=headers)
    # Set verbatim: Starlette would append "; charset=utf-8" to a media type it is given.
    response.headers["content-type"] = answer.content_type or JSON_CONTENT_TYPE
    return response
