"""JSON batching: ``POST /{version}/$batch`` (Graph docs: json-batching; wire-facts §2.6).

The batch as a whole answers 400 when it does not parse: more than 20 requests, a duplicate id
(ids compare case-insensitively), a ``dependsOn`` naming no request of the batch or forming a
cycle, a body without a ``Content-Type`` header. Otherwise it answers 200 and every item has its
own status: each item goes through the same pipeline as a top-level request — its own route,
CSP scope, permission check and throttling charge, so a throttled item is a 429 with its own
``Retry-After`` while its neighbours succeed. An item whose dependency did not succeed is not run
and answers 424.

Responses come back in an order of the emulator's choosing — reverse request order — so a client
that pairs responses to requests by position, which Graph does not promise, fails here rather than
in production.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from csp_emulator.context import EmulatorContext
from csp_emulator.graph import pipeline, routes
from csp_emulator.graph.caller import Caller
from csp_emulator.graph.errors import GraphError
from csp_emulator.graph.request import JSON_CONTENT_TYPE, GraphRequest, GraphResponse

MAX_REQUESTS = 20
_METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})


def _invalid(message: str) -> GraphError:
    # Graph answers malformed batches with code BadRequest (messages partly guessed).
    return GraphError(400, "BadRequest", message)


def handle(ctx: EmulatorContext, outer: GraphRequest, caller: Caller) -> GraphResponse:
    items = _parse(outer.body)
    by_id = {str(item["id"]).lower(): item for item in items}
    results: dict[str, dict[str, Any]] = {}
    for item in _execution_order(items, by_id):
        key = str(item["id"]).lower()
        failed = [
            d for d in item.get("dependsOn") or [] if not 200 <= results[d.lower()]["status"] < 300
        ]
        if failed:
            results[key] = _failed_dependency(item)
            continue
        response = pipeline.execute(ctx, _item_request(outer, item), caller)
        results[key] = _item_response(item, response)
    order = [str(item["id"]).lower() for item in reversed(items)]
    return GraphResponse(body={"responses": [results[key] for key in order]})


def _parse(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise _invalid("Invalid batch payload format.")
    items: list[dict[str, Any]] = body["requests"]
    if not items:
        raise _invalid("Invalid batch payload format: the batch has no requests.")
    if len(items) > MAX_REQUESTS:
        raise _invalid(f"Number of requests exceeds the limit of {MAX_REQUESTS}.")
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict) or not item.get("id") or not item.get("url"):
            raise _invalid("Invalid batch payload format: every request needs an id and a url.")
        key = str(item["id"]).lower()
        if key in seen:
            raise _invalid(f"Request Id '{item['id']}' is duplicated in the batch.")
        seen.add(key)
        method = str(item.get("method", "")).upper()
        if method not in _METHODS:
            raise _invalid(f"Invalid method '{item.get('method')}' for request '{item['id']}'.")
        headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        if "body" in item and "content-type" not in headers:
            # Graph's message for this case (captured).
            raise _invalid(
                f"Write request id : {item['id']} does not contain Content-Type header or body."
            )
        depends = item.get("dependsOn") or []
        if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
            raise _invalid(f"Invalid dependsOn for request '{item['id']}'.")
    for item in items:
        for dependency in item.get("dependsOn") or []:
            if dependency.lower() not in seen:
                raise _invalid(
                    f"Request '{item['id']}' depends on '{dependency}', which is not in the batch."
                )
    return items


def _execution_order(
    items: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Requests after everything they depend on; a cycle is a malformed batch."""
    order: list[dict[str, Any]] = []
    state: dict[str, str] = {}

    def visit(item: dict[str, Any]) -> None:
        key = str(item["id"]).lower()
        if state.get(key) == "done":
            return
        if state.get(key) == "visiting":
            raise _invalid(f"The dependsOn of request '{item['id']}' forms a cycle.")
        state[key] = "visiting"
        for dependency in item.get("dependsOn") or []:
            visit(by_id[dependency.lower()])
        state[key] = "done"
        order.append(item)

    for item in items:
        visit(item)
    return order


def _item_request(outer: GraphRequest, item: dict[str, Any]) -> GraphRequest:
    url = str(item["url"])
    parts = urlsplit(url)
    raw_path = parts.path.lstrip("/")
    raw_segments = [s for s in raw_path.split("/") if s]
    if raw_segments and raw_segments[0] == outer.version:
        # Tolerated: "/v1.0/users" inside a v1.0 batch means "/users".
        raw_segments = raw_segments[1:]
        raw_path = "/".join(raw_segments)
    query_items = parse_qsl(parts.query, keep_blank_values=True)
    headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
    headers.setdefault("client-request-id", outer.client_request_id)
    return GraphRequest(
        method=str(item["method"]).upper(),
        version=outer.version,
        segments=routes.normalize([unquote(s) for s in raw_segments]),
        query={k.lower(): v for k, v in query_items},
        query_items=query_items,
        headers=headers,
        body=item.get("body"),
        raw_path=raw_path,
        request_id=outer.request_id,
        client_request_id=outer.client_request_id,
    )


def _item_response(item: dict[str, Any], response: GraphResponse) -> dict[str, Any]:
    headers = dict(response.headers)
    out: dict[str, Any] = {"id": item["id"], "status": response.status}
    if response.body is not None:
        headers["Content-Type"] = response.content_type or JSON_CONTENT_TYPE
        out["body"] = response.body
    out["headers"] = headers
    return out


def _failed_dependency(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item["id"],
        "status": 424,
        "headers": {"Content-Type": "application/json"},
        # Code and message guessed: Graph documents only the status.
        "body": {"error": {"code": "FailedDependency", "message": "Dependency failed."}},
    }
