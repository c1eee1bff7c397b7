"""Onboard a customer through GDAP: the resumable state machine of DAP onboarding
(:mod:`cspgraph.partner.onboarding`), extended by the steps GDAP adds::

    inviting → waiting_for_approval → activating → assigning → consenting → verifying → done

The customer's approval can take days, so the run does not wait for it: it stops in
``waiting_for_approval`` with the link to send (the command exits saying so), and the next run
continues from the state file. Every other wait runs on the given clock (the emulator's world
clock in tests): activation (polled every 30 s, CIPP's figure), the access assignments
(:mod:`cspgraph.gdap.assign`), the consent and its propagation with a new token per attempt
(:mod:`cspgraph.gdap.consent`), then the smoke test of DAP onboarding (``GET /organization``,
``GET /users?$top=5``) with the app's own token.

State files sit beside DAP onboarding's (same directory, ``gdap-<domain>.json``, 0600), so
:func:`onboardings_in_flight` lists both.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cspgraph.config import write_private_file
from cspgraph.gdap.api import ENDED_STATUSES, Relationship
from cspgraph.gdap.assign import assign
from cspgraph.gdap.consent import consent_customer
from cspgraph.gdap.invite import InviteRequest, default_name, invite
from cspgraph.gdap.roles import describe
from cspgraph.gdap.session import GdapSession
from cspgraph.graph.client import GraphClient
from cspgraph.http.errors import CspGraphError, NeedsPersonError, PropagatingError
from cspgraph.http.retry import PropagationPolicy
from cspgraph.partner.onboarding import (
    Attempt,
    Clock,
    OnboardingStore,
    SystemClock,
    default_state_dir,
)

log = logging.getLogger(__name__)

VERSION = 1
INVITING = "inviting"
WAITING_FOR_APPROVAL = "waiting_for_approval"
ACTIVATING = "activating"
ASSIGNING = "assigning"
CONSENTING = "consenting"
VERIFYING = "verifying"
DONE = "done"
STATES = (INVITING, WAITING_FOR_APPROVAL, ACTIVATING, ASSIGNING, CONSENTING, VERIFYING, DONE)
# What a person does next in each state that stops a run.
NEXT_STEP = {
    INVITING: "run the same command again",
    WAITING_FOR_APPROVAL: "the customer's Global Administrator approves at the link; then run "
    "the same command again",
    ACTIVATING: "run the same command again in a few minutes",
    ASSIGNING: "run the same command again; when a role had no group to go to (the last "
    "error says so), add --create-groups or --group ROLE=GROUP",
    CONSENTING: "run the same command again (or the customer's administrator opens the "
    "/adminconsent link)",
    VERIFYING: "run the same command again",
    DONE: "nothing: the customer is onboarded",
}
ACTIVATION_POLL = 30.0  # CIPP polls activation every 30 s (wire-facts §5.2)


@dataclass(frozen=True)
class GdapOnboardingSettings:
    """Durations in seconds: activation (after approval), assignments, consent propagation."""

    activation_budget: float = 900.0
    assignment_budget: float = 480.0
    retry_every: float = 60.0
    consent_budget: float = 900.0


@dataclass
class GdapOnboardingRecord:
    """What one customer's GDAP onboarding has done (the state file's content)."""

    domain: str
    region: str
    roles: list[str]
    state: str = INVITING
    tenant_id: str | None = None
    relationship_name: str | None = None
    relationship_id: str | None = None
    approval_link: str | None = None
    admin_consent_link: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # {"state", "at"}
    attempts: list[Attempt] = field(default_factory=list)  # consent propagation
    last_error: str | None = None
    organization: str | None = None
    users_seen: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "version": VERSION, "kind": "gdap"}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GdapOnboardingRecord:
        if data.get("version") != VERSION or data.get("kind") != "gdap":
            raise ValueError("not a GDAP onboarding state file of this version")
        if data.get("state") not in STATES:
            raise ValueError(f"unknown state {data.get('state')!r}")
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["attempts"] = [Attempt(**a) for a in data.get("attempts") or []]
        return cls(**fields)

    def since(self) -> float | None:
        return float(self.history[-1]["at"]) if self.history else None


class GdapOnboardingStore:
    """``gdap-<domain>.json`` state files (0600) beside DAP onboarding's, with its locks."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = (directory or default_state_dir()).expanduser()
        self._dap = OnboardingStore(self.directory)

    def path(self, domain: str) -> Path:
        return self._dap.path(f"gdap-{domain}")

    def load(self, domain: str) -> GdapOnboardingRecord | None:
        path = self.path(domain)
        try:
            return GdapOnboardingRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise NeedsPersonError(
                f"{path}: cannot read this GDAP onboarding state file ({exc}); move it away to "
                "start over (the relationship is found again by its name)",
                code="BadStateFile",
            ) from None

    def save(self, record: GdapOnboardingRecord) -> None:
        write_private_file(self.path(record.domain), json.dumps(record.to_json(), indent=1))

    def records(self) -> Iterator[GdapOnboardingRecord]:
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("gdap-*.json")):
            with contextlib.suppress(OSError, ValueError, TypeError):
                yield GdapOnboardingRecord.from_json(json.loads(path.read_text(encoding="utf-8")))

    @contextlib.contextmanager
    def lock(self, domain: str) -> Iterator[None]:
        with self._dap.lock(f"gdap-{domain}", what=f"onboarding {domain} through GDAP"):
            yield


@dataclass(frozen=True)
class GdapOnboardingResult:
    record: GdapOnboardingRecord
    resumed: bool
    state_file: Path

    @property
    def state(self) -> str:
        return self.record.state

    @property
    def needs_approval(self) -> bool:
        return self.record.state == WAITING_FOR_APPROVAL

    @property
    def needs_admin_consent(self) -> bool:
        return self.record.state == CONSENTING and self.record.admin_consent_link is not None

    @property
    def summary(self) -> str:
        r = self.record
        lines = [f"{r.domain}: tenant {r.tenant_id or 'unknown'} (region {r.region}) — {r.state}"]
        if r.relationship_name:
            lines.append(f"  relationship: {r.relationship_name} ({r.relationship_id})")
        if self.needs_approval:
            lines.append(
                "  waiting for the customer's approval: send this link to its Global "
                f"Administrator, then run the same command again:\n  {r.approval_link}"
            )
        if self.needs_admin_consent:
            lines.append(
                "  the customer's Global Administrator grants the app's permissions at:\n  "
                f"{r.admin_consent_link}\n  then run the same command again"
            )
        if r.attempts:
            denied = sum(1 for a in r.attempts if not a.ok)
            lines.append(f"  consent propagation: {len(r.attempts)} attempt(s), {denied} denied, "
                         "each with a new token")  # fmt: skip
        if r.organization is not None:
            lines.append(f"  organization: {r.organization}; users seen: {r.users_seen}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "domain": r.domain,
            "tenant_id": r.tenant_id,
            "region": r.region,
            "state": r.state,
            "resumed": self.resumed,
            "relationship": {"id": r.relationship_id, "name": r.relationship_name},
            "approval_link": r.approval_link,
            "admin_consent_link": r.admin_consent_link,
            "attempts": [
                {"at": _iso(a.at), "ok": a.ok, "code": a.code, "status": a.status}
                for a in r.attempts
            ],
            "history": [{"state": h["state"], "at": _iso(h["at"])} for h in r.history],
            "organization": r.organization,
            "users_seen": r.users_seen,
            "next_step": NEXT_STEP[r.state],
            "state_file": str(self.state_file),
        }


async def onboard_gdap(
    session: GdapSession,
    domain: str,
    *,
    roles: tuple[str, ...],
    name: str | None = None,
    create_groups: bool = False,
    groups: Mapping[str, str] | None = None,
    store: GdapOnboardingStore | None = None,
    clock: Clock | None = None,
    settings: GdapOnboardingSettings | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> GdapOnboardingResult:
    """Bring an existing tenant (``domain``) to Graph-ready through GDAP, resumable. Returns in
    ``waiting_for_approval`` until the customer approves (run it again afterwards), and in
    ``consenting`` with an /adminconsent link when a customer administrator must grant the
    app's roles; every other stop is an error of the taxonomy (run again to resume)."""
    store = store or GdapOnboardingStore()
    run = _GdapOnboarding(
        session, domain.lower(), roles, name, create_groups, dict(groups or {}), store,
        clock or SystemClock(), settings or GdapOnboardingSettings(), on_progress,
    )  # fmt: skip
    with store.lock(run.domain):
        return await run.run()


@dataclass
class _GdapOnboarding:
    session: GdapSession
    domain: str
    roles: tuple[str, ...]
    name: str | None
    create_groups: bool
    groups: dict[str, str]
    store: GdapOnboardingStore
    clock: Clock
    settings: GdapOnboardingSettings
    on_progress: Callable[[str], None] | None

    def say(self, text: str) -> None:
        log.info("GDAP onboarding %s: %s", self.domain, text)
        if self.on_progress is not None:
            self.on_progress(text)

    def enter(self, record: GdapOnboardingRecord, state: str, message: str) -> None:
        record.state = state
        record.history.append({"state": state, "at": self.clock.now()})
        self.store.save(record)
        self.say(f"{state}: {message}")

    async def run(self) -> GdapOnboardingResult:
        record = self.store.load(self.domain)
        try:
            return await self.steps(record)
        except CspGraphError as exc:
            # Kept for `onboard --status`: what stopped the last run.
            latest = self.store.load(self.domain)
            if latest is not None:
                latest.last_error = str(exc).splitlines()[0][:300]
                self.store.save(latest)
            raise

    async def steps(self, record: GdapOnboardingRecord | None) -> GdapOnboardingResult:
        resumed = record is not None
        if record is None:
            record = GdapOnboardingRecord(self.domain, self.session.region, list(self.roles))
        elif record.region.lower() != self.session.region.lower():
            raise NeedsPersonError(
                f"{self.domain} is being onboarded in region {record.region} "
                f"({self.store.path(self.domain)}); run it with that region",
                code="OtherRegion",
            )
        if record.state == INVITING:
            await self.invite(record)
        if record.state == WAITING_FOR_APPROVAL:
            rel = await self.relationship(record)
            if rel.status in ("created", "approvalPending"):
                self.say("waiting for the customer's approval")
                return self.result(record, resumed)
            self.enter(record, ACTIVATING, f"approved: relationship is {rel.status}")
        if record.state == ACTIVATING:
            await self.activation(record)
        if record.state == ASSIGNING:
            rel = await self.relationship(record)
            await assign(
                self.session.api, rel, groups=self.groups, create_groups=self.create_groups,
                clock=self.clock, budget=self.settings.assignment_budget, on_progress=self.say,
            )  # fmt: skip
            self.enter(record, CONSENTING, "every access assignment is active")
        if record.state == CONSENTING and not await self.consent(record):
            return self.result(record, resumed)
        if record.state == VERIFYING:
            await self.smoke_test(record)
            record.last_error = None
            self.enter(record, DONE, "onboarded")
        return self.result(record, resumed)

    def result(self, record: GdapOnboardingRecord, resumed: bool) -> GdapOnboardingResult:
        return GdapOnboardingResult(record, resumed, self.store.path(self.domain))

    # -- steps -----------------------------------------------------------------------------------

    async def invite(self, record: GdapOnboardingRecord) -> None:
        info = await self.session.provider.discovery.resolve(self.domain)
        record.tenant_id = info.tenant_id.lower()
        if self.name is None and record.relationship_id is None:
            adopted = await self.in_effect(record.tenant_id)
            if adopted is not None:
                # Approved already (Microsoft's default relationship of a new customer, say):
                # a second invitation would only wait for an approval nobody needs to give.
                record.relationship_id = adopted.id
                record.relationship_name = adopted.display_name
                self.enter(record, ACTIVATING, f"using relationship {adopted.display_name}, "
                           f"{adopted.status} with every role asked for")  # fmt: skip
                return
        record.relationship_name = (
            record.relationship_name or self.name or default_name(self.domain, self.roles)
        )
        request = InviteRequest(
            record.relationship_name, tuple(record.roles), customer_id=record.tenant_id,
            customer_name=self.domain,
        )  # fmt: skip
        made = await invite(self.session.api, request, admin_portal=self.session.admin_portal)
        record.relationship_id = made.relationship.id
        record.approval_link = made.link
        self.enter(record, WAITING_FOR_APPROVAL, f"relationship {made.relationship.display_name} "
                   f"is {made.relationship.status}")  # fmt: skip

    async def in_effect(self, tenant_id: str) -> Relationship | None:
        """The customer's relationship in effect that holds every role asked for (the one that
        ends last), or None; one that lacks some is said, and a new one invited."""
        live = [r for r in await self.session.api.relationships(customer=tenant_id)
                if r.gives_access]  # fmt: skip
        wanted = set(self.roles)
        covering = [r for r in live if wanted <= set(r.roles)]
        if covering:
            return max(covering, key=lambda r: r.ends or datetime.max.replace(tzinfo=UTC))
        for rel in live:
            lacking = describe(sorted(wanted - set(rel.roles)))
            self.say(f"relationship {rel.display_name} is {rel.status} but lacks {lacking}: "
                     "inviting a new one with every role asked for")  # fmt: skip
        return None

    async def relationship(self, record: GdapOnboardingRecord) -> Relationship:
        assert record.relationship_id is not None
        rel = await self.session.api.relationship(record.relationship_id)
        if rel.status in ENDED_STATUSES:
            raise NeedsPersonError(
                f"{self.domain}: relationship {rel.display_name!r} is {rel.status} (declined or "
                "ended); move the state file away and onboard again with a new --name "
                f"({self.store.path(self.domain)})",
                code="GdapEnded",
                tenant=record.tenant_id,
            )
        return rel

    async def activation(self, record: GdapOnboardingRecord) -> None:
        started = self.clock.now()
        while True:
            rel = await self.relationship(record)
            if rel.gives_access:
                self.enter(record, ASSIGNING, f"relationship is {rel.status}")
                return
            waited = self.clock.now() - started
            if waited + ACTIVATION_POLL > self.settings.activation_budget:
                raise PropagatingError(
                    f"{self.domain}: relationship {rel.display_name!r} is still {rel.status} "
                    f"{waited:.0f} s later; run the same command again to keep waiting",
                    code="GdapActivating",
                    tenant=record.tenant_id,
                )
            self.say(f"relationship is {rel.status}; next look in {ACTIVATION_POLL:.0f} s")
            await self.clock.sleep(ACTIVATION_POLL)

    async def consent(self, record: GdapOnboardingRecord) -> bool:
        assert record.tenant_id is not None
        result = await consent_customer(
            self.session, record.tenant_id, clock=self.clock,
            retry_every=self.settings.retry_every, budget=self.settings.consent_budget,
            on_progress=self.say,
        )  # fmt: skip
        record.attempts = list(result.attempts)
        record.admin_consent_link = result.admin_consent_link
        if result.admin_consent_link is not None:
            self.store.save(record)
            self.say("the customer's administrator must grant the app's permissions")
            return False
        self.enter(record, VERIFYING, "the app's token carries what the sync needs")
        return True

    async def smoke_test(self, record: GdapOnboardingRecord) -> None:
        """DAP onboarding's smoke test, with the app's own token (what the sync will use)."""
        assert record.tenant_id is not None
        provider = self.session.provider
        s = self.settings
        graph = GraphClient(
            provider, graph_url=provider.cloud.graph, ca_bundle=provider.cloud.ca_bundle,
            sleep=self.clock.sleep,
            # A front end that has not caught up: wait, then a new token (the original rule).
            propagation=PropagationPolicy(
                initial_wait=s.retry_every, retry_every=s.retry_every, budget=s.consent_budget
            ),
        )  # fmt: skip
        try:
            organization = await graph.get(record.tenant_id, "/organization")
            users = await graph.get(record.tenant_id, "/users", params={"$top": 5, "$select": "id"})
        finally:
            await graph.close()
        orgs = organization.get("value") or []
        record.organization = str(orgs[0].get("displayName")) if orgs else None
        record.users_seen = len(users.get("value") or [])


def stopped_state(
    directory: Path | None, domain: str, error: CspGraphError
) -> dict[str, Any] | None:
    """The JSON state of an onboarding a failure stopped (what a piped run prints before its
    error line, as the stops that are not failures print theirs); None before any state file."""
    store = GdapOnboardingStore(directory)
    record = store.load(domain.lower())
    if record is None:
        return None
    state = GdapOnboardingResult(record, True, store.path(record.domain)).as_dict()
    state["error"] = {
        "class": str(error.error_class),
        "code": error.code,
        "message": error.message,
        "reason": error.reason,
    }
    return state


def onboardings_in_flight(directory: Path | None = None) -> list[dict[str, Any]]:
    """Every onboarding not done, DAP and GDAP, from the state files: what it waits for and
    what a person does next."""
    found: list[dict[str, Any]] = []
    for dap in OnboardingStore(directory).records():
        if dap.state != "done":
            found.append({
                "kind": "dap", "domain": dap.domain, "region": dap.region, "state": dap.state,
                "tenant_id": dap.tenant_id,
                "since": _iso(float(dap.history[-1]["at"])) if dap.history else None,
                "next_step": "run the same onboard command again",
                "link": None, "last_error": dap.last_error,
            })  # fmt: skip
    for gdap in GdapOnboardingStore(directory).records():
        if gdap.state != DONE:
            link = (
                gdap.approval_link
                if gdap.state == WAITING_FOR_APPROVAL
                else (gdap.admin_consent_link)
            )
            found.append({
                "kind": "gdap", "domain": gdap.domain, "region": gdap.region,
                "state": gdap.state, "tenant_id": gdap.tenant_id, "since": _iso(gdap.since()),
                "next_step": NEXT_STEP[gdap.state], "link": link, "last_error": gdap.last_error,
            })  # fmt: skip
    return sorted(found, key=lambda item: (item["domain"], item["kind"]))


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
