"""Onboard an existing tenant: invite it, wait for its acceptance, then the original rule.

A tenant that already exists becomes a customer when its Global Administrator accepts the
partner's reseller invitation: Partner Center's ``GET /v1/customers/relationshiprequests``
(App+User credentials only) gives the link (:func:`invitation_link`). Once accepted, the
customer appears in Partner Center's customer list, and its relationship takes as long to reach
the tenant as a new customer's (the original description: wait 3 minutes, then try with a new
token every 60 s). So :func:`onboard_existing` continues the onboarding state machine with one
state before the others::

    awaiting_acceptance → created → waiting → token_acquired → verified → done

It looks for the domain in the customer list every ``poll_every`` seconds for at most
``accept_wait`` seconds (acceptance can take days: by default it looks once and exits, saying
so, and the same command resumes later). The moment it first sees the customer counts as its
creation: Partner Center does not say when the invitation was accepted, so the 3 minutes count
from then (a tenant that is already a customer when first asked is taken over and tried at
once, as :mod:`cspgraph.partner.onboarding` does).

A tenant may accept the reseller relationship *without* DAP (Partner Center's
``allowDelegatedAccess`` false; Microsoft's invitations have not offered DAP since 2023). Then no
pre-consent is on its way and the original rule would only wait out its budget: the app reaches
such a customer through a GDAP relationship and its own consent there, or not at all. So the run
tries once with a new app-only token; if that works (the app is consented already) it goes on to
the smoke test, and otherwise it stops at once (:class:`GdapOnlyError`), naming the next step
from the partner's GDAP relationships with the tenant: ``cspgraph onboard --gdap`` (none yet,
waiting for approval, ended), wait (activating), or ``cspgraph gdap consent`` (one in effect).
Run the same command again afterwards: it resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cspgraph.graph.client import GraphClient
from cspgraph.http.errors import (
    GDAP_ENDED,
    GDAP_IN_EFFECT,
    GDAP_ON_ITS_WAY,
    GDAP_WAITING,
    CspGraphError,
    NeedsPersonError,
    PropagatingError,
    RelationshipFact,
)
from cspgraph.partner.center import BillingAddress, NewCustomer, PartnerCenterClient
from cspgraph.partner.onboarding import (
    AWAITING_ACCEPTANCE,
    CREATED,
    TOKEN_ACQUIRED,
    Attempt,
    Clock,
    OnboardingProgress,
    OnboardingRecord,
    OnboardingResult,
    OnboardingSettings,
    OnboardingStore,
    SystemClock,
    _Onboarding,
)

if TYPE_CHECKING:
    from cspgraph.http.sender import TokenSource
    from cspgraph.identity import AgentTokenProvider, TokenProvider

log = logging.getLogger(__name__)

RELATIONSHIP_REQUESTS = "/v1/customers/relationshiprequests"
GDAP_RELATIONSHIPS = "/tenantRelationships/delegatedAdminRelationships"


class AwaitingAcceptanceError(NeedsPersonError):
    """The tenant has not accepted the reseller invitation yet: its administrator must."""


class GdapOnlyError(NeedsPersonError):
    """The tenant accepted without DAP and the app is not consented there: GDAP onboarding
    (``cspgraph onboard --gdap``) or the app's consent (``cspgraph gdap consent``) comes next."""


def gdap_only_error(
    domain: str,
    tenant: str,
    relationships: tuple[RelationshipFact, ...] | None,
    attempt: Attempt,
    *,
    unknown_why: str | None = None,
) -> CspGraphError:
    """Why an app-only token cannot reach a customer without DAP, and what comes next, from the
    partner's GDAP relationships with it (None: they could not be read, ``unknown_why``)."""
    said = f"{domain} accepted the reseller invitation without DAP, so the app reaches it only "
    said += f"through GDAP and its own consent there (a new app-only token: {attempt.code}); "
    onboard = f"`cspgraph onboard --gdap --domain {domain}`"
    rels = relationships or ()

    def pick(statuses: frozenset[str]) -> RelationshipFact | None:
        found = [r for r in rels if r.status in statuses]
        return max(found, key=lambda r: r.end or "", default=None)

    if (live := pick(GDAP_IN_EFFECT)) is not None:
        return GdapOnlyError(
            said + f"its GDAP relationship {live.name} is {live.status}: consent the app with "
            f"`cspgraph gdap consent --customer {domain}`, then run this command again",
            reason="the app is not consented in this customer (no DAP)",
            code="GdapOnly", tenant=tenant,
        )  # fmt: skip
    if (coming := pick(GDAP_ON_ITS_WAY)) is not None:
        return PropagatingError(
            said + f"its GDAP relationship {coming.name} is {coming.status}: run this command "
            f"again in a few minutes, then `cspgraph gdap consent --customer {domain}`",
            reason="the GDAP relationship is still activating", code="GdapOnly", tenant=tenant,
        )  # fmt: skip
    if (waiting := pick(GDAP_WAITING)) is not None:
        step = f"{onboard} prints its approval link again and carries on once it is approved"
        why = f"its GDAP relationship {waiting.name} awaits the customer's approval: {step}"
    elif (ended := pick(GDAP_ENDED)) is not None:
        end = (ended.end or "an unknown date")[:10]
        why = (
            f"its GDAP relationship {ended.name} is {ended.status} (ended {end}): onboard it "
            f"through a new one, {onboard} --name NEW-NAME"
        )
    elif relationships is None:
        why = (
            f"its GDAP relationships could not be read ({unknown_why}): onboard it with "
            f"{onboard}, or, if a relationship is approved already, consent the app with "
            f"`cspgraph gdap consent --customer {domain}`"
        )
    else:
        why = (
            f"no GDAP relationship names it yet: onboard it with {onboard} (invitation, "
            "approval, access assignments, the app's consent)"
        )
    return GdapOnlyError(
        said + why,
        reason="no DAP, and the app is not consented in this customer",
        code="GdapOnly",
        tenant=tenant,
    )


async def invitation_link(partner_center: PartnerCenterClient) -> str:
    """The reseller invitation link of the client's partner (``GET
    /v1/customers/relationshiprequests``). Partner Center answers only App+User credentials:
    give the client a signed-in partner user's tokens (an app-only caller gets 403)."""
    return await partner_center.relationship_request_url()


@dataclass
class _ExistingOnboarding(_Onboarding):
    accept_wait: float = 0.0
    poll_every: float = 30.0
    partner_tenant: str | None = None

    async def get_in(self, record: OnboardingRecord) -> None:
        if record.state == CREATED and await self.without_dap(record):
            await self.through_consent(record)
            return
        await super().get_in(record)

    async def without_dap(self, record: OnboardingRecord) -> bool:
        """Partner Center says the customer has no DAP (unknown counts as DAP: the original
        rule then applies, as before)."""
        assert record.tenant_id is not None
        try:
            customer = await self.pc.get_customer(record.tenant_id)
        except CspGraphError as exc:
            log.info("Partner Center did not say whether %s has DAP: %s", self.domain, exc)
            return False
        return customer.raw.get("allowDelegatedAccess") is False

    async def through_consent(self, record: OnboardingRecord) -> None:
        """A customer without DAP: one try with a new app-only token (the app may be consented
        there already); else stop, naming the next step."""
        tenant = record.tenant_id
        assert tenant is not None
        attempt = await self.try_tenant(tenant)
        record.attempts.append(attempt)
        if attempt.ok:
            record.last_error = None
            self.enter(record, TOKEN_ACQUIRED, f"{self.domain} has no DAP: the app reaches it "
                       "through its own consent (GDAP)")  # fmt: skip
            return
        relationships, why = await self.gdap_relationships(tenant)
        error = gdap_only_error(self.domain, tenant, relationships, attempt, unknown_why=why)
        record.last_error = error.message[:300]
        self.store.save(record)
        raise error

    async def gdap_relationships(
        self, tenant: str
    ) -> tuple[tuple[RelationshipFact, ...] | None, str | None]:
        """The partner's GDAP relationships with ``tenant``, read app-only in the partner tenant
        (None, with why, when they cannot be read: the app may lack the permission)."""
        if self.partner_tenant is None:
            return None, "no partner tenant"
        try:
            found = [
                item
                async for item in self.graph.list(
                    self.partner_tenant,
                    GDAP_RELATIONSHIPS,
                    filter=f"customer/tenantId eq '{tenant}'",
                )
            ]
        except CspGraphError as exc:
            return None, f"{exc.code or exc.error_class}, HTTP {exc.status}"
        return tuple(
            RelationshipFact(
                name=str(item.get("displayName") or item.get("id") or "?"),
                status=str(item.get("status") or "unknown"),
                end=item.get("endDateTime") if isinstance(item.get("endDateTime"), str) else None,
            )
            for item in found
        ), None

    async def run(self) -> OnboardingResult:
        record = self.store.load(self.domain)
        if record is None or record.state == AWAITING_ACCEPTANCE:
            await self.await_acceptance(record)
        return await super().run()

    async def await_acceptance(self, record: OnboardingRecord | None) -> None:
        first_ask = record is None
        if record is None:
            if self.discovery is not None:
                # A domain no tenant has is a typo, not an invitation to wait for: refused
                # (AADSTS90002, exit 2) before any state file is written.
                await self.discovery.resolve(self.domain)
            record = OnboardingRecord(self.domain, self.new.company_name, self.region)
            self.enter(record, AWAITING_ACCEPTANCE, f"waiting for {self.domain} to accept")
        asked_since = record.entered(AWAITING_ACCEPTANCE) or self.clock.now()
        until = self.clock.now() + self.accept_wait
        while True:
            found = await self.pc.find_customer(domain=self.domain)
            if found is not None:
                record.tenant_id = found.tenant_id
                if first_ask:
                    record.adopted_at = self.clock.now()
                    message = f"{self.domain} is already a customer ({found.tenant_id})"
                else:
                    record.created_at = self.clock.now()
                    message = (
                        f"{self.domain} accepted the invitation: customer {found.tenant_id}; "
                        "its relationship now reaches the tenant"
                    )
                self.enter(record, CREATED, message)
                return
            first_ask = False
            left = until - self.clock.now()
            if left <= 0:
                waited = self.clock.now() - asked_since
                raise AwaitingAcceptanceError(
                    f"{self.domain} has not accepted the reseller invitation yet (asked "
                    f"{waited / 3600:.1f} h ago): send its Global Administrator the link from "
                    "`cspgraph customers invite`, then run the same command again",
                    code="AwaitingAcceptance",
                    reason="the customer has not accepted the invitation yet",
                )
            self.progress(AWAITING_ACCEPTANCE, f"not accepted yet; looking again in "
                          f"{min(left, self.poll_every):.0f} s")  # fmt: skip
            await self.clock.sleep(min(left, self.poll_every))


async def onboard_existing(
    provider: TokenProvider,
    domain: str,
    *,
    region: str | None = None,
    store: OnboardingStore | None = None,
    clock: Clock | None = None,
    settings: OnboardingSettings | None = None,
    accept_wait: float = 0.0,
    poll_every: float = 30.0,
    on_progress: Callable[[OnboardingProgress], None] | None = None,
) -> OnboardingResult:
    """Wait for ``domain`` (an existing tenant, invited) to appear among the region's
    customers, then bring it to Graph-ready as a new customer is (see the module docstring).
    Raises :class:`AwaitingAcceptanceError` when it has not accepted within ``accept_wait``;
    run it again later: it resumes."""
    identity = provider.config.region_identity(region)
    clock = clock or SystemClock()
    store = store or OnboardingStore()
    tokens: TokenSource = provider
    # Only the domain and a name are used: nothing is created in Partner Center.
    placeholder = NewCustomer(domain.lower(), domain.lower(), "", BillingAddress("", "", ""))
    async with PartnerCenterClient.for_region(
        provider, identity.region, sleep=clock.sleep
    ) as partner_center:
        graph = GraphClient(
            tokens,
            graph_url=provider.cloud.graph,
            ca_bundle=provider.cloud.ca_bundle,
            sleep=clock.sleep,
        )
        run = _ExistingOnboarding(
            new=placeholder,
            region=identity.region,
            pc=partner_center,
            tokens=tokens,
            store=store,
            clock=clock,
            settings=settings or OnboardingSettings(),
            discovery=provider.discovery,
            on_progress=on_progress,
            on_created=None,  # nothing is created: an existing tenant has its own admins
            graph=graph,
            accept_wait=accept_wait,
            poll_every=poll_every,
            partner_tenant=identity.partner_tenant,
        )
        with store.lock(domain):
            try:
                return await run.run()
            finally:
                await graph.close()


class UserPartnerCenterTokens:
    """A signed-in partner user's delegated Partner Center tokens (App+User) in its partner
    tenant, for Partner Center's App+User-only calls (``relationshiprequests``). ``agent``: an
    :class:`~cspgraph.identity.AgentTokenProvider` (a signed-in agent, or the service
    account's)."""

    def __init__(self, agent: AgentTokenProvider, partner_tenant: str) -> None:
        self.agent = agent
        self.partner_tenant = partner_tenant

    async def get_token(self, *, fresh: bool = False) -> str:
        return await self.agent.partner_center_token(self.partner_tenant, fresh=fresh)


async def reseller_invitation(
    provider: TokenProvider, agent: AgentTokenProvider, *, region: str | None = None
) -> str:
    """The region's reseller invitation link, asked with ``agent``'s App+User token."""
    identity = provider.config.region_identity(region)
    async with PartnerCenterClient(
        UserPartnerCenterTokens(agent, identity.partner_tenant),
        base_url=provider.cloud.partner_center,
        ca_bundle=provider.cloud.ca_bundle,
    ) as partner_center:
        return await invitation_link(partner_center)
