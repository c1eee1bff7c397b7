"""The Partner Center pacer's sliding-window log, on a clock moved by hand: when the limit is
reached the next request waits until the oldest of the window has left it (plus the margin), no
window ever holds more than the limit, and a 429's Retry-After pauses every later request."""

from __future__ import annotations

import random

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from cspgraph.partner.pacing import (
    CUSTOMERS,
    LIMIT,
    MARGIN,
    WINDOW,
    PartnerCenterPacer,
    share_pacers,
    shared_pacer,
)
from tests.unit.fake_clock import Clock

NO_HEADERS = CIMultiDictProxy(CIMultiDict[str]())


def reserve(pacer: PartnerCenterPacer) -> float:
    wait = pacer.reserve("", CUSTOMERS)
    assert isinstance(wait, float)
    return wait


def test_the_published_limit_is_500_a_minute_with_a_second_of_margin() -> None:
    pacer = PartnerCenterPacer()
    assert (LIMIT, WINDOW, MARGIN) == (500, 60.0, 1.0)
    assert pacer.limit == 500 and pacer.span == 61.0


def test_requests_within_the_limit_go_at_once() -> None:
    pacer = PartnerCenterPacer(limit=3, window=10.0, margin=1.0, clock=Clock())
    assert [reserve(pacer) for _ in range(3)] == [0.0, 0.0, 0.0]


def test_past_the_limit_a_request_waits_until_the_oldest_has_left_the_window() -> None:
    clock = Clock()
    pacer = PartnerCenterPacer(limit=3, window=10.0, margin=1.0, clock=clock)
    reserve(pacer)  # t = 1000
    clock.now += 4.0
    reserve(pacer)  # t = 1004
    reserve(pacer)
    clock.now += 2.0  # t = 1006: the window and margin since 1000 end at 1011
    assert reserve(pacer) == 5.0
    # Booked at 1011, so the next waits for the second oldest (1004 + 11), not for 1011 + 11.
    assert reserve(pacer) == 9.0
    assert reserve(pacer) == 9.0
    assert reserve(pacer) == 16.0  # then for the booking at 1011


def test_no_window_ever_holds_more_than_the_limit() -> None:
    clock = Clock()
    rng = random.Random(7)
    pacer = PartnerCenterPacer(limit=5, window=3.0, margin=0.5, clock=clock)
    sent: list[float] = []
    for _ in range(400):
        clock.now += rng.choice([0.0, 0.0, 0.01, 0.3, 1.0, 4.0])
        sent.append(clock.now + reserve(pacer))
    sent.sort()
    # Any span of 3.5 s holds at most 5 send times: the 6th is 3.5 s after the 1st or later.
    assert min(later - earlier for earlier, later in zip(sent, sent[5:], strict=False)) >= 3.5
    assert max(sent) > clock.now  # the limit did bind: some requests were booked ahead


def test_a_429_pauses_every_later_request_until_its_retry_after() -> None:
    clock = Clock()
    pacer = PartnerCenterPacer(limit=100, window=60.0, clock=clock)
    reserve(pacer)
    pacer.throttled("", CUSTOMERS, 7.0, NO_HEADERS)
    clock.now += 2.0
    assert reserve(pacer) == 5.0  # another caller's request, which was not refused
    pacer.throttled("", CUSTOMERS, 1.0, NO_HEADERS)  # a shorter pause does not end the longer
    assert reserve(pacer) == 5.0
    clock.now += 5.0
    assert reserve(pacer) == 0.0


def test_a_pause_and_a_full_window_wait_for_whichever_ends_later() -> None:
    clock = Clock()
    pacer = PartnerCenterPacer(limit=1, window=10.0, margin=0.0, clock=clock)
    reserve(pacer)
    pacer.throttled("", CUSTOMERS, 3.0, NO_HEADERS)
    assert reserve(pacer) == 10.0  # the window's 10 s outlast the pause's 3
    pacer.throttled("", CUSTOMERS, 30.0, NO_HEADERS)
    assert reserve(pacer) == 30.0  # the pause outlasts the next slot (20 s)


def test_clients_of_one_provider_share_one_pacer_per_partner_tenant() -> None:
    class Provider:
        pass

    one, other = Provider(), Provider()
    pacer = shared_pacer(one, "partner-a")
    assert shared_pacer(one, "partner-a") is pacer
    assert shared_pacer(one, "partner-b") is not pacer
    assert shared_pacer(other, "partner-a") is not pacer
    assert isinstance(pacer, PartnerCenterPacer)


def test_a_provider_told_how_makes_its_pacers_that_way() -> None:
    class Provider:
        pass

    provider = Provider()
    made: list[str] = []

    def factory(partner: str) -> PartnerCenterPacer:
        made.append(partner)
        return PartnerCenterPacer(limit=2)

    share_pacers(provider, factory)
    pacer = shared_pacer(provider, "partner-a")
    assert shared_pacer(provider, "partner-a") is pacer
    assert made == ["partner-a"] and isinstance(pacer, PartnerCenterPacer) and pacer.limit == 2


@pytest.mark.parametrize(
    ("limit", "window", "margin", "message"),
    [
        (0, 60.0, 1.0, "limit must be at least one request"),
        (500, 0.0, 1.0, "window must be positive and margin not negative"),
        (500, 60.0, -1.0, "window must be positive and margin not negative"),
    ],
)
def test_a_pacer_that_could_never_send_is_refused_with_why(
    limit: int, window: float, margin: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PartnerCenterPacer(limit, window, margin=margin)
