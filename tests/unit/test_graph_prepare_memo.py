"""GraphClient keeps prepared requests by their arguments: a kept one must equal a fresh build,
arguments that encode differently must not share one, and the CSP scope guard still runs."""

from __future__ import annotations

from typing import Any

import pytest

from cspgraph.graph import CspScopeError, GraphClient
from cspgraph.graph.client import _MEMO_SIZE

TENANT = "11111111-2222-3333-4444-555555555555"
GRAPH = "https://graph.example"


class NoTokens:
    async def get_token(self, tenant: str, *, fresh: bool = False) -> str:
        raise AssertionError("preparing a request needs no token")


def client(**kwargs: Any) -> GraphClient:
    return GraphClient(NoTokens(), graph_url=GRAPH, throttle_priority="Low", **kwargs)


CASES: list[tuple[str, str, dict[str, Any] | None, dict[str, str] | None]] = [
    ("GET", "/users/delta", {"$select": "id,displayName"}, {"Prefer": "odata.maxpagesize=999"}),
    ("GET", "/users", {"$select": "id", "$top": "999"}, None),
    ("GET", "/users", {"$filter": "endswith(mail,'@contoso.com')", "$count": True}, None),
    ("GET", "/groups", {"$search": '"displayName:room"'}, None),
    ("GET", "users/$count", None, None),
    ("GET", "/deviceManagement/managedDevices", {"$top": 50}, None),
    ("GET", "/users/a b#EXT#@x.com", {"$select": "id"}, None),
    ("POST", "/users", None, {"Content-Type": "application/json"}),
]


@pytest.mark.parametrize(("method", "path", "params", "headers"), CASES)
def test_a_kept_request_equals_a_fresh_build(
    method: str, path: str, params: dict[str, Any] | None, headers: dict[str, str] | None
) -> None:
    c = client()
    first = c._prepare(method, path, params, "v1.0", headers)
    again = c._prepare(method, path, dict(params or {}), "v1.0", dict(headers or {}) or None)
    fresh = c._build(method, path, params, "v1.0", headers)
    assert again is first
    assert (again.url, again.operation, again.cost, dict(again.headers)) == (
        fresh.url,
        fresh.operation,
        fresh.cost,
        dict(fresh.headers),
    )


def test_arguments_that_encode_differently_do_not_share_a_request() -> None:
    c = client()
    as_bool = c._prepare("GET", "/users", {"$count": True}, "v1.0", None)
    as_int = c._prepare("GET", "/users", {"$count": 1}, "v1.0", None)
    assert "$count=true" in as_bool.url and "$count=1" in as_int.url
    beta = c._prepare("GET", "/users", {"$count": True}, "beta", None)
    assert beta.url.startswith(f"{GRAPH}/beta/")
    prefer = c._prepare("GET", "/users", {"$count": True}, "v1.0", {"Prefer": "x"})
    assert prefer.headers["Prefer"] == "x" and "Prefer" not in as_bool.headers
    # Lists are not kept (their text is built each time), but still prepared right.
    listed = c._prepare("GET", "/users", {"$select": ["id", "mail"]}, "v1.0", None)
    assert listed.url.endswith("$select=id,mail")
    assert len(c._prepared) == 4


def test_the_scope_guard_runs_on_kept_requests_too() -> None:
    c = client(allow_any_resource=True)
    outside = c._prepare("GET", "/me/drive/root/children", None, "v1.0", None)
    assert not outside.operation.in_scope
    c.allow_any_resource = False
    with pytest.raises(CspScopeError):
        c._prepare("GET", "/me/drive/root/children", None, "v1.0", None)
    with pytest.raises(CspScopeError):  # and an out-of-scope build is never kept
        client()._prepare("GET", "/me/drive/root/children", None, "v1.0", None)


def test_saved_links_are_not_kept_and_the_memo_stays_small() -> None:
    c = client()
    link = f"{GRAPH}/v1.0/users?$skiptoken=abc"
    assert c._prepare("GET", link, None, "v1.0", None).url == link
    assert c._prepared == {}
    for n in range(_MEMO_SIZE + 5):
        c._prepare("GET", f"/users/{n}", None, "v1.0", None)
    assert len(c._prepared) <= _MEMO_SIZE
    with pytest.raises(ValueError, match="refusing to send a Graph token"):
        c._prepare("GET", "https://evil.example/v1.0/users", None, "v1.0", None)
