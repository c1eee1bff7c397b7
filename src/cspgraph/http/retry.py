"""When to send a request again, and after how long: one policy for every service.

* A transient failure (a 429, a 5xx, a broken connection) is retried after the service's
  ``Retry-After`` when it gave one (decimal seconds, as Graph sends them, or an HTTP date), else
  after full-jitter exponential backoff; at most ``max_retries`` times per call.
* A propagating failure (a partner relationship or consent still on its way) is retried only
  under a :class:`PropagationPolicy`, and always with a newly acquired token: a token keeps the
  claims it was born with (the CSP rule, wire-facts §5.2).

The :class:`~cspgraph.http.sender.Sender` applies the policy to the calls of Graph and Partner
Center; :func:`retry_transient` and :func:`retry_transient_sync` apply the same policy to requests
made through other libraries (token requests through MSAL, discovery), retrying a
:class:`~cspgraph.http.errors.TransientError` with its ``Retry-After``. Only requests that may be
repeated go through them: a client-credentials token request or a discovery GET may be sent
again; an authorization code is redeemed once, and its redemption is never retried.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, TypeVar

from cspgraph.http.errors import TransientError

if TYPE_CHECKING:
    from cspgraph.http.errors import PropagatingError

T = TypeVar("T")

# A Retry-After beyond this is treated as this: one answer must not park a worker for hours.
MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and after how long a transient failure is retried."""

    max_retries: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_retry_after: float = MAX_RETRY_AFTER

    def delay(self, attempt: int, retry_after: str | None, rng: random.Random) -> float:
        """Seconds before retry number ``attempt`` (0-based): the service's ``Retry-After`` when
        it gave a usable one, else a uniform draw in [0, min(cap, base·2^attempt)]."""
        if retry_after is not None:
            seconds = parse_retry_after(retry_after, cap=self.max_retry_after)
            if seconds is not None:
                return seconds
        return rng.uniform(0.0, min(self.backoff_cap, self.backoff_base * 2**attempt))


@dataclass(frozen=True)
class PropagationPolicy:
    """How long to keep retrying while a partner relationship or consent propagates.

    Graph's CSP guidance: after creating a customer, access is denied for up to 3 minutes; on an
    authorization error wait 60 s more and get a new token (wire-facts §5.2). The client waits
    ``initial_wait`` after the first propagating answer of a call, then ``retry_every`` between
    later ones, always with a fresh token, until ``budget`` seconds of waiting are spent; then the
    :class:`PropagatingError` is raised. ``on_wait`` is told about every wait (for progress UIs).
    ``applies_to`` limits the policy to some tenants (those whose relationship is young): for the
    others a denial is more likely a missing permission, and is raised at once.
    """

    initial_wait: float = 180.0
    retry_every: float = 60.0
    budget: float = 900.0
    on_wait: Callable[[PropagatingError, float], None] | None = None
    applies_to: Callable[[str], bool] | None = None

    def next_wait(self, attempt: int, waited: float) -> float | None:
        """Seconds to wait before retry number ``attempt`` (0-based), or None to give up."""
        wait = self.initial_wait if attempt == 0 else self.retry_every
        return wait if waited + wait <= self.budget else None


def parse_float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def parse_retry_after(value: str | None, *, cap: float = MAX_RETRY_AFTER) -> float | None:
    """Seconds from a Retry-After header: decimal seconds (Graph; Partner Center sends whole
    ones) or an HTTP date; at least 0, at most ``cap``; None when unreadable."""
    if value is None:
        return None
    seconds = parse_float(value.strip())
    if seconds is None:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": a date in UTC without a named zone
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # "nan" is a float too
        return None
    return min(max(seconds, 0.0), cap)


# -- the policy applied to one call ----------------------------------------------------------------

_JITTER = random.Random()  # jitter, not secrets


async def retry_transient(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[TransientError, float], None] | None = None,
) -> T:
    """``await call()``, again after each :class:`TransientError` as ``policy`` says (its
    ``Retry-After`` when it carries one, else backoff), ``policy.max_retries`` times at most;
    then the last error is raised. Every other error is raised at once. ``on_retry`` is told of
    each retry and its delay."""
    attempt = 0
    while True:
        try:
            return await call()
        except TransientError as exc:
            delay = _next_delay(policy, attempt, exc, rng)
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
        attempt += 1
        await sleep(delay)


def retry_transient_sync(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[TransientError, float], None] | None = None,
) -> T:
    """:func:`retry_transient` for synchronous callers (it sleeps the calling thread)."""
    attempt = 0
    while True:
        try:
            return call()
        except TransientError as exc:
            delay = _next_delay(policy, attempt, exc, rng)
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
        attempt += 1
        sleep(delay)


def _next_delay(
    policy: RetryPolicy, attempt: int, error: TransientError, rng: random.Random | None
) -> float | None:
    """Seconds before retry number ``attempt``, or None when the budget is spent."""
    if attempt >= policy.max_retries:
        return None
    return policy.delay(attempt, error.retry_after, rng or _JITTER)
