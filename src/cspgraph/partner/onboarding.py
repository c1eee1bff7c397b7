"""Onboard a new customer: create it in Partner Center, wait out propagation, prove Graph works.

The seed ("Calling Microsoft Graph immediately after customer creation"): a new customer's partner
relationship takes up to 3 minutes to reach its tenant, and until then Graph answers "access
denied". So: do not ask for a token until ``initial_wait`` after creation; on an authorization
error wait ``retry_every`` and try again **with a newly acquired token** (the old one keeps the
claims it was born without); give up after ``budget`` with a :class:`OnboardingTimeout` that says
what was tried. Then a smoke test (``GET /organization``, ``GET /users?$top=5``) and a summary.

The procedure is a state machine persisted per domain in a JSON file, so an interrupted run
continues where it stopped and never creates a second customer::

    creating → created → waiting → token_acquired → verified → done

``creating`` is written *before* the create request with its ``MS-RequestId``: repeating the
request after a crash makes Partner Center replay its first answer. A domain is checked before
creating: a tenant that already has it and is this partner's customer is adopted; one that is not
is refused with :class:`~cspgraph.partner.center.DomainInUseError`.

Time comes from a :class:`Clock`: :class:`SystemClock` for real, :class:`EmulatorClock` to move an
emulator's world clock instead of sleeping (tests, demos).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp

from cspgraph.config import write_private_file
from cspgraph.discovery import TenantDiscovery, UnknownTenantError
from cspgraph.graph.client import GraphClient, PropagationPolicy, TokenSource
from cspgraph.http.errors import (
    APP_NOT_IN_TENANT_CODES,
    CspGraphError,
    NeedsPersonError,
    PropagatingError,
    TransientError,
    aadsts_code,
)
from cspgraph.http.sessions import aiohttp_session
from cspgraph.partner.center import (
    CreatedCustomer,
    Customer,
    CustomerNotFoundError,
    DomainInUseError,
    NewCustomer,
    NotYourCustomerError,
    PartnerCenterClient,
    Secret,
)

if TYPE_CHECKING:
    from cspgraph.emulator_endpoints import EmulatorEndpoints
    from cspgraph.identity import TokenProvider

log = logging.getLogger(__name__)

STATE_VERSION = 1
CREATING = "creating"
CREATED = "created"
WAITING = "waiting"
TOKEN_ACQUIRED = "token_acquired"
VERIFIED = "verified"
DONE = "done"
# An existing tenant invited to become a customer (onboarding_existing.py): until it accepts.
AWAITING_ACCEPTANCE = "awaiting_acceptance"
STATES = (AWAITING_ACCEPTANCE, CREATING, CREATED, WAITING, TOKEN_ACQUIRED, VERIFIED, DONE)


# -- time ------------------------------------------------------------------------------------------


class Clock(Protocol):
    """Where onboarding gets the time and how it waits."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall time; waiting is ``asyncio.sleep``."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class EmulatorClock:
    """A running emulator's world clock: reading it is local, waiting moves it forward.

    The world clock runs at wall speed plus an offset that ``POST /_emulator/clock`` increases;
    after each move this clock re-reads the world time the emulator answers with, and in between
    adds the (monotonic) time that passed here. Create it with :meth:`connect`.
    """

    def __init__(self, control_url: str, *, ca_bundle: str | None = None) -> None:
        self._url = control_url.rstrip("/") + "/_emulator/clock"
        self._ca_bundle = ca_bundle
        self._epoch = time.time()
        self._mono = time.monotonic()
        self._session: aiohttp.ClientSession | None = None
        self.advanced = 0.0  # world seconds this clock has moved the emulator forward

    @classmethod
    async def connect(cls, control_url: str, *, ca_bundle: str | None = None) -> EmulatorClock:
        clock = cls(control_url, ca_bundle=ca_bundle)
        await clock.sync()
        return clock

    @classmethod
    async def of(cls, endpoints: EmulatorEndpoints) -> EmulatorClock:
        """The clock of the emulator an endpoints file names (``Config.emulator_endpoints()``)."""
        return await cls.connect(endpoints.control, ca_bundle=endpoints.ca_bundle)

    def now(self) -> float:
        return self._epoch + (time.monotonic() - self._mono)

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._accept(await self._call("POST", {"seconds": seconds}))
            self.advanced += seconds
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is

    async def sync(self) -> None:
        self._accept(await self._call("GET", None))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _accept(self, answer: Mapping[str, Any]) -> None:
        self._epoch = float(answer["epoch"])
        self._mono = time.monotonic()

    async def _call(self, method: str, body: dict[str, Any] | None) -> Mapping[str, Any]:
        if self._session is None:
            self._session = aiohttp_session(self._ca_bundle, limit=1)
        async with self._session.request(method, self._url, json=body) as response:
            response.raise_for_status()
            answer = await response.json()
        if not isinstance(answer, dict) or "epoch" not in answer:
            raise ValueError(f"{self._url} did not answer with the emulator's clock")
        return answer


# -- settings and the policy for every call --------------------------------------------------------


@dataclass(frozen=True)
class OnboardingSettings:
    """Durations in seconds. The defaults are the seed's: 3 minutes, then every 60 s; give up
    15 minutes after creation. ``progress_every``: how often a wait reports progress (None:
    once, when it starts)."""

    initial_wait: float = 180.0
    retry_every: float = 60.0
    budget: float = 900.0
    progress_every: float | None = 5.0

    def __post_init__(self) -> None:
        for name in ("initial_wait", "retry_every", "budget"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} cannot be negative")
        if self.retry_every == 0:
            raise ValueError("retry_every must be more than 0 seconds")


def young_tenant_policy(
    settings: OnboardingSettings | None = None,
    *,
    on_wait: Callable[[PropagatingError, float], None] | None = None,
    young: Callable[[str], bool] | None = None,
) -> PropagationPolicy:
    """The Graph client's retry policy for tenants whose partner relationship may still be on its
    way: on an authorization error wait ``initial_wait``, then every ``retry_every``, each time with
    a newly acquired token, for at most ``budget`` seconds of waiting. Give it to
    ``GraphClient(propagation=…)``. ``young`` (e.g. :func:`young_tenants`) limits it to tenants
    onboarded moments ago; without it the policy covers every tenant the client calls."""
    s = settings or OnboardingSettings()
    return PropagationPolicy(
        initial_wait=s.initial_wait,
        retry_every=s.retry_every,
        budget=s.budget,
        on_wait=on_wait,
        applies_to=young,
    )


def young_tenants(
    store: OnboardingStore, *, clock: Clock | None = None, within: float = 3600.0
) -> Callable[[str], bool]:
    """Which tenants are young: created (or taken over) by this partner's onboarding less than
    ``within`` seconds ago, by the onboarding state files. Read once, when called."""
    now = (clock or SystemClock()).now()
    young: set[str] = set()
    for record in store.records():
        started = record.created_at if record.created_at is not None else record.adopted_at
        if record.tenant_id and started is not None and now - started < within:
            young.add(record.tenant_id.lower())
    return lambda tenant: tenant.lower() in young


# -- the persisted state ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One try at getting into the tenant: a new token, then a Graph call."""

    at: float
    ok: bool
    code: str | None = None
    status: int | None = None
    message: str | None = None


@dataclass
class OnboardingRecord:
    """What one domain's onboarding has done so far (the state file's content)."""

    domain: str
    company_name: str
    region: str
    state: str = CREATING
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    tenant_id: str | None = None
    created_at: float | None = None  # when Partner Center created it (None: adopted, unknown)
    adopted_at: float | None = None  # when an existing customer was taken over instead
    created_by_us: bool = False
    admin_username: str | None = None
    organization: str | None = None
    users_seen: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # {"state", "at"}
    attempts: list[Attempt] = field(default_factory=list)
    last_error: str | None = None

    @property
    def start(self) -> float:
        """From when the budget is counted: creation, or adoption."""
        assert self.created_at is not None or self.adopted_at is not None
        return self.created_at if self.created_at is not None else float(self.adopted_at or 0.0)

    def entered(self, state: str) -> float | None:
        for item in reversed(self.history):
            if item.get("state") == state:
                return float(item["at"])
        return None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["version"] = STATE_VERSION
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OnboardingRecord:
        if data.get("version") != STATE_VERSION or data.get("state") not in STATES:
            raise ValueError("not an onboarding state file of this version")
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["attempts"] = [Attempt(**a) for a in data.get("attempts") or []]
        return cls(**fields)


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cspgraph" / "onboarding"


_SAFE = re.compile(r"[^a-z0-9.-]")


class OnboardingStore:
    """One JSON state file per domain in ``directory`` (0600, replaced atomically)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = (directory or default_state_dir()).expanduser()

    def path(self, domain: str) -> Path:
        return self.directory / f"{_SAFE.sub('_', domain.lower())}.json"

    def load(self, domain: str) -> OnboardingRecord | None:
        path = self.path(domain)
        try:
            return OnboardingRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise NeedsPersonError(
                f"{path}: cannot read this onboarding state file ({exc}); move it away to start "
                "over (a customer it already created is found again by its domain)",
                code="BadStateFile",
            ) from None

    def records(self) -> Iterator[OnboardingRecord]:
        """Every domain's record; unreadable files are skipped (``load`` names them)."""
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("*.json")):
            with contextlib.suppress(OSError, ValueError, TypeError):
                yield OnboardingRecord.from_json(json.loads(path.read_text(encoding="utf-8")))

    def save(self, record: OnboardingRecord) -> None:
        write_private_file(self.path(record.domain), json.dumps(record.to_json(), indent=1))

    def forget(self, domain: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(domain).unlink()

    @contextlib.contextmanager
    def lock(self, domain: str, *, what: str | None = None) -> Iterator[None]:
        """Hold the domain for this process: two runs onboarding one domain at once would race.
        ``domain``: the state file's stem; ``what``: what the refusal names (default: the
        domain, onboarded)."""
        try:
            import fcntl  # here, not at the top: POSIX only (the lock is skipped elsewhere)
        except ImportError:  # not POSIX: no lock, as before
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.path(domain).with_suffix(".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise NeedsPersonError(
                    f"another cspgraph process is {what or f'onboarding {domain}'} right now "
                    f"({path})",
                    code="OnboardingInProgress",
                ) from None
            yield
        finally:
            os.close(fd)  # closing releases the lock


# -- what callers see ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnboardingProgress:
    """A step of the procedure, for progress displays."""

    domain: str
    state: str
    message: str
    now: float
    until: float | None = None  # the end of the current wait
    attempt: int = 0


class OnboardingTimeout(NeedsPersonError):
    """Graph kept denying access for the whole budget. ``attempts`` says what was tried."""

    def __init__(self, message: str, *, attempts: tuple[Attempt, ...], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.attempts = attempts


@dataclass(frozen=True)
class OnboardingResult:
    domain: str
    tenant_id: str
    region: str
    state: str
    created: bool  # this run created the customer in Partner Center
    adopted: bool  # an existing customer of this partner was taken over
    resumed: bool  # this run continued an earlier one
    created_at: float | None
    token_at: float | None  # when the first working token was acquired
    verified_at: float | None
    attempts: tuple[Attempt, ...]
    organization: str | None
    users_seen: int | None
    admin_username: str | None
    admin_password: Secret | None  # only in the run that created the customer, never stored
    state_file: Path

    @property
    def summary(self) -> str:
        lines = [f"{self.domain}: tenant {self.tenant_id} (region {self.region}) — {self.state}"]
        origin = "created now" if self.created else "adopted" if self.adopted else "created"
        lines.append(f"  customer: {origin}" + (" (resumed)" if self.resumed else ""))
        if self.token_at is not None:
            denied = sum(1 for a in self.attempts if not a.ok)
            when = (
                f"{self.token_at - self.created_at:.0f} s after creation"
                if self.created_at is not None
                else "confirmed"
            )
            lines.append(
                f"  Graph access: {when}, {len(self.attempts)} attempt(s), {denied} denied"
            )
        if self.organization is not None:
            lines.append(f"  organization: {self.organization}; users seen: {self.users_seen}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "tenant_id": self.tenant_id,
            "region": self.region,
            "state": self.state,
            "created": self.created,
            "adopted": self.adopted,
            "resumed": self.resumed,
            "created_at": _iso(self.created_at),
            "token_at": _iso(self.token_at),
            "verified_at": _iso(self.verified_at),
            "attempts": [
                {"at": _iso(a.at), "ok": a.ok, "code": a.code, "status": a.status}
                for a in self.attempts
            ],
            "organization": self.organization,
            "users_seen": self.users_seen,
            "admin_username": self.admin_username,
            "state_file": str(self.state_file),
        }


# -- the procedure ---------------------------------------------------------------------------------


async def onboard(
    provider: TokenProvider,
    new: NewCustomer,
    *,
    region: str | None = None,
    store: OnboardingStore | None = None,
    clock: Clock | None = None,
    settings: OnboardingSettings | None = None,
    on_progress: Callable[[OnboardingProgress], None] | None = None,
    on_created: Callable[[str, Secret], None] | None = None,
) -> OnboardingResult:
    """Create (or find) the customer for ``new.domain`` in a configured region and bring it to
    Graph-ready, with everything ``provider`` holds: the region's Partner Center client, app-only
    Graph tokens, discovery (the domain is checked with one request) and the cloud's Graph host.
    ``region`` may be left out when one region is configured; ``store`` defaults to the state
    directory, ``clock`` to wall time. Run it again after an interruption: it continues from the
    state file. :func:`onboard_customer` takes each piece separately."""
    identity = provider.config.region_identity(region)
    clock = clock or SystemClock()
    async with PartnerCenterClient.for_region(
        provider, identity.region, sleep=clock.sleep
    ) as partner_center:
        return await onboard_customer(
            new,
            region=identity.region,
            partner_center=partner_center,
            tokens=provider,
            graph_url=provider.cloud.graph,
            ca_bundle=provider.cloud.ca_bundle,
            store=store,
            clock=clock,
            settings=settings,
            discovery=provider.discovery,
            on_progress=on_progress,
            on_created=on_created,
        )


async def onboard_customer(
    new: NewCustomer,
    *,
    region: str,
    partner_center: PartnerCenterClient,
    tokens: TokenSource,
    graph_url: str,
    ca_bundle: str | None = None,
    store: OnboardingStore | None = None,
    clock: Clock | None = None,
    settings: OnboardingSettings | None = None,
    discovery: TenantDiscovery | None = None,
    on_progress: Callable[[OnboardingProgress], None] | None = None,
    on_created: Callable[[str, Secret], None] | None = None,
) -> OnboardingResult:
    """Create (or find) the customer for ``new.domain`` and bring it to Graph-ready.

    ``tokens`` gives app-only Graph tokens for customer tenants (``get_token(tenant,
    fresh=True)`` must acquire a new one); ``partner_center`` is the client of ``region``'s
    partner tenant. With ``discovery`` the domain is checked through OIDC discovery (one request)
    instead of Partner Center's full customer list. Run it again after an interruption: it
    continues from the state file. ``on_created`` gets the new customer's first admin and
    password the moment Partner Center answers (the password exists only in this run: a caller
    that waits for the end would lose it to a Ctrl-C or a budget stop in between).
    """
    store = store or OnboardingStore()
    clock = clock or SystemClock()
    run = _Onboarding(
        new=new,
        region=region,
        pc=partner_center,
        tokens=tokens,
        store=store,
        clock=clock,
        settings=settings or OnboardingSettings(),
        discovery=discovery,
        on_progress=on_progress,
        on_created=on_created,
        graph=GraphClient(
            tokens,
            graph_url=graph_url,
            ca_bundle=ca_bundle,
            sleep=clock.sleep,
        ),
    )
    with store.lock(new.domain):
        try:
            return await run.run()
        finally:
            await run.graph.close()


@dataclass
class _Onboarding:
    new: NewCustomer
    region: str
    pc: PartnerCenterClient
    tokens: TokenSource
    store: OnboardingStore
    clock: Clock
    settings: OnboardingSettings
    discovery: TenantDiscovery | None
    on_progress: Callable[[OnboardingProgress], None] | None
    on_created: Callable[[str, Secret], None] | None
    graph: GraphClient
    created: CreatedCustomer | None = None
    resumed: bool = False
    dap_asked: bool = False  # Partner Center asked whether the customer has DAP (this run)

    @property
    def domain(self) -> str:
        return self.new.domain.lower()

    # -- bookkeeping -------------------------------------------------------------------------

    def progress(
        self, state: str, message: str, *, until: float | None = None, attempt: int = 0
    ) -> None:
        log.info("onboarding %s: %s", self.domain, message)
        if self.on_progress is not None:
            self.on_progress(
                OnboardingProgress(self.domain, state, message, self.clock.now(), until, attempt)
            )

    def enter(self, record: OnboardingRecord, state: str, message: str) -> None:
        record.state = state
        record.history.append({"state": state, "at": self.clock.now()})
        self.store.save(record)
        self.progress(state, message)

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> OnboardingResult:
        record = self.store.load(self.domain)
        if record is not None and record.region.lower() != self.region.lower():
            raise NeedsPersonError(
                f"{self.domain} is being onboarded in region {record.region} "
                f"({self.store.path(self.domain)}); run it with that region, or move the state "
                "file away to start over",
                code="OtherRegion",
            )
        self.resumed = record is not None
        if record is not None and record.state != CREATING:
            self.progress(record.state, f"resuming from state {record.state}")
        if record is None or record.state == CREATING:
            record = await self.create(record)
        assert record.tenant_id is not None
        if record.state in (CREATED, WAITING):
            await self.get_in(record)
        if record.state == TOKEN_ACQUIRED:
            await self.smoke_test(record)
        if record.state == VERIFIED:
            self.enter(record, DONE, "done")
        return self.result(record)

    # -- creating ----------------------------------------------------------------------------

    async def create(self, record: OnboardingRecord | None) -> OnboardingRecord:
        if record is None:
            existing = await self.existing_customer()
            if existing is not None:
                found = OnboardingRecord(self.domain, self.new.company_name, self.region)
                found.tenant_id = existing.tenant_id
                found.adopted_at = self.clock.now()
                self.enter(
                    found, CREATED, f"{self.domain} is already a customer ({existing.tenant_id})"
                )
                return found
            record = OnboardingRecord(self.domain, self.new.company_name, self.region)
            # Written before the request, with its MS-RequestId: see below.
            self.enter(record, CREATING, f"creating customer {self.domain} in Partner Center")
        else:
            # Interrupted around the create: whether it went through or not, the same
            # MS-RequestId makes Partner Center answer as it did (or would have) the first time.
            self.progress(CREATING, f"repeating the interrupted create of {self.domain}")
        try:
            created = await self.pc.create_customer(self.new, request_id=record.request_id)
        except DomainInUseError as exc:
            self.store.forget(self.domain)
            raise self.domain_taken(None, exc) from None
        self.created = created
        if self.on_created and created.admin_username and created.admin_password is not None:
            self.on_created(created.admin_username, created.admin_password)
        record.tenant_id = created.customer.tenant_id
        record.created_at = self.clock.now()
        record.created_by_us = created.created
        record.admin_username = created.admin_username
        self.enter(record, CREATED, f"created customer {self.domain}: tenant {record.tenant_id}")
        return record

    async def existing_customer(self) -> Customer | None:
        """This partner's customer with the domain, or None when the domain is free; raises
        :class:`DomainInUseError` when another tenant holds it."""
        if self.discovery is None:
            return await self.pc.find_customer(domain=self.domain)
        try:
            info = await self.discovery.resolve(self.domain)
        except UnknownTenantError:
            return None  # no tenant has this domain: nobody's customer yet
        try:
            return await self.pc.get_customer(info.tenant_id)
        except (NotYourCustomerError, CustomerNotFoundError) as exc:
            raise self.domain_taken(info.tenant_id, exc) from None

    def domain_taken(self, tenant_id: str | None, cause: CspGraphError) -> DomainInUseError:
        holder = f"tenant {tenant_id}" if tenant_id else "another tenant"
        return DomainInUseError(
            f"the domain {self.domain} already belongs to {holder}, which is not a customer of "
            f"yours in region {self.region}; choose another domain (or, if it is your customer "
            "in another region, onboard it there)",
            code=cause.code,
            status=cause.status,
            tenant=tenant_id,
            reason="the domain is already used by another tenant",
        )

    # -- waiting for propagation -------------------------------------------------------------

    async def wait_until(self, record: OnboardingRecord, until: float, why: str) -> None:
        every = self.settings.progress_every
        attempt = len(record.attempts)
        while True:
            left = until - self.clock.now()
            if left <= 0:
                return
            self.progress(WAITING, f"{why}: {left:.0f} s left", until=until, attempt=attempt)
            await self.clock.sleep(left if every is None else min(left, every))

    def next_due(self, record: OnboardingRecord) -> float:
        """When the next attempt may be made: ``initial_wait`` after creation for the first, then
        ``retry_every`` after the previous one. A customer taken over (creation time unknown) is
        tried at once, and after a first denial given the full initial wait."""
        s = self.settings
        if not record.attempts:
            return (
                self.clock.now()
                if record.created_at is None
                else record.created_at + s.initial_wait
            )
        pause = s.initial_wait if record.created_at is None and len(record.attempts) == 1 else 0.0
        return record.attempts[-1].at + max(pause, s.retry_every)

    async def get_in(self, record: OnboardingRecord) -> None:
        tenant = record.tenant_id
        assert tenant is not None
        if record.state == CREATED:
            self.enter(record, WAITING, "waiting for the partner relationship to propagate")
        deadline = record.start + self.settings.budget
        while True:
            due = self.next_due(record)
            if due > deadline:
                raise self.timeout(record)
            if record.attempts:
                last = record.attempts[-1]
                why = f"attempt {len(record.attempts)} denied ({last.code}); next with a new token"
            else:
                why = "not asking for a token yet"
            await self.wait_until(record, due, why)
            attempt = await self.try_tenant(tenant)
            record.attempts.append(attempt)
            if attempt.ok:
                record.last_error = None
                self.enter(record, TOKEN_ACQUIRED, "a new token works in the customer tenant")
                return
            record.last_error = attempt.message
            self.store.save(record)
            self.progress(
                WAITING,
                f"attempt {len(record.attempts)} denied: {attempt.code} (HTTP {attempt.status})",
                attempt=len(record.attempts),
            )
            if await self.created_without_dap(tenant, attempt):
                raise self.no_dap_stop(record, attempt)

    async def created_without_dap(self, tenant: str, attempt: Attempt) -> bool:
        """Whether the app's token was refused as "not in this tenant" (AADSTS700016, …) and
        Partner Center says the customer has no DAP (``allowDelegatedAccess`` false: how
        Microsoft creates customers now). Then no pre-consent is on its way and waiting would
        only burn the budget. Asked once a run, at the first such denial; unknown counts as
        DAP (the original rule then stands)."""
        code = aadsts_code(attempt.code) or aadsts_code(attempt.message)
        if code not in APP_NOT_IN_TENANT_CODES or self.dap_asked:
            return False
        self.dap_asked = True
        try:
            customer = await self.pc.get_customer(tenant)
        except CspGraphError as exc:
            log.info("Partner Center did not say whether %s has DAP: %s", tenant, exc)
            return False
        return customer.raw.get("allowDelegatedAccess") is False

    def no_dap_stop(self, record: OnboardingRecord, attempt: Attempt) -> NeedsPersonError:
        return NeedsPersonError(
            f"{self.domain} (tenant {record.tenant_id}) has no DAP (Partner Center: "
            f"allowDelegatedAccess false), and a new app-only token was refused ({attempt.code}): "
            "no pre-consent is on its way, so waiting would not help. The app reaches it through "
            f"GDAP and its own consent: `cspgraph onboard --gdap --domain {self.domain}` (it "
            "uses the customer's default GDAP relationship when that holds the roles asked for), "
            f"or, with a relationship in effect, `cspgraph gdap consent --customer {self.domain}`"
            "; then run this command again to finish",
            code="GdapOnly",
            tenant=record.tenant_id,
            reason="no DAP, and the app is not consented in this customer",
        )

    async def try_tenant(self, tenant: str) -> Attempt:
        """A new token (never the cached one: it keeps the claims it was born without), then
        one Graph call with it."""
        at = self.clock.now()
        try:
            await self.tokens.get_token(tenant, fresh=True)
            await self.graph.get(tenant, "/organization", params={"$select": "id"})
        except (PropagatingError, TransientError) as exc:
            return Attempt(at, False, exc.code, exc.status, _first_line(exc))
        return Attempt(at, True)

    def timeout(self, record: OnboardingRecord) -> OnboardingTimeout:
        attempts = tuple(record.attempts)
        start = record.start
        offsets = ", ".join(f"+{a.at - start:.0f}s" for a in attempts)
        last = attempts[-1] if attempts else None
        code = (
            f"{last.code} (HTTP {last.status})"
            if last and last.status
            else (last.code if last else "none")
        )
        since = "created" if record.created_at is not None else "taken over"
        return OnboardingTimeout(
            f"{self.domain} (tenant {record.tenant_id}): Microsoft Graph still denies access "
            f"{self.clock.now() - start:.0f} s after the customer was {since}. Tried "
            f"{len(attempts)} time(s), each with a newly acquired token, at {offsets} "
            f"(first {_iso(attempts[0].at) if attempts else '-'}, last "
            f"{_iso(attempts[-1].at) if attempts else '-'}); last error: {code}. The partner "
            "relationship has not reached the customer tenant: check in Partner Center that the "
            "customer shows a reseller relationship and that the app's service principal is in "
            "AdminAgents (cspgraph setup), then run the same onboard command again to resume.",
            attempts=attempts,
            code=last.code if last else None,
            status=last.status if last else None,
            tenant=record.tenant_id,
            reason="the partner relationship did not propagate within the budget",
        )

    # -- the smoke test ----------------------------------------------------------------------

    async def smoke_test(self, record: OnboardingRecord) -> None:
        tenant = record.tenant_id
        assert tenant is not None
        s = self.settings
        remaining = max(0.0, record.start + s.budget - self.clock.now())

        def waiting(error: PropagatingError, wait: float) -> None:
            record.attempts.append(
                Attempt(self.clock.now(), False, error.code, error.status, _first_line(error))
            )
            self.store.save(record)
            self.progress(WAITING, f"smoke test denied ({error.code}); retrying in {wait:.0f} s")

        # Access was just proven; a denial now is a Graph front end that has not caught up, so
        # the policy waits retry_every (not the initial wait) and always fetches a new token.
        self.graph.propagation = PropagationPolicy(
            initial_wait=s.retry_every, retry_every=s.retry_every, budget=remaining,
            on_wait=waiting,
        )  # fmt: skip
        try:
            organization = await self.graph.get(tenant, "/organization")
            users = await self.graph.get(tenant, "/users", params={"$top": 5, "$select": "id"})
        except PropagatingError as exc:
            record.attempts.append(
                Attempt(self.clock.now(), False, exc.code, exc.status, _first_line(exc))
            )
            self.store.save(record)
            raise self.timeout(record) from exc
        orgs = organization.get("value") or []
        record.organization = str(orgs[0].get("displayName")) if orgs else None
        record.users_seen = len(users.get("value") or [])
        self.enter(
            record,
            VERIFIED,
            f"Graph works: organization {record.organization!r}, {record.users_seen} user(s) read",
        )

    # -- the answer --------------------------------------------------------------------------

    def result(self, record: OnboardingRecord) -> OnboardingResult:
        assert record.tenant_id is not None
        created_now = self.created is not None and self.created.created
        return OnboardingResult(
            domain=self.domain,
            tenant_id=record.tenant_id,
            region=record.region,
            state=record.state,
            created=created_now,
            adopted=record.adopted_at is not None,
            resumed=self.resumed,
            created_at=record.created_at,
            token_at=record.entered(TOKEN_ACQUIRED),
            verified_at=record.entered(VERIFIED),
            attempts=tuple(record.attempts),
            organization=record.organization,
            users_seen=record.users_seen,
            admin_username=record.admin_username,
            admin_password=self.created.admin_password if self.created else None,
            state_file=self.store.path(self.domain),
        )


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0][:300]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
