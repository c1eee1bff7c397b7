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
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, TypeVar

from cspgraph.http.errors import HostUnreachableError, TransientError

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


# -- hosts that stopped answering ------------------------------------------------------------------

# How long a host judged gone stays so before calls may try it again (a long-lived process, such
# as a worker, must notice it is back; a sync has long stopped by then).
RECHECK_AFTER = 60.0


class HostWatch:
    """Which hosts stopped answering, for every client in the process.

    A connection that cannot be made never reached the service: for a blip, retrying is right.
    But when one call has spent its whole retry budget on connections a host refused, and no
    answer came from that host meanwhile (:meth:`gave_up`), the host is gone (a stopped
    emulator, a network that went away): every call to it then fails at once
    (:meth:`check`) instead of each spending a retry budget of its own, so a fleet of
    customers stops in the time one call takes, not in thousands of budgets. Any answer from
    the host (:meth:`answered`) ends that, as does ``recheck_after`` seconds.

    ``listeners`` are told, in one line each, when a host begins refusing connections, when it
    is judged gone and when it answers again (a command's stderr: never silence while
    retrying). They may be called from any thread.
    """

    def __init__(
        self,
        *,
        recheck_after: float = RECHECK_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recheck_after = recheck_after
        self.clock = clock
        self.listeners: list[Callable[[str], None]] = []
        self._lock = threading.Lock()
        self._answers: dict[str, int] = {}  # answers seen per host (a generation)
        self._refusing: set[str] = set()  # hosts refusing since their last answer
        self._judged: set[str] = set()  # hosts judged gone since their last answer
        self._ever: dict[str, str] = {}  # host -> where, for every host judged gone since reset
        self._gone: dict[str, tuple[float, HostUnreachableError]] = {}  # host -> (since, why)

    def answered(self, host: str) -> None:
        """An answer (any status) came from ``host``."""
        if host not in self._refusing:  # the hot path: no lock for a host that answers
            self._answers[host] = self._answers.get(host, 0) + 1
            return
        with self._lock:
            self._answers[host] = self._answers.get(host, 0) + 1
            self._refusing.discard(host)
            self._gone.pop(host, None)
            back = host in self._judged
            self._judged.discard(host)
        if back:
            self._tell(f"{host} answers again")  # (an answer does not say which service)

    def refused(self, error: HostUnreachableError) -> int:
        """A connection to ``error.host`` could not be made; returns the host's generation, to
        hand to :meth:`gave_up` when the call's retries are spent."""
        host = error.host
        with self._lock:
            first = host not in self._refusing
            self._refusing.add(host)
            generation = self._answers.get(host, 0)
        if first:
            self._tell(f"{error.where} refuses connections: retrying")
        return generation

    def gave_up(self, error: HostUnreachableError, generation: int) -> None:
        """A call spent its retries on refused connections, the first of them when the host
        had given ``generation`` answers: with none since, the host is judged gone."""
        host = error.host
        with self._lock:
            if self._answers.get(host, 0) != generation or host in self._gone:
                return
            self._gone[host] = (self.clock(), error)
            self._judged.add(host)
            self._ever[host] = error.where
        self._tell(
            f"{error.where} stopped answering: every connection refused for a whole retry "
            "budget; calls to it now fail at once"
        )

    def check(self, host: str) -> None:
        """Raise the :class:`HostUnreachableError` that judged ``host`` gone, if it is."""
        gone = self._gone.get(host)
        if gone is None:
            return
        since, error = gone
        if self.clock() - since >= self.recheck_after:
            with self._lock:
                self._gone.pop(host, None)  # let calls try it again
            return
        raise HostUnreachableError(
            f"{error.where} stopped answering: every connection refused",
            host=host,
            service=error.service,
            reason=f"{error.where} stopped answering",
        )

    def gone(self) -> list[str]:
        """The hosts judged gone now, each with its service ("Microsoft Graph at …")."""
        return sorted(error.where for _, error in self._gone.values())

    def ever_gone(self) -> list[str]:
        """The hosts judged gone at some time since :meth:`reset` (a request in flight when a
        host went away may be answered after the judgment, which ends it; a run that failed
        meanwhile still failed because of it)."""
        return sorted(self._ever.values())

    def reset(self) -> None:
        """Forget every host (a new command in the same process starts from nothing)."""
        with self._lock:
            self._answers.clear()
            self._refusing.clear()
            self._judged.clear()
            self._ever.clear()
            self._gone.clear()

    def _tell(self, line: str) -> None:
        for listener in list(self.listeners):
            listener(line)


HOSTS = HostWatch()  # the process's view (every client shares it: hosts are the process's)


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
    refused: int | None = None
    while True:
        try:
            return await call()
        except TransientError as exc:
            refused = _watch(exc, refused)
            delay = _next_delay(policy, attempt, exc, rng, refused)
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
    refused: int | None = None
    while True:
        try:
            return call()
        except TransientError as exc:
            refused = _watch(exc, refused)
            delay = _next_delay(policy, attempt, exc, rng, refused)
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
        attempt += 1
        sleep(delay)


def _watch(error: TransientError, refused: int | None) -> int | None:
    """Tell :data:`HOSTS` of a refused connection (raising at once for a host judged gone);
    the call's generation of its first refusal, or None while it has had none."""
    if not isinstance(error, HostUnreachableError):
        return refused
    HOSTS.check(error.host)
    generation = HOSTS.refused(error)
    return generation if refused is None else refused


def _next_delay(
    policy: RetryPolicy,
    attempt: int,
    error: TransientError,
    rng: random.Random | None,
    refused: int | None = None,
) -> float | None:
    """Seconds before retry number ``attempt``, or None when the budget is spent (then a call
    that met refused connections tells :data:`HOSTS` it gave up)."""
    if attempt >= policy.max_retries:
        if refused is not None and attempt and isinstance(error, HostUnreachableError):
            HOSTS.gave_up(error, refused)  # (a call allowed no retry judges nothing)
        return None
    return policy.delay(attempt, error.retry_after, rng or _JITTER)
