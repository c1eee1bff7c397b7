"""GraphClient against a scripted Graph stub over real sockets (see graph_stub.py)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from cspgraph.graph import (
    CSP_RULE,
    BadRequestError,
    BatchRequest,
    CspScopeError,
    GraphClient,
    GraphLimiter,
    NeedsPersonError,
    NoLimiter,
    PropagatingError,
    PropagationPolicy,
    TransientError,
)
from cspgraph.graph.limits import RequestCost
from cspgraph.graph.scope import Family
from tests.unit.graph_stub import (
    Collection,
    GraphStub,
    graph_error,
    json_reply,
    make_tls,
    raw_query_value,
    throttled,
    users,
)

TENANT = "11111111-2222-3333-4444-555555555555"


class FakeTokens:
    """Hands out ``token-<generation>``; fresh=True starts a new generation."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.generation = 0

    async def get_token(self, tenant: str, *, fresh: bool = False) -> str:
        self.calls.append((tenant, fresh))
        if fresh:
            self.generation += 1
        return f"token-{self.generation}"

    @property
    def fresh_calls(self) -> int:
        return sum(1 for _, fresh in self.calls if fresh)


class FakeTime:
    """A clock that moves only when the client sleeps; every requested sleep is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def tokens() -> FakeTokens:
    return FakeTokens()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest_asyncio.fixture
async def client(
    stub: GraphStub, tokens: FakeTokens, fake_time: FakeTime
) -> AsyncIterator[GraphClient]:
    async with GraphClient(
        tokens,
        graph_url=stub.url,
        limiter=NoLimiter(),  # mechanics only: the limiter's own pacing is tested on its own
        sleep=fake_time.sleep,
        rng=random.Random(3),
    ) as graph:
        yield graph


def make_client(stub: GraphStub, tokens: FakeTokens, fake_time: FakeTime, **kw: Any) -> GraphClient:
    kw.setdefault("limiter", NoLimiter())
    kw.setdefault("sleep", fake_time.sleep)
    return GraphClient(tokens, graph_url=stub.url, **kw)


# -- paging ----------------------------------------------------------------------------------------


async def test_list_follows_every_page_without_loss_or_duplication(
    stub: GraphStub, client: GraphClient
) -> None:
    everyone = users(1050)
    stub.route("GET", "/v1.0/users", Collection(everyone, page_size=100))

    seen_pages: list[int] = []
    got = [
        u["id"]
        async for u in client.list(
            TENANT, "/users", select=["id", "displayName"],
            page_callback=lambda page: seen_pages.append(len(page.items)),
        )
    ]  # fmt: skip

    assert got == [u["id"] for u in everyone]
    assert seen_pages == [100] * 10 + [50]
    assert client.stats.objects == 1050
    assert client.stats.requests == 11
    assert client.stats.bytes_received > 0


async def test_next_link_is_followed_verbatim(stub: GraphStub, client: GraphClient) -> None:
    collection = Collection(users(250), page_size=100)
    stub.route("GET", "/v1.0/users", collection)

    pages = [page async for page in client.pages(TENANT, "/users", top=100)]

    assert len(pages) == 3
    for page, request in zip(pages[:-1], stub.seen[1:], strict=True):
        assert page.next_link is not None
        assert page.next_link.endswith(request.raw_path)  # not re-encoded, not decoded
    assert "%27" in stub.seen[1].raw_path  # the skiptoken's quotes stayed encoded


async def test_consistency_level_is_sent_on_every_page_with_count(
    stub: GraphStub, client: GraphClient
) -> None:
    stub.route("GET", "/v1.0/users", Collection(users(301), page_size=100))

    pages = [page async for page in client.pages(TENANT, "/users", count=True)]

    assert [len(p.items) for p in pages] == [100, 100, 100, 1]
    assert pages[0].count == 301
    assert all(p.count is None for p in pages[1:])
    assert len(stub.seen) == 4
    assert all(s.headers.get("ConsistencyLevel") == "eventual" for s in stub.seen)
    assert stub.seen[0].query["$count"] == "true"


@pytest.mark.parametrize(
    ("filter_text", "advanced"),
    [
        ("endsWith(mail,'@contoso.com')", True),
        ("accountEnabled ne true", True),
        ("not(startsWith(displayName,'A'))", True),
        ("startsWith(displayName,'A')", False),
        ("displayName eq 'not ne endsWith('", False),  # operators inside a literal do not count
    ],
)
async def test_advanced_filters_add_consistency_level_and_count(
    stub: GraphStub, client: GraphClient, filter_text: str, advanced: bool
) -> None:
    stub.route("GET", "/v1.0/users", Collection(users(3)))

    items = [u async for u in client.list(TENANT, "/users", filter=filter_text)]

    assert len(items) == 3
    request = stub.seen[0]
    assert request.query["$filter"] == filter_text
    assert ("ConsistencyLevel" in request.headers) is advanced
    assert (request.query.get("$count") == "true") is advanced


async def test_search_sends_consistency_level_and_quotes_the_clause(
    stub: GraphStub, client: GraphClient
) -> None:
    stub.route("GET", "/v1.0/groups", Collection([{"id": "g1"}]))

    [_ async for _ in client.list(TENANT, "/groups", search="displayName:sales & ops")]

    request = stub.seen[0]
    assert request.headers["ConsistencyLevel"] == "eventual"
    assert request.query["$search"] == '"displayName:sales & ops"'
    assert "$count" not in request.query  # $search needs the header only
    encoded = raw_query_value(request.raw_path, "$search")
    assert encoded is not None and "%26" in encoded and "%20" in encoded and "+" not in encoded


async def test_orderby_with_filter_is_an_advanced_query(
    stub: GraphStub, client: GraphClient
) -> None:
    stub.route("GET", "/v1.0/users", Collection(users(2)))

    [_ async for _ in client.list(TENANT, "/users", filter="accountEnabled eq true",
                                  orderby=["displayName"], top=5)]  # fmt: skip

    request = stub.seen[0]
    assert request.query == {
        "$filter": "accountEnabled eq true",
        "$top": "5",
        "$orderby": "displayName",
        "$count": "true",
    }
    assert request.headers["ConsistencyLevel"] == "eventual"


async def test_pages_resumes_from_a_saved_next_link_and_returns_the_delta_link(
    stub: GraphStub, client: GraphClient
) -> None:
    stub.route("GET", "/v1.0/users/delta", Collection(users(250), page_size=100, delta_link=True))

    first = await anext(aiter(client.pages(TENANT, "/users/delta")))
    assert first.next_link is not None and first.delta_link is None

    rest = [page async for page in client.pages(TENANT, first.next_link)]

    ids = [u["id"] for page in [first, *rest] for u in page.items]
    assert ids == [u["id"] for u in users(250)]
    assert rest[-1].delta_link is not None and rest[-1].delta_link.endswith("$deltatoken=done")
    assert all(page.delta_link is None for page in rest[:-1])


async def test_a_next_link_to_another_host_is_refused(stub: GraphStub, client: GraphClient) -> None:
    stub.route(
        "GET",
        "/v1.0/users",
        lambda request, body: json_reply(
            {"value": [{"id": "a"}], "@odata.nextLink": "https://elsewhere.example/v1.0/users?x=1"}
        ),
    )

    with pytest.raises(ValueError, match="refusing to send a Graph token"):
        [_ async for _ in client.list(TENANT, "/users")]
    assert len(stub.seen) == 1


async def test_count_uses_the_count_segment(stub: GraphStub, client: GraphClient) -> None:
    stub.route("GET", "/v1.0/users/$count", lambda request, body: web.Response(text="\ufeff42"))

    assert await client.count(TENANT, "/users", filter="endsWith(mail,'@x.com')") == 42
    request = stub.seen[0]
    assert request.headers["ConsistencyLevel"] == "eventual"
    assert "$count" not in request.query


# -- throttling and transient failures -------------------------------------------------------------


async def test_decimal_retry_after_is_honoured(
    stub: GraphStub, client: GraphClient, fake_time: FakeTime
) -> None:
    stub.script(
        "GET",
        "/v1.0/organization",
        [lambda: throttled("2.128"), lambda: throttled("0.249"),
         lambda: json_reply({"value": [{"id": TENANT}]})],
    )  # fmt: skip

    result = await client.get(TENANT, "/organization")

    assert result == {"value": [{"id": TENANT}]}
    assert fake_time.sleeps == [2.128, 0.249]
    assert client.stats.throttled == 2
    assert client.stats.retries == 2
    assert client.stats.requests == 3


async def test_missing_retry_after_backs_off_with_jitter_within_bounds(
    stub: GraphStub, tokens: FakeTokens, fake_time: FakeTime
) -> None:
    stub.script(
        "GET",
        "/v1.0/users/u1",
        [*(lambda: graph_error(503, "ServiceUnavailable") for _ in range(5)),
         lambda: json_reply({"id": "u1"})],
    )  # fmt: skip
    async with make_client(
        stub, tokens, fake_time, backoff_base=0.5, backoff_cap=4.0, rng=random.Random(1)
    ) as client:
        assert await client.get(TENANT, "/users/u1") == {"id": "u1"}

    assert len(fake_time.sleeps) == 5
    for attempt, delay in enumerate(fake_time.sleeps):
        assert 0.0 <= delay <= min(4.0, 0.5 * 2**attempt)
    assert len(set(fake_time.sleeps)) == 5  # jittered, not a fixed ladder


async def test_server_errors_are_retried(
    stub: GraphStub, client: GraphClient, fake_time: FakeTime
) -> None:
    stub.script(
        "GET",
        "/v1.0/domains",
        [lambda: graph_error(500, "UnknownError"), lambda: graph_error(502, "BadGateway"),
         lambda: json_reply({"value": []})],
    )  # fmt: skip

    assert await client.get(TENANT, "/domains") == {"value": []}
    assert len(fake_time.sleeps) == 2
    assert client.stats.retries == 2


async def test_exhausted_retries_raise_transient_error_with_request_id(
    stub: GraphStub, tokens: FakeTokens, fake_time: FakeTime
) -> None:
    def busy(i: int) -> Callable[[], web.Response]:
        return lambda: graph_error(503, "ServiceUnavailable", "busy", request_id=f"rid-{i}")

    stub.script("GET", "/v1.0/users", [busy(i) for i in range(10)])
    async with make_client(stub, tokens, fake_time, max_retries=3) as client:
        with pytest.raises(TransientError) as caught:
            await client.get(TENANT, "/users")

    error = caught.value
    assert error.request_id == "rid-3"  # the last answer's id
    assert error.status == 503
    assert error.code == "ServiceUnavailable"
    assert error.tenant == TENANT
    assert "after 3 retries" in str(error)
    assert len(stub.seen) == 4
    assert client.stats.errors == 1


async def test_post_is_not_retried_after_an_ambiguous_server_error(
    stub: GraphStub, client: GraphClient
) -> None:
    stub.script("POST", "/v1.0/users", [lambda: graph_error(500, "UnknownError")])

    with pytest.raises(TransientError):
        await client.post(TENANT, "/users", {"displayName": "A"})
    assert len(stub.seen) == 1  # it may have been created: a blind retry could duplicate it


async def test_post_is_retried_after_429_and_503(
    stub: GraphStub, client: GraphClient, fake_time: FakeTime
) -> None:
    stub.script(
        "POST",
        "/v1.0/users",
        [lambda: throttled("0.5"), lambda: graph_error(503, "ServiceUnavailable"),
         lambda: json_reply({"id": "new"}, status=201)],
    )  # fmt: skip

    assert await client.post(TENANT, "/users", {"displayName": "A"}) == {"id": "new"}
    assert [s.json() for s in stub.seen] == [{"displayName": "A"}] * 3
    assert stub.seen[0].headers["Content-Type"] == "application/json"
    assert fake_time.sleeps[0] == 0.5


async def test_delete_returns_none_on_204(stub: GraphStub, client: GraphClient) -> None:
    stub.route("DELETE", "/v1.0/groups/g1/members/u1/$ref", lambda r, b: web.Response(status=204))

    assert await client.delete(TENANT, "/groups/g1/members/u1/$ref") is None


async def test_a_429_pauses_the_whole_tenant_in_the_limiter(
    stub: GraphStub, tokens: FakeTokens, fake_time: FakeTime
) -> None:
    limiter = GraphLimiter(clock=fake_time.clock)
    stub.script("GET", "/v1.0/users/a", [lambda: throttled("3"), lambda: json_reply({"id": "a"})])
    async with make_client(stub, tokens, fake_time, limiter=limiter) as client:
        await client.get(TENANT, "/users/a")

    assert limiter.budget(TENANT) == 3500 / 2  # halved on the 429
    assert fake_time.sleeps[0] == 3  # the Retry-After, then a little pacing after the pause
    assert fake_time.sleeps[1] == pytest.approx(1 / 140)
    # Another request for the same tenant made right after the 429 would have waited too.
    fake_time.now -= sum(fake_time.sleeps)
    assert limiter.reserve(TENANT, RequestCost(Family.IDENTITY, 1, 0)) >= 3


async def test_the_limiter_paces_requests_before_graph_has_to_throttle(
    stub: GraphStub, tokens: FakeTokens, fake_time: FakeTime
) -> None:
    # scale 0.01: 35 RU / 10 s for the tenant, 7 RU of burst, then 2.8 RU/s; GET /users costs 2.
    limiter = GraphLimiter(clock=fake_time.clock, scale=0.01)
    stub.route("GET", "/v1.0/users", Collection(users(5)))
    async with make_client(stub, tokens, fake_time, limiter=limiter) as client:
        for _ in range(6):
            await client.get(TENANT, "/users")

    assert fake_time.sleeps == pytest.approx([1 / 2.8, 2 / 2.8, 2 / 2.8])
    assert client.stats.throttled == 0


# -- tokens and propagation ------------------------------------------------------------------------


async def test_rejected_token_is_retried_once_with_a_fresh_one(
    stub: GraphStub, client: GraphClient, tokens: FakeTokens
) -> None:
    def handler(request: web.Request, body: bytes) -> web.Response:
        if request.headers["Authorization"] == "Bearer token-0":
            return graph_error(401, "InvalidAuthenticationToken", "Access token has expired.")
        return json_reply({"id": "me"})

    stub.route("GET", "/v1.0/organization", handler)

    assert await client.get(TENANT, "/organization") == {"id": "me"}
    assert tokens.calls == [(TENANT, False), (TENANT, True)]


async def test_a_second_rejection_is_not_retried_again(
    stub: GraphStub, client: GraphClient, tokens: FakeTokens
) -> None:
    stub.route(
        "GET",
        "/v1.0/organization",
        lambda r, b: graph_error(401, "InvalidAuthenticationToken", "Invalid audience."),
    )

    with pytest.raises(BadRequestError) as caught:
        await client.get(TENANT, "/organization")
    assert caught.value.code == "InvalidAuthenticationToken"
    assert tokens.fresh_calls == 1
    assert len(stub.seen) == 2


async def test_concurrent_rejections_share_one_fresh_token(
    stub: GraphStub, client: GraphClient, tokens: FakeTokens
) -> None:
    def handler(request: web.Request, body: bytes) -> web.Response:
        if request.headers["Authorization"] == "Bearer token-0":
            return graph_error(401, "InvalidAuthenticationToken", "expired")
        return json_reply({"ok": True})

    stub.route("GET", "/v1.0/organization", handler)

    results = await asyncio.gather(*(client.get(TENANT, "/organization") for _ in range(8)))

    assert results == [{"ok": True}] * 8
    assert tokens.fresh_calls == 1


async def test_propagating_error_without_a_policy_is_raised_at_once(
    stub: GraphStub, client: GraphClient, fake_time: FakeTime
) -> None:
    stub.route(
        "GET",
        "/v1.0/users",
        lambda r, b: graph_error(
            403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        ),
    )

    with pytest.raises(PropagatingError) as caught:
        await client.get(TENANT, "/users")
    assert caught.value.status == 403
    assert len(stub.seen) == 1
    assert fake_time.sleeps == []


async def test_propagating_error_with_a_policy_waits_and_retries_with_fresh_tokens(
    stub: GraphStub, tokens: FakeTokens, fake_time: FakeTime
) -> None:
    def handler(request: web.Request, body: bytes) -> web.Response:
        # The relationship "arrives" for tokens born after the second refresh.
        if request.headers["Authorization"] in ("Bearer token-0", "Bearer token-1"):
            return graph_error(403, "Authorization_IdentityNotFound", "not yet")
        return json_reply({"value": [{"id": "u"}]})

    stub.route("GET", "/v1.0/users", handler)
    waits: list[float] = []
    policy = PropagationPolicy(
        initial_wait=180, retry_every=60, budget=900, on_wait=lambda error, s: waits.append(s)
    )
    async with make_client(stub, tokens, fake_time, propagation=policy) as client:
        assert await client.get(TENANT, "/users") == {"value": [{"id": "u"}]}

    assert fake_time.sleeps == [180, 60]
    assert waits == [180, 60]
    assert tokens.calls == [(TENANT, False), (TENANT, True), (TENANT, True)]


async def test_propagation_policy_gives_up_when_its_budget_is_spent(
    stub: GraphStub, tokens: FakeTokens, fake_time: FakeTime
) -> None:
    stub.route(
        "GET", "/v1.0/users", lambda r, b: graph_error(403, "Authorization_RequestDenied", "no")
    )
    policy = PropagationPolicy(initial_wait=180, retry_every=60, budget=300)
    async with make_client(stub, tokens, fake_time, propagation=policy) as client:
        with pytest.raises(PropagatingError):
            await client.get(TENANT, "/users")

    assert fake_time.sleeps == [180, 60, 60]
    assert len(stub.seen) == 4


async def test_propagating_token_errors_are_waited_out_too(
    stub: GraphStub, fake_time: FakeTime
) -> None:
    class YoungTenantTokens(FakeTokens):
        async def get_token(self, tenant: str, *, fresh: bool = False) -> str:
            token = await super().get_token(tenant, fresh=fresh)
            if self.generation == 0:
                raise PropagatingError(
                    "AADSTS700016: Application not found in the directory",
                    tenant=tenant,
                )
            return token

    tokens = YoungTenantTokens()
    stub.route("GET", "/v1.0/organization", lambda r, b: json_reply({"value": []}))
    policy = PropagationPolicy(initial_wait=60, retry_every=30, budget=300)
    async with make_client(stub, tokens, fake_time, propagation=policy) as client:
        assert await client.get(TENANT, "/organization") == {"value": []}

    assert fake_time.sleeps == [60]
    assert tokens.calls == [(TENANT, False), (TENANT, True)]
    assert stub.seen[0].headers["Authorization"] == "Bearer token-1"


# -- error taxonomy --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (404, "Request_ResourceNotFound", "Resource 'x' does not exist.", BadRequestError),
        (400, "Request_UnsupportedQuery", "Invalid page size specified: '1000'.", BadRequestError),
        (403, "Authorization_RequestDenied", "Insufficient privileges.", PropagatingError),
        (403, "Authorization_IdentityNotFound", "", PropagatingError),
        (400, "BadRequest", "Request not applicable to target tenant.", NeedsPersonError),
        (403, "AppLifecycle_2210", "Forbidden", NeedsPersonError),
        (410, "resyncRequired", "Resync required.", BadRequestError),
    ],
)
async def test_graph_error_bodies_map_to_the_taxonomy(
    stub: GraphStub,
    client: GraphClient,
    status: int,
    code: str,
    message: str,
    expected: type[Exception],
) -> None:
    stub.route("GET", "/v1.0/users", lambda r, b: graph_error(status, code, message,
                                                              request_id="rid-map"))  # fmt: skip

    with pytest.raises(expected) as caught:
        await client.get(TENANT, "/users")

    error = caught.value
    assert isinstance(error, expected)
    assert error.code == code  # type: ignore[attr-defined]
    assert error.status == status  # type: ignore[attr-defined]
    assert error.tenant == TENANT  # type: ignore[attr-defined]
    assert error.request_id == "rid-map"  # type: ignore[attr-defined]
    assert "token-" not in str(error)


async def test_non_json_error_bodies_still_classify(stub: GraphStub, client: GraphClient) -> None:
    stub.route("GET", "/v1.0/users", lambda r, b: web.Response(status=400, text="<html>bad</html>"))

    with pytest.raises(BadRequestError) as caught:
        await client.get(TENANT, "/users")
    assert caught.value.status == 400
    assert caught.value.request_id  # falls back to the client-request-id we sent


# -- CSP scope -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/users/u1/messages", "/sites", "/drives/d1", "/teams", "/me/mailFolders", "/chats"]
)
async def test_calls_outside_directory_and_intune_never_leave_the_process(
    stub: GraphStub, client: GraphClient, path: str
) -> None:
    with pytest.raises(CspScopeError) as caught:
        await client.get(TENANT, path)
    assert CSP_RULE in str(caught.value)
    assert stub.seen == []


async def test_allow_any_resource_lifts_the_guard(
    stub: GraphStub, tokens: FakeTokens, fake_time: FakeTime
) -> None:
    stub.route("GET", "/v1.0/sites", lambda r, b: json_reply({"value": []}))
    async with make_client(stub, tokens, fake_time, allow_any_resource=True) as client:
        assert await client.get(TENANT, "/sites") == {"value": []}


async def test_batch_items_are_checked_against_the_scope(
    stub: GraphStub, client: GraphClient
) -> None:
    with pytest.raises(CspScopeError):
        await client.batch(
            TENANT,
            [BatchRequest("1", "GET", "/users"), BatchRequest("2", "GET", "/users/u/messages")],
        )
    assert stub.seen == []


# -- $batch ----------------------------------------------------------------------------------------


def batch_handler(
    answer: Callable[[dict[str, Any], int], tuple[int, dict[str, str], Any]],
) -> Callable[[web.Request, bytes], web.Response]:
    """A $batch endpoint; ``answer(item, times_seen)`` decides each item's outcome."""
    seen: dict[str, int] = {}

    def handler(request: web.Request, body: bytes) -> web.Response:
        import orjson

        requests = orjson.loads(body)["requests"]
        assert len(requests) <= 20
        responses = []
        for item in reversed(requests):  # Graph answers in any order
            seen[item["id"]] = seen.get(item["id"], 0) + 1
            status, headers, payload = answer(item, seen[item["id"]])
            responses.append({"id": item["id"], "status": status, "headers": headers,
                              "body": payload})  # fmt: skip
        return json_reply({"responses": responses})

    return handler


async def test_batch_splits_into_envelopes_of_twenty_and_keeps_order(
    stub: GraphStub, client: GraphClient
) -> None:
    stub.route(
        "POST",
        "/v1.0/$batch",
        batch_handler(lambda item, n: (200, {}, {"id": item["url"].rsplit("/", 1)[1]})),
    )
    requests = [BatchRequest(f"r{i}", "GET", f"/users/u{i}") for i in range(45)]

    responses = await client.batch(TENANT, requests)

    assert [r.id for r in responses] == [f"r{i}" for i in range(45)]
    assert [r.body["id"] for r in responses] == [f"u{i}" for i in range(45)]
    assert [len(s.json()["requests"]) for s in stub.seen] == [20, 20, 5]
    assert client.stats.batch_items == 45


async def test_batch_retries_only_throttled_items_after_their_retry_after(
    stub: GraphStub, client: GraphClient, fake_time: FakeTime
) -> None:
    def answer(item: dict[str, Any], times: int) -> tuple[int, dict[str, str], Any]:
        if item["id"] == "b" and times == 1:
            return 429, {"Retry-After": "0.249"}, {"error": {"code": "TooManyRequests"}}
        if item["id"] == "c" and times == 1:
            return 429, {"retry-after": "1.5"}, {"error": {"code": "TooManyRequests"}}
        return 200, {}, {"id": item["id"], "times": times}

    stub.route("POST", "/v1.0/$batch", batch_handler(answer))

    responses = await client.batch(
        TENANT, [BatchRequest(i, "GET", f"/users/{i}") for i in ("a", "b", "c", "d")]
    )

    assert [(r.id, r.status, r.body["times"]) for r in responses] == [
        ("a", 200, 1), ("b", 200, 2), ("c", 200, 2), ("d", 200, 1),
    ]  # fmt: skip
    assert [[i["id"] for i in s.json()["requests"]] for s in stub.seen] == [
        ["a", "b", "c", "d"],
        ["b", "c"],
    ]
    assert fake_time.sleeps == [1.5]  # the longest Retry-After among the retried items
    assert client.stats.throttled == 2


async def test_batch_retries_424_dependents_with_their_throttled_dependency(
    stub: GraphStub, client: GraphClient
) -> None:
    def answer(item: dict[str, Any], times: int) -> tuple[int, dict[str, str], Any]:
        if item["id"] == "create" and times == 1:
            return 429, {"Retry-After": "0.01"}, None
        if item["id"] == "add" and times == 1:
            return 424, {}, {"error": {"code": "FailedDependency"}}
        if item["id"] == "other-dependent":
            return 424, {}, {"error": {"code": "FailedDependency"}}
        if item["id"] == "missing":
            return 404, {}, {"error": {"code": "Request_ResourceNotFound", "message": "gone"}}
        return 201, {}, {"id": item["id"], "dependsOn": item.get("dependsOn")}

    stub.route("POST", "/v1.0/$batch", batch_handler(answer))
    requests = [
        BatchRequest("first", "GET", "/organization"),
        BatchRequest("create", "POST", "/groups", body={"displayName": "G"}),
        BatchRequest("add", "POST", "/groups/g/members/$ref", body={"@odata.id": "x"},
                     depends_on=["create", "first"]),
        BatchRequest("missing", "GET", "/users/nobody"),
        BatchRequest("other-dependent", "GET", "/users/x", depends_on=["missing"]),
    ]  # fmt: skip

    by_id = {r.id: r for r in await client.batch(TENANT, requests)}

    assert by_id["create"].status == 201
    assert by_id["add"].status == 201
    # On the retry "first" had succeeded already, so it is no longer a dependency in the envelope.
    assert by_id["add"].body["dependsOn"] == ["create"]
    assert by_id["missing"].status == 404
    assert by_id["other-dependent"].status == 424  # its dependency failed for good
    retried = stub.seen[1].json()["requests"]
    assert [i["id"] for i in retried] == ["create", "add"]
    assert retried[0]["headers"]["Content-Type"] == "application/json"
    with pytest.raises(BadRequestError) as caught:
        by_id["missing"].raise_for_status()
    assert caught.value.code == "Request_ResourceNotFound"


async def test_batch_keeps_dependency_chains_in_one_envelope(
    stub: GraphStub, client: GraphClient
) -> None:
    stub.route("POST", "/v1.0/$batch", batch_handler(lambda item, n: (200, {}, {})))
    requests = [BatchRequest(f"x{i}", "GET", f"/users/x{i}") for i in range(15)]
    requests += [BatchRequest("head", "GET", "/groups/g")]
    requests += [BatchRequest(f"d{i}", "GET", f"/groups/g/members/u{i}", depends_on=["head"])
                 for i in range(9)]  # fmt: skip

    await client.batch(TENANT, requests)

    envelopes = [[i["id"] for i in s.json()["requests"]] for s in stub.seen]
    assert [len(e) for e in envelopes] == [15, 10]
    assert envelopes[1][0] == "head"


async def test_batch_accepts_absolute_urls_on_the_graph_host(
    stub: GraphStub, client: GraphClient
) -> None:
    stub.route("POST", "/v1.0/$batch", batch_handler(lambda item, n: (200, {}, {})))

    await client.batch(
        TENANT,
        [
            BatchRequest("1", "GET", f"{stub.url}/v1.0/users?$select=id&$skiptoken=abc"),
            BatchRequest("2", "GET", "v1.0/groups?$filter=displayName eq 'a b'"),
        ],
    )

    assert [i["url"] for i in stub.seen[0].json()["requests"]] == [
        "/users?$select=id&$skiptoken=abc",
        "/groups?$filter=displayName%20eq%20'a%20b'",
    ]
    with pytest.raises(ValueError, match="refusing"):
        await client.batch(
            TENANT, [BatchRequest("1", "GET", "https://elsewhere.example/v1.0/users")]
        )


async def test_batch_rejects_duplicate_ids(client: GraphClient) -> None:
    with pytest.raises(ValueError, match="unique"):
        await client.batch(TENANT, [BatchRequest("A", "GET", "/users"),
                                    BatchRequest("a", "GET", "/groups")])  # fmt: skip


async def test_batch_gives_back_still_throttled_items_after_max_retries(
    stub: GraphStub, tokens: FakeTokens, fake_time: FakeTime
) -> None:
    stub.route(
        "POST", "/v1.0/$batch", batch_handler(lambda item, n: (429, {"Retry-After": "0.01"}, None))
    )
    async with make_client(stub, tokens, fake_time, max_retries=2) as client:
        [response] = await client.batch(TENANT, [BatchRequest("1", "GET", "/users")])

    assert response.status == 429
    assert isinstance(response.error(), TransientError)
    assert len(stub.seen) == 3


# -- wire details ----------------------------------------------------------------------------------


async def test_headers_user_agent_priority_and_path_encoding(
    stub: GraphStub, tokens: FakeTokens, fake_time: FakeTime
) -> None:
    guest = "ann_contoso.com#EXT#@fabrikam.onmicrosoft.com"
    stub.route("GET", f"/v1.0/users/{guest}", lambda r, b: json_reply({"id": "g"}))
    async with make_client(stub, tokens, fake_time, throttle_priority="Low") as client:
        assert await client.get(TENANT, f"/users/{guest}") == {"id": "g"}

    request = stub.seen[0]
    assert request.headers["x-ms-throttle-priority"] == "Low"
    assert request.headers["User-Agent"].startswith("cspgraph/")
    assert request.headers["Authorization"] == "Bearer token-0"
    assert request.headers["client-request-id"]
    assert "%23EXT%23" in request.raw_path


async def test_tls_is_verified_against_the_given_ca_bundle(
    tmp_path: Path, tokens: FakeTokens, fake_time: FakeTime
) -> None:
    context, ca_file = make_tls(tmp_path)
    server = GraphStub()
    await server.start(ssl_context=context)
    server.route("GET", "/v1.0/organization", lambda r, b: json_reply({"value": []}))
    try:
        async with make_client(server, tokens, fake_time, ca_bundle=ca_file) as client:
            assert await client.get(TENANT, "/organization") == {"value": []}
        async with make_client(server, tokens, fake_time) as untrusting:
            with pytest.raises(NeedsPersonError, match="certificate"):
                await untrusting.get(TENANT, "/organization")
    finally:
        await server.close()


async def test_connection_refused_is_transient(tokens: FakeTokens, fake_time: FakeTime) -> None:
    server = GraphStub()
    url = await server.start()
    await server.close()  # nothing listens there any more
    async with GraphClient(
        tokens, graph_url=url, sleep=fake_time.sleep, max_retries=2,
        limiter=GraphLimiter(clock=fake_time.clock),
    ) as client:  # fmt: skip
        with pytest.raises(TransientError):
            await client.get(TENANT, "/organization")
    assert len(fake_time.sleeps) == 2


# -- a throttling storm ----------------------------------------------------------------------------


async def test_a_429_storm_over_5000_users_loses_and_duplicates_nothing(
    stub: GraphStub, tokens: FakeTokens
) -> None:
    collection = Collection(users(5000), page_size=100, throttle_rate=0.3, retry_after="0.001")
    stub.route("GET", "/v1.0/users", collection)
    # Real time and real sleeps here: the Retry-After values are a millisecond.
    async with GraphClient(tokens, graph_url=stub.url, max_retries=20) as client:
        ids = [u["id"] async for u in client.list(TENANT, "/users", select=["id"])]

    assert len(ids) == 5000
    assert ids == [u["id"] for u in users(5000)]
    assert collection.throttled_count > 10
    assert client.stats.throttled == collection.throttled_count
    assert client.stats.requests == 50 + collection.throttled_count
