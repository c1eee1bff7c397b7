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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cspgraph.graph.client import GraphClient
from cspgraph.http.errors import NeedsPersonError
from cspgraph.partner.center import BillingAddress, NewCustomer, PartnerCenterClient
from cspgraph.partner.onboarding import (
    AWAITING_ACCEPTANCE,
    CREATED,
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

RELATIONSHIP_REQUESTS = "/v1/customers/relationshiprequests"


class AwaitingAcceptanceError(NeedsPersonError):
    """The tenant has not accepted the reseller invitation yet: its administrator must."""


async def invitation_link(partner_center: PartnerCenterClient) -> str:
    """The reseller invitation link of the client's partner (``GET
    /v1/customers/relationshiprequests``). Partner Center answers only App+User credentials:
    give the client a signed-in partner user's tokens (an app-only caller gets 403)."""
    return await partner_center.relationship_request_url()


@dataclass
class _ExistingOnboarding(_Onboarding):
    accept_wait: float = 0.0
    poll_every: float = 30.0

    async def run(self) -> OnboardingResult:
        record = self.store.load(self.domain)
        if record is None or record.state == AWAITING_ACCEPTANCE:
            await self.await_acceptance(record)
        return await super().run()

    async def await_acceptance(self, record: OnboardingRecord | None) -> None:
        first_ask = record is None
        if record is None:
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
