"""Graph ``$batch``: requests and responses, and how a batch is split and retried.

:meth:`~cspgraph.graph.client.GraphClient.batch` sends the envelopes; this module decides what goes
in them. Graph takes at most 20 requests per envelope and runs a ``dependsOn`` chain only inside
one, so :func:`chunk_by_dependencies` keeps every chain together. After a round,
:func:`ids_to_retry` picks the items worth sending again (throttled or 5xx, and the 424s that failed
only because of them) and :func:`without_settled_dependencies` drops the dependencies that already
succeeded, since Graph rejects an envelope naming an id it does not carry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cspgraph.graph.limits import RequestCost
from cspgraph.graph.wire import JsonObject, error_fields, find_header
from cspgraph.http.errors import CspGraphError, classify_graph_error, error_from_rule

MAX_BATCH = 20  # Graph's limit per $batch request (wire-facts §2.6)


@dataclass(frozen=True, slots=True)
class BatchRequest:
    id: str
    method: str
    url: str  # relative to the version root: "/users?$select=id"
    body: Any = None
    headers: Mapping[str, str] | None = None
    depends_on: Sequence[str] = ()


@dataclass(slots=True)
class BatchResponse:
    id: str
    status: int
    headers: dict[str, str]
    body: Any
    tenant: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self) -> CspGraphError | None:
        """The classified failure of this item, or None when it succeeded."""
        if self.ok:
            return None
        code, message, request_id = error_fields(self.body)
        rule = classify_graph_error(self.status, code, message)
        return error_from_rule(
            rule,
            f"$batch item {self.id}: {message or f'HTTP {self.status}'}",
            code=code,
            status=self.status,
            tenant=self.tenant,
            request_id=request_id or find_header(self.headers, "request-id"),
        )

    def header(self, name: str) -> str | None:
        """A response header of this item, looked up case-insensitively."""
        return find_header(self.headers, name)

    def raise_for_status(self) -> None:
        error = self.error()
        if error is not None:
            raise error


# -- splitting and retrying ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchItem:
    """A request checked and costed for one envelope (its URL relative to the version root)."""

    request: BatchRequest
    url: str
    cost: RequestCost
    depends_on: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.depends_on and self.request.depends_on:
            object.__setattr__(self, "depends_on", tuple(self.request.depends_on))

    @property
    def key(self) -> str:
        return self.request.id.lower()  # Graph treats batch ids case-insensitively

    def wire(self) -> JsonObject:
        request = self.request
        item: JsonObject = {"id": request.id, "method": request.method.upper(), "url": self.url}
        headers = dict(request.headers or {})
        if request.body is not None:
            item["body"] = request.body
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"  # Graph requires it with a body
        if headers:
            item["headers"] = headers
        if self.depends_on:
            item["dependsOn"] = list(self.depends_on)
        return item


def check_batch_ids(items: Sequence[BatchItem]) -> None:
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        raise ValueError("$batch request ids must be unique (case-insensitively)")
    known = set(keys)
    for item in items:
        for dependency in item.depends_on:
            if dependency.lower() not in known:
                raise ValueError(f"$batch item {item.request.id} depends on unknown {dependency}")


def chunk_by_dependencies(items: Sequence[BatchItem]) -> list[list[BatchItem]]:
    """Envelopes of at most 20 items; items linked by dependsOn always share one."""
    parent: dict[str, str] = {item.key: item.key for item in items}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for item in items:
        for dependency in item.depends_on:
            if dependency.lower() in parent:
                parent[root(item.key)] = root(dependency.lower())
    groups: dict[str, list[BatchItem]] = {}
    for item in items:
        groups.setdefault(root(item.key), []).append(item)
    chunks: list[list[BatchItem]] = []
    current: list[BatchItem] = []
    for group in groups.values():
        if len(group) > MAX_BATCH:
            raise ValueError(f"a dependsOn chain of {len(group)} requests exceeds {MAX_BATCH}")
        if len(current) + len(group) > MAX_BATCH:
            chunks.append(current)
            current = []
        current.extend(group)
    if current:
        chunks.append(current)
    return chunks


def _retryable_item(item: BatchItem, response: BatchResponse) -> bool:
    if response.status in (429, 503, 504):
        return True
    return response.status >= 500 and item.request.method.upper() == "GET"


def ids_to_retry(items: Sequence[BatchItem], answered: Mapping[str, BatchResponse]) -> set[str]:
    """Throttled/5xx items, plus the 424s that failed only because one of those did."""
    retry = {item.key for item in items if _retryable_item(item, answered[item.key])}
    changed = bool(retry)
    while changed:
        changed = False
        for item in items:
            if item.key in retry or answered[item.key].status != 424:
                continue
            if any(d.lower() in retry for d in item.depends_on):
                retry.add(item.key)
                changed = True
    # A round that would resend only 424s has nothing to wait for: nothing to retry then.
    if all(answered[key].status == 424 for key in retry):
        return set()
    return retry


def without_settled_dependencies(item: BatchItem, retry_ids: set[str]) -> BatchItem:
    # Dependencies that already succeeded are not in the next envelope; Graph rejects dangling ids.
    kept = tuple(d for d in item.depends_on if d.lower() in retry_ids)
    if kept == item.depends_on:
        return item
    return BatchItem(item.request, item.url, item.cost, kept)
