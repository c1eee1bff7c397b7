"""Partner Center paced by the client, against the emulator over real HTTPS: reading every
customer of a partner at once stays within Partner Center's limit with the pacer (no 429) and
does not without it, and every client of one token provider shares one pacer per partner.

Time is compressed, not faked: the emulator counts 5 requests per 3 s (500 a minute x 0.01, the
minute x 0.05) and the pacer is told the same, so the limit binds within seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import requests

from csp_emulator.server import Emulator
from cspgraph.http.sessions import requests_session
from cspgraph.identity import TokenProvider
from cspgraph.partner.center import PartnerCenterClient
from cspgraph.partner.pacing import PartnerCenterPacer
from tests.client.test_partner_center import client_for, config_for, world
from tests.conftest import MakeEmulator

CUSTOMERS = 15
LIMIT = 5  # the emulator's 500 a minute x 0.01 ...
WINDOW = 3.0  # ... per 60 s x 0.05
# Seconds the pacer adds to the window: it paces sends, the emulator counts arrivals, and on a
# loaded test machine a request may take far longer to reach it than Partner Center's would.
MARGIN = 2.0
THROTTLING = {"partner_center_scale": LIMIT / 500, "window_scale": WINDOW / 60}


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests_session() as s:
        yield s


def customer_ids(emu: Emulator) -> list[str]:
    """The tenant ids of partner.com's customers (``world`` names them c0.com, c1.com, …)."""
    tenants = [emu.world.tenant(f"c{i}.com") for i in range(CUSTOMERS)]
    ids = [t.id for t in tenants if t is not None]
    assert len(ids) == CUSTOMERS
    return ids


async def read_all(pc: PartnerCenterClient, ids: list[str]) -> list[str]:
    """Every customer at once (as a sync's access checks ask), the tenant ids answered."""
    customers = await asyncio.gather(*(pc.get_customer(i) for i in ids))
    return [c.tenant_id for c in customers]


async def test_reading_every_customer_at_once_gets_no_429_with_the_pacer_and_some_without(
    make_emulator: MakeEmulator, session: requests.Session
) -> None:
    emu = make_emulator(world(customers=CUSTOMERS, throttling=THROTTLING))
    ids = customer_ids(emu)
    pacer = PartnerCenterPacer(LIMIT, WINDOW, margin=MARGIN)
    async with client_for(emu, session, pacer=pacer) as paced:
        assert await read_all(paced, ids) == ids
    assert paced.stats.throttled == 0 and paced.stats.requests == CUSTOMERS

    emu.advance(WINDOW)  # the emulator's window forgets the paced requests
    async with client_for(emu, session, pacer=None) as unpaced:
        assert await read_all(unpaced, ids) == ids  # answered right after the retries
    assert unpaced.stats.throttled > 0
    assert unpaced.stats.requests == CUSTOMERS + unpaced.stats.throttled


async def test_clients_of_one_provider_share_the_pacer_of_their_partner_tenant(
    make_emulator: MakeEmulator,
) -> None:
    emu = make_emulator(world(customers=1))
    async with TokenProvider(config_for(emu)) as provider, TokenProvider(config_for(emu)) as other:
        listing = PartnerCenterClient.for_region(provider, "NA")
        access = PartnerCenterClient.for_region(provider, "NA", max_retries=2)
        elsewhere = PartnerCenterClient.for_region(other, "NA")
        own = PartnerCenterClient.for_region(provider, "NA", pacer=None)
        try:
            assert listing.pacer is access.pacer and isinstance(listing.pacer, PartnerCenterPacer)
            assert elsewhere.pacer is not listing.pacer  # another provider: another sync
            assert own.pacer is None
        finally:
            for pc in (listing, access, elsewhere, own):
                await pc.close()
