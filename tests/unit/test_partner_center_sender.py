"""PartnerCenterClient on the shared sender, against a scripted stub over real sockets: what the
Graph client's rules mean for Partner Center (its own error shape, MS-RequestId as the
idempotency key, one fresh token after a 401, Retry-After)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
from aiohttp import web

from cspgraph.http.errors import NeedsPersonError, TransientError
from cspgraph.partner.center import BillingAddress, NewCustomer, PartnerCenterClient
from cspgraph.partner.pacing import PartnerCenterPacer
from tests.unit.fake_clock import Clock
from tests.unit.graph_stub import GraphStub, json_reply

TENANT = "11111111-2222-3333-4444-555555555555"
CUSTOMER = {"id": TENANT, "companyProfile": {"tenantId": TENANT, "domain": "new.example"}}


class Tokens:
    """Partner Center's token source: token-<generation>; fresh=True starts a new one."""

    def __init__(self) -> None:
        self.generation = 0
        self.fresh_asks = 0

    async def get_token(self, *, fresh: bool = False) -> str:
        if fresh:
            self.fresh_asks += 1
            self.generation += 1
        await asyncio.sleep(0)
        return f"token-{self.generation}"


def client(stub: GraphStub, tokens: Tokens, sleeps: list[float]) -> PartnerCenterClient:
    """Its sleeps are recorded and move the clock of its pacer (which a 429 pauses)."""
    clock = Clock()

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    return PartnerCenterClient(
        tokens,
        base_url=stub.url,
        sleep=sleep,
        rng=random.Random(1),
        max_retries=3,
        pacer=PartnerCenterPacer(clock=clock),
    )


def pc_error(
    status: int, code: str, description: str, **headers: str
) -> Callable[[], web.Response]:
    """Partner Center's own error shape: {"code", "description"}."""
    return lambda: json_reply({"code": code, "description": description}, status, headers)


async def test_a_rejected_token_is_retried_once_with_a_fresh_one(stub: GraphStub) -> None:
    tokens = Tokens()
    sleeps: list[float] = []
    stub.script(
        "GET",
        f"/v1/customers/{TENANT}",
        [pc_error(401, "400", "token expired"), lambda: json_reply(CUSTOMER)],
    )
    async with client(stub, tokens, sleeps) as pc:
        customer = await pc.get_customer(TENANT)
    assert customer.tenant_id == TENANT
    assert [s.headers["Authorization"] for s in stub.seen] == ["Bearer token-0", "Bearer token-1"]
    assert tokens.fresh_asks == 1 and sleeps == []


async def test_concurrent_rejections_share_one_fresh_token(stub: GraphStub) -> None:
    tokens = Tokens()
    sleeps: list[float] = []

    def answer(request: web.Request, body: bytes) -> web.Response:
        if request.headers.get("Authorization") == "Bearer token-0":
            return pc_error(401, "400", "token expired")()
        return json_reply(CUSTOMER)

    stub.route("GET", f"/v1/customers/{TENANT}", answer)
    async with client(stub, tokens, sleeps) as pc:
        found = await asyncio.gather(*(pc.get_customer(TENANT) for _ in range(10)))
    assert {c.tenant_id for c in found} == {TENANT}
    assert tokens.fresh_asks == 1


async def test_a_second_rejection_needs_a_person(stub: GraphStub) -> None:
    tokens = Tokens()
    sleeps: list[float] = []
    stub.script("GET", f"/v1/customers/{TENANT}", [pc_error(401, "400", "no")] * 3)
    async with client(stub, tokens, sleeps) as pc:
        with pytest.raises(NeedsPersonError, match=f"reading customer {TENANT} failed: no"):
            await pc.get_customer(TENANT)
    assert len(stub.seen) == 2 and pc.stats.errors == 1


async def test_a_retried_create_keeps_its_request_id_and_honours_retry_after(
    stub: GraphStub,
) -> None:
    tokens = Tokens()
    sleeps: list[float] = []
    stub.script(
        "POST",
        "/v1/customers",
        [
            pc_error(429, "429", "Rate limit is exceeded.", **{"Retry-After": "3"}),
            pc_error(503, "503", "unavailable"),
            lambda: json_reply({**CUSTOMER, "userCredentials": {"userName": "a", "password": "p"}}),
        ],
    )
    new = NewCustomer(
        domain="new.example",
        company_name="New",
        email="a@new.example",
        address=BillingAddress(address_line1="1 Main St", city="Redmond", country="US"),
    )
    async with client(stub, tokens, sleeps) as pc:
        created = await pc.create_customer(new, request_id="req-1", correlation_id="cor-1")
    assert created.created and created.customer.tenant_id == TENANT
    assert [s.headers["MS-RequestId"] for s in stub.seen] == ["req-1"] * 3
    assert {s.headers["MS-CorrelationId"] for s in stub.seen} == {"cor-1"}
    assert sleeps[0] == 3.0 and 0.0 <= sleeps[1] <= 2.0  # Retry-After, then backoff
    assert (pc.stats.throttled, pc.stats.retries, pc.stats.requests) == (1, 2, 3)


async def test_reads_get_a_new_request_id_per_attempt_and_give_up_after_max_retries(
    stub: GraphStub,
) -> None:
    tokens = Tokens()
    sleeps: list[float] = []
    stub.script("GET", f"/v1/customers/{TENANT}", [pc_error(500, "500", "boom")] * 5)
    async with client(stub, tokens, sleeps) as pc:
        with pytest.raises(TransientError) as failed:
            await pc.get_customer(TENANT)
    ids = [s.headers["MS-RequestId"] for s in stub.seen]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert failed.value.request_id == ids[-1] and failed.value.status == 500
    assert "HTTP 500 from Partner Center" in (failed.value.reason or "")
