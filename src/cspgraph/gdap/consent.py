"""Consent the region's app in a GDAP customer with exactly what cspgraph needs, then wait until
the token service gives it.

GDAP is not DAP's pre-consent: a customer reached through GDAP has the app only once it is
consented there (wire-facts §4.4, §5). Four steps, each idempotent:

1. **Partner Center ``applicationconsents``** (as the technician: app+user, a Cloud Application
   Administrator or Application Administrator through GDAP): the app's service principal and a
   tenant-wide grant of the **delegated** scopes — the sync's delegated permissions plus the two
   that let the technician grant app roles next (``AppRoleAssignment.ReadWrite.All``,
   ``Application.Read.All``: what partners' tools bootstrap with). A 409 "already exists" is
   not taken for done: the existing consent is read and compared; a consent with other scopes
   (drift) is removed and made again, which is how Partner Center's consent is changed.
2. **The technician's token reaches the customer**: the consent takes a while to arrive
   (``consent_delay`` in the emulator, ~60 s in the field), so a denied call is retried after
   ``retry_every`` with a **new** token.
3. **App roles**: the application permissions the sync needs, assigned to the app's service
   principal in the customer through Graph (``POST /servicePrincipals/{graph}/appRoleAssignedTo``)
   with the technician's token; those already there are kept. Where the technician's roles do not
   allow it (403), the customer's Global Administrator grants them instead: the
   ``/adminconsent`` link is given and the result says a person must act.
4. **Propagation**: an app-only token is acquired and its ``roles`` read, until they hold every
   permission the sync needs — each attempt with a newly acquired token (the original
   description's rule: a token issued before the consent arrived never gains it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from cspgraph.gdap.api import approval_link
from cspgraph.gdap.consent_state import AppTokens, ConsentState, consent_state
from cspgraph.gdap.roles import sync_application_permissions
from cspgraph.gdap.session import GdapSession
from cspgraph.graph.client import GraphClient
from cspgraph.graph.scope import APPLICATION_ROLE_IDS, SYNC_OPERATIONS, required_permissions
from cspgraph.http.errors import (
    GDAP_IN_EFFECT,
    GDAP_ON_ITS_WAY,
    CspGraphError,
    NeedsPersonError,
    PropagatingError,
    TransientError,
)
from cspgraph.partner.center import (
    GRAPH_APP_ID,
    ApplicationConsent,
    NotYourCustomerError,
    PartnerCenterClient,
)
from cspgraph.partner.onboarding import Attempt, Clock, SystemClock

# What lets the technician grant the app its roles in the customer (CIPP's bootstrap).
BOOTSTRAP_SCOPES = ("AppRoleAssignment.ReadWrite.All", "Application.Read.All")
# CIPP retries consent and the app-role push every 30 s for up to 8 minutes (wire-facts §5.2);
# the original description's rule is 60 s between attempts, each with a new token.
RETRY_EVERY = 60.0
BUDGET = 900.0


def delegated_scopes() -> tuple[str, ...]:
    """The delegated scopes Partner Center's consent grants: the sync's, and the bootstrap's."""
    sync = required_permissions(SYNC_OPERATIONS, delegated=True)
    return tuple(sorted(set(sync) | set(BOOTSTRAP_SCOPES)))


def admin_consent_link(authority_host: str, tenant: str, client_id: str) -> str:
    """The link a customer's Global Administrator opens to grant the app what it asks for."""
    return f"{authority_host.rstrip('/')}/{tenant}/adminconsent?client_id={quote(client_id)}"


@dataclass
class ConsentResult:
    customer: str
    app_id: str
    partner_center: str  # "created", "already there", "corrected"
    scopes: tuple[str, ...]
    drift: list[str] = field(default_factory=list)  # what differed, in words
    app_roles_added: list[str] = field(default_factory=list)
    app_roles_present: list[str] = field(default_factory=list)
    admin_consent_link: str | None = None  # set when a customer administrator must act
    attempts: list[Attempt] = field(default_factory=list)  # propagation: app-only tokens
    technician_attempts: list[Attempt] = field(default_factory=list)
    state: ConsentState | None = None

    @property
    def done(self) -> bool:
        return self.state is not None and self.state.state == "yes"

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "app_id": self.app_id,
            "partner_center": self.partner_center,
            "scopes": list(self.scopes),
            "drift": self.drift,
            "app_roles_added": self.app_roles_added,
            "app_roles_present": self.app_roles_present,
            "admin_consent_link": self.admin_consent_link,
            "technician_attempts": [_attempt(a) for a in self.technician_attempts],
            "attempts": [_attempt(a) for a in self.attempts],
            "consent": self.state.as_dict() if self.state else None,
            "done": self.done,
        }


def _attempt(a: Attempt) -> dict[str, Any]:
    at = datetime.fromtimestamp(a.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"at": at, "ok": a.ok, "code": a.code, "status": a.status}


@dataclass
class ConsentRun:
    """Everything one customer's consent needs; :meth:`run` does the four steps."""

    customer: str  # tenant id
    app_id: str
    partner_center: PartnerCenterClient  # the technician's (app+user) client
    technician: GraphClient  # Graph on the technician's delegated tokens
    technician_tokens: AppTokens  # those tokens (a new one per attempt)
    app_tokens: AppTokens  # the app's own (app-only) tokens
    authority_host: str
    clock: Clock = field(default_factory=SystemClock)
    retry_every: float = RETRY_EVERY
    budget: float = BUDGET
    on_progress: Callable[[str], None] | None = None
    needed: tuple[str, ...] = field(default_factory=sync_application_permissions)

    def say(self, text: str) -> None:
        if self.on_progress is not None:
            self.on_progress(text)

    async def run(self) -> ConsentResult:
        scopes = delegated_scopes()
        result = ConsentResult(self.customer, self.app_id, "created", scopes)
        await self.partner_center_consent(result)
        started = self.clock.now()
        graph_sp, app_sp = await self.technician_gets_in(result, started)
        await self.app_roles(result, graph_sp, app_sp)
        if result.admin_consent_link is None:
            await self.until_propagated(result, started)
        return result

    # -- 1. Partner Center ----------------------------------------------------------------------

    async def partner_center_consent(self, result: ConsentResult) -> None:
        pc, wanted = self.partner_center, result.scopes
        made = await pc.create_application_consent(self.customer, self.app_id, wanted)
        if made is not None:
            self.say(f"Partner Center consented the app with {', '.join(wanted)}")
            return
        existing = _ours(await pc.application_consents(self.customer), self.app_id)
        have = set(existing.scopes()) if existing is not None else set()
        missing, extra = sorted(set(wanted) - have), sorted(have - set(wanted))
        if extra:
            # Reported, not removed: making the consent again would remove the service principal
            # with every grant it holds, an administrator's /adminconsent among them (which adds
            # the scopes the app's registration asks for).
            result.drift.append(
                f"delegated scopes beyond what cspgraph needs: {', '.join(extra)} (left in place)"
            )
        if not missing:
            result.partner_center = "already there"
            self.say("Partner Center: the app's consent is already there with what cspgraph needs")
            return
        result.drift.append(f"delegated scopes missing: {', '.join(missing)}")
        self.say(f"Partner Center: consent drifted ({'; '.join(result.drift)}); making it again")
        # Partner Center changes a consent by removal and a new consent (wire-facts §4.4).
        await pc.delete_application_consent(self.customer, self.app_id)
        if await pc.create_application_consent(self.customer, self.app_id, wanted) is None:
            raise TransientError(
                f"customer {self.customer}: Partner Center still reports the removed consent",
                tenant=self.customer,
                reason="Partner Center's consent removal has not taken effect",
            )
        result.partner_center = "corrected"

    # -- 2. the technician's token reaches the customer ---------------------------------------

    async def technician_gets_in(self, result: ConsentResult, started: float) -> tuple[str, str]:
        """The ids of Microsoft Graph's and the app's service principals in the customer, read
        with the technician's token once the consent lets it in."""
        while True:
            at = self.clock.now()
            try:
                await self._technician_token()
                graph_sp = await self._service_principal(GRAPH_APP_ID)
                app_sp = await self._service_principal(self.app_id)
            except (PropagatingError, TransientError) as exc:
                result.technician_attempts.append(_denied(at, exc))
                self._wait_or_give_up(started, exc, "the technician's access (delegated consent)")
                self.say(f"technician denied in the customer ({exc.code}); new token in "
                         f"{self.retry_every:.0f} s")  # fmt: skip
                await self.clock.sleep(self.retry_every)
                continue
            if app_sp is None or graph_sp is None:
                missing = "the app" if app_sp is None else "Microsoft Graph"
                absent = PropagatingError(
                    f"{missing} has no service principal in customer {self.customer} yet",
                    code="ServicePrincipalMissing",
                    tenant=self.customer,
                )
                result.technician_attempts.append(_denied(at, absent))
                self._wait_or_give_up(started, absent, "the app's service principal")
                await self.clock.sleep(self.retry_every)
                continue
            result.technician_attempts.append(Attempt(at, True))
            return graph_sp, app_sp

    async def _technician_token(self) -> None:
        # A new token each attempt: one issued before the consent arrived keeps lacking it.
        await self.technician_tokens.get_token(self.customer, fresh=True)

    async def _service_principal(self, app_id: str) -> str | None:
        answer = await self.technician.get(
            self.customer,
            "/servicePrincipals",
            params={"$filter": f"appId eq '{app_id}'", "$select": "id,appId"},
        )
        found = answer.get("value") or []
        return str(found[0]["id"]) if found else None

    # -- 3. app roles ----------------------------------------------------------------------------

    async def app_roles(self, result: ConsentResult, graph_sp: str, app_sp: str) -> None:
        graph = await self.technician.get(
            self.customer, f"/servicePrincipals/{graph_sp}", params={"$select": "id,appRoles"}
        )
        ids = {
            str(r.get("value")): str(r["id"]).lower()
            for r in graph.get("appRoles") or []
            if isinstance(r, dict) and r.get("id")
        }
        held = {
            str(a.get("appRoleId")).lower()
            async for a in self.technician.list(
                self.customer, f"/servicePrincipals/{app_sp}/appRoleAssignments"
            )
            if str(a.get("resourceId", "")).lower() == graph_sp.lower()
        }
        wanted_ids = {
            (ids.get(n) or APPLICATION_ROLE_IDS.get(n) or "").lower() for n in self.needed
        }
        names = {role_id: value for value, role_id in ids.items()}
        extra = sorted(names.get(r, r) for r in held - wanted_ids)
        if extra:
            # Reported, not removed: another tool of the partner's may rely on them.
            result.drift.append(
                f"app roles beyond what cspgraph needs: {', '.join(extra)} (left in place)"
            )
        for name in self.needed:
            role_id = ids.get(name) or APPLICATION_ROLE_IDS.get(name)
            if role_id is None:
                raise NeedsPersonError(
                    f"Microsoft Graph in customer {self.customer} offers no app role {name}",
                    tenant=self.customer,
                    code="UnknownAppRole",
                )
            if role_id.lower() in held:
                result.app_roles_present.append(name)
                continue
            body = {"principalId": app_sp, "resourceId": graph_sp, "appRoleId": role_id}
            try:
                await self.technician.post(
                    self.customer, f"/servicePrincipals/{graph_sp}/appRoleAssignedTo", body
                )
            except PropagatingError as exc:
                if exc.status != 403:
                    raise
                # The technician's GDAP roles do not let them grant Graph's app roles.
                result.admin_consent_link = admin_consent_link(
                    self.authority_host, self.customer, self.app_id
                )
                self.say(f"not allowed to grant {name} ({exc.code}): the customer's Global "
                         "Administrator must consent")  # fmt: skip
                return
            except CspGraphError as exc:
                if "already exists" not in exc.message:
                    raise
                result.app_roles_present.append(name)
                continue
            result.app_roles_added.append(name)
        if result.app_roles_added:
            result.drift.extend(
                [f"app roles missing: {', '.join(result.app_roles_added)}"]
                if result.partner_center == "already there"
                else []
            )
            self.say(f"granted the app {', '.join(result.app_roles_added)}")

    # -- 4. propagation --------------------------------------------------------------------------

    async def until_propagated(self, result: ConsentResult, started: float) -> None:
        while True:
            at = self.clock.now()
            state = await consent_state(self.app_tokens, self.customer, self.needed)
            result.state = state
            if state.state == "yes":
                result.attempts.append(Attempt(at, True))
                self.say("the app's token carries every permission the sync needs")
                return
            code = (state.detail or state.state).split(":")[0]
            result.attempts.append(Attempt(at, False, code, None, state.label))
            if state.state == "unknown":
                raise TransientError(
                    f"customer {self.customer}: the app's token could not be checked "
                    f"({state.detail}); run the same command again",
                    tenant=self.customer,
                )
            exc = PropagatingError(
                f"the app's token in customer {self.customer}: consent {state.label}",
                code=code,
                tenant=self.customer,
            )
            self._wait_or_give_up(started, exc, "the app's consent")
            self.say(f"app-only token {state.label}; a new token in {self.retry_every:.0f} s")
            await self.clock.sleep(self.retry_every)

    def _wait_or_give_up(self, started: float, exc: CspGraphError, what: str) -> None:
        waited = self.clock.now() - started
        if waited + self.retry_every > self.budget:
            raise PropagatingError(
                f"customer {self.customer}: {what} has not arrived {waited:.0f} s after the "
                f"consent (last: {exc.code}); run the same command again to keep waiting",
                code=exc.code,
                status=exc.status,
                tenant=self.customer,
                reason="the consent has not reached the customer yet",
            )


def _ours(consents: Sequence[ApplicationConsent], app_id: str) -> ApplicationConsent | None:
    return next((c for c in consents if c.application_id == app_id.lower()), None)


def _denied(at: float, exc: CspGraphError) -> Attempt:
    return Attempt(at, False, exc.code, exc.status, str(exc).splitlines()[0][:300])


async def consent_customer(
    session: GdapSession,
    customer: str,
    *,
    clock: Clock | None = None,
    retry_every: float = RETRY_EVERY,
    budget: float = BUDGET,
    on_progress: Callable[[str], None] | None = None,
) -> ConsentResult:
    """Consent the session's region app in ``customer`` (a tenant id) as the session's
    technician, and wait until its app-only token carries what the sync needs."""
    clock = clock or SystemClock()
    identity = session.provider.config.region_identity(session.region)
    async with session.partner_center(sleep=clock.sleep) as pc:
        run = ConsentRun(
            customer=customer.lower(),
            app_id=identity.client_id.lower(),
            partner_center=pc,
            technician=session.graph,
            technician_tokens=session.agent,
            app_tokens=session.provider,
            authority_host=session.authority_host,
            clock=clock,
            retry_every=retry_every,
            budget=budget,
            on_progress=on_progress,
        )
        try:
            return await run.run()
        except NotYourCustomerError as exc:
            raise await not_in_effect_yet(session, run.customer, exc) from exc


async def not_in_effect_yet(
    session: GdapSession, customer: str, refused: CspGraphError
) -> CspGraphError:
    """Partner Center's "no commerce relationship" (20002) to a consent, said as what it is
    from the customer's GDAP relationships: one awaiting approval (with its link), one still
    activating, or none in effect. ``refused`` stands when they say nothing more."""
    try:
        rels = await session.api.relationships(customer=customer)
    except CspGraphError:
        return refused
    if any(r.status in GDAP_IN_EFFECT for r in rels):
        return refused
    said = f"customer {customer}: Partner Center cannot consent the app there yet (code 20002): "
    coming = [r for r in rels if r.status in GDAP_ON_ITS_WAY]
    if coming:
        return PropagatingError(
            said + f"its GDAP relationship {coming[0].display_name!r} is {coming[0].status}; "
            "run the same command again in a few minutes",
            code="RelationshipActivating", tenant=customer,
            reason="the GDAP relationship is still activating",
        )  # fmt: skip
    pending = [r for r in rels if r.status == "approvalPending"]
    if pending:
        link = approval_link(pending[0].id, session.admin_portal)
        return NeedsPersonError(
            said + f"its GDAP relationship {pending[0].display_name!r} awaits the customer's "
            "approval. Send the customer's Global Administrator the approval link, then run "
            f"the same command again: {link}",
            code="ApprovalPending", tenant=customer,
            reason="the GDAP relationship awaits the customer's approval",
        )  # fmt: skip
    created = [r for r in rels if r.status == "created"]
    if created:
        why = (
            f"its GDAP relationship {created[0].display_name!r} is not locked for approval "
            f"yet: `cspgraph gdap invite --customer {customer} --name "
            f"'{created[0].display_name}' --roles …` locks it and prints the approval link"
        )
    else:
        why = (
            "no GDAP relationship with it is in effect: invite it (`cspgraph gdap invite "
            f"--customer {customer}`, or `cspgraph onboard --gdap --domain …`)"
        )
    return NeedsPersonError(
        said + why, code="NoRelationshipInEffect", tenant=customer,
        reason="no GDAP relationship with the customer is in effect",
    )  # fmt: skip
