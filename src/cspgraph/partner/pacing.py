"""Pacing Partner Center on the client side: at most 500 customer requests a minute per partner.

Partner Center allows 500 requests a minute per partner tenant on its customer endpoints
(wire-facts §3) and answers the 501st with a 429 and a whole-second Retry-After. Its refusals
are Azure API Management's rate-limit policy, word for word ("Rate limit is exceeded. Try again
in 57 seconds."), whose ``renewal-period`` is documented as "the length in seconds of the
*sliding window* during which the number of allowed requests should not exceed" the limit: any 60
seconds, not a minute on the clock.

:class:`PartnerCenterPacer` is therefore a **sliding-window log** of send times: a request may go
once fewer than ``limit`` were sent in the ``window`` before it. Not a token bucket: a full
bucket's burst plus its refill over the next minute would put up to twice the limit into one
60-second window, every one of them past the 500th refused. The log books each request when it
is reserved (the time it will be sent, which may be later), so concurrent callers never book the
same slot, and it holds only the last ``limit`` times: the oldest of them says when the next
request fits.

Partner Center counts *arrivals*; the pacer sees *sends*. A request sent at t arrives at t plus
the time to write it, which varies (a new TLS connection, a busy host): two requests sent exactly
60 s apart may arrive 59.7 s apart, and both count in one window. The pacer's window is therefore
60 s plus :data:`MARGIN`: any 60 s of arrivals whose delays differ by less than the margin were
sent within one window of the pacer, which holds at most ``limit``. One second is far beyond
the spread of Partner Center's request writes on a working connection and costs 1/61 (1.6 %)
of the rate. The margin only covers that spread if a reserved request is sent at once, not
queued for a connection: :class:`~cspgraph.partner.center.PartnerCenterClient` lets no more
calls into its sender than its pool has connections.

A 429 (another process over the same partner, a limit lower than published) pauses every later
reservation until its Retry-After has passed: Partner Center said when it will count again.

Which requests: the ones Partner Center counts against this limit, ``/v1/customers`` (list,
create), ``/v1/customers/{id}`` and ``/v1/customers/relationshiprequests``. The app-consent
endpoints have a limit of their own (50 a second per application) and are not paced here.

One pacer per partner tenant per :class:`~cspgraph.identity.TokenProvider` (a sync's, or a Celery
worker's: one per process): :func:`shared_pacer` gives every client of that provider's partner
tenant the same one (the customer listing and the access resolver's per-region clients share
it). A worker with a Redis budget has its provider's pacers kept in Redis instead
(:func:`share_pacers`; :mod:`cspgraph.distributed.partner_center_pacer`), so that all workers
together stay within the limit.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from cspgraph.http.sender import Pacer

__all__ = [
    "CUSTOMERS",
    "LIMIT",
    "MARGIN",
    "WINDOW",
    "PartnerCenterPacer",
    "share_pacers",
    "shared_pacer",
]

LIMIT = 500  # customer requests per partner tenant ...
WINDOW = 60.0  # ... in any window of this many seconds (wire-facts §3)
MARGIN = 1.0  # seconds added to the window: sends are paced, arrivals are counted (see above)

# What a paced request costs, as the sender passes it to the pacer: one customer request.
CUSTOMERS = "partner-center-customers"


def span(limit: int, window: float, margin: float) -> float:
    """How long a booking stays in a pacer's log: the window and its margin (checked)."""
    if limit < 1:
        raise ValueError("limit must be at least one request")
    if window <= 0 or margin < 0:
        raise ValueError("window must be positive and margin not negative")
    return window + margin


class PartnerCenterPacer:
    """The sliding-window log of one partner tenant's customer requests, in this process.

    Implements the sender's :class:`~cspgraph.http.sender.Pacer`; the key and the cost are
    ignored (one pacer is one partner tenant's limit, every request costs one). ``clock``:
    seconds, monotonic (injectable for tests)."""

    def __init__(
        self,
        limit: int = LIMIT,
        window: float = WINDOW,
        *,
        margin: float = MARGIN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.span = span(limit, window, margin)
        self.clock = clock
        self._sent: deque[float] = deque(maxlen=limit)  # booked send times, oldest first
        self._paused_until = float("-inf")

    def reserve(self, key: str, cost: Any) -> float:
        """Book the next free slot; the seconds to wait before sending."""
        now = self.clock()
        start = max(now, self._paused_until)
        if len(self._sent) == self.limit:
            # The limit-th most recent booking must have left the window first.
            start = max(start, self._sent[0] + self.span)
        self._sent.append(start)  # bookings only grow: the log stays in order
        return start - now

    def throttled(self, key: str, cost: Any, delay: float, headers: Mapping[str, str]) -> None:
        """A 429: no reservation may send before its Retry-After (``delay``) has passed."""
        self._paused_until = max(self._paused_until, self.clock() + delay)

    def answered(self, key: str, cost: Any, headers: Mapping[str, str]) -> None:
        """Partner Center's answers say nothing about the window (no remaining-calls header)."""


# -- one pacer per partner tenant and token provider -----------------------------------------------

PacerFactory = Callable[[str], Pacer]  # a partner tenant's id -> its pacer


class _Pacers:
    """The pacers of one token provider, by partner tenant, made by its factory."""

    def __init__(self, factory: PacerFactory) -> None:
        self.factory = factory
        self.by_partner: dict[str, Pacer] = {}


# Weak: the pacers go with their provider (a test's, a finished sync's).
_PACERS: weakref.WeakKeyDictionary[object, _Pacers] = weakref.WeakKeyDictionary()


def shared_pacer(owner: object, partner_tenant: str) -> Pacer:
    """The pacer every Partner Center client of ``owner`` (a token provider) shares for
    ``partner_tenant``: in-process unless :func:`share_pacers` said otherwise."""
    pacers = _PACERS.get(owner)
    if pacers is None:
        pacers = _PACERS[owner] = _Pacers(lambda _partner: PartnerCenterPacer())
    pacer = pacers.by_partner.get(partner_tenant)
    if pacer is None:
        pacer = pacers.by_partner[partner_tenant] = pacers.factory(partner_tenant)
    return pacer


def share_pacers(owner: object, factory: PacerFactory) -> None:
    """Make ``owner``'s pacers with ``factory`` from now on (a worker's, kept in Redis), before
    any client of ``owner`` asks for one."""
    _PACERS[owner] = _Pacers(factory)
