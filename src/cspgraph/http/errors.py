"""One error taxonomy for everything cspgraph does against Entra ID, Graph and Partner Center.

Every failure is classified once, here, into what the caller should do about it:

* ``transient``      — try again soon (throttling, 5xx, a race inside Entra);
* ``propagating``    — the partner relationship or a consent has not reached the tenant yet:
                       wait, then retry **with a new token** (a token keeps its birth claims);
* ``needs_person``   — nothing will change until somebody acts (Conditional Access, a disabled app,
                       an expired secret, a relationship that ended);
* ``bad_request``    — the request itself is wrong; retrying it is pointless.

The classification table lives in this module only. Messages carry codes and request ids, never a
token or a secret.

Each exception class fixes its taxonomy class (``TransientError.error_class`` is
``ErrorClass.TRANSIENT``, and a subclass such as ``DomainInUseError(BadRequestError)`` inherits
it), so raising one never names the class twice. This module sits at the bottom of the client
(``cspgraph.http``): everything above it raises and catches these, and importing it loads no HTTP
library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar


class ErrorClass(StrEnum):
    TRANSIENT = "transient"
    PROPAGATING = "propagating"
    NEEDS_PERSON = "needs_person"
    BAD_REQUEST = "bad_request"


@dataclass(frozen=True)
class Rule:
    error_class: ErrorClass
    reason: str  # what a person reading a report needs to know


# AADSTS codes (wire-facts §1.6, client-traps §11).
AADSTS_RULES: dict[int, Rule] = {
    # transient
    650051: Rule(ErrorClass.TRANSIENT, "service principal creation race inside Entra"),
    700027: Rule(
        ErrorClass.TRANSIENT,
        "client assertion signature rejected (often right after a certificate rotation)",
    ),
    # propagating: consent or the partner relationship has not reached the tenant yet
    65001: Rule(ErrorClass.PROPAGATING, "consent for the app is missing in the customer tenant"),
    700016: Rule(ErrorClass.PROPAGATING, "the app is not (yet) present in the customer tenant"),
    7000229: Rule(ErrorClass.PROPAGATING, "the app has no service principal in the tenant yet"),
    90099: Rule(
        ErrorClass.PROPAGATING,
        "the app is not authorized for partner delegated admins (pre-consent not in effect)",
    ),
    50020: Rule(ErrorClass.PROPAGATING, "the user is not (yet) recognised in the customer tenant"),
    50177: Rule(ErrorClass.PROPAGATING, "the user is not (yet) recognised in the customer tenant"),
    # needs a person
    53003: Rule(ErrorClass.NEEDS_PERSON, "blocked by Conditional Access"),
    7000112: Rule(ErrorClass.NEEDS_PERSON, "the application is disabled in the tenant"),
    7000215: Rule(ErrorClass.NEEDS_PERSON, "invalid client secret"),
    7000222: Rule(ErrorClass.NEEDS_PERSON, "the client secret has expired"),
    7000218: Rule(ErrorClass.NEEDS_PERSON, "no client secret or assertion was sent"),
    700024: Rule(ErrorClass.NEEDS_PERSON, "the client assertion is invalid"),
    700082: Rule(
        ErrorClass.NEEDS_PERSON, "the refresh token expired: the agent must sign in again"
    ),
    70008: Rule(ErrorClass.NEEDS_PERSON, "the refresh token expired: the agent must sign in again"),
    50173: Rule(ErrorClass.NEEDS_PERSON, "the grant was revoked: the agent must sign in again"),
    50078: Rule(ErrorClass.NEEDS_PERSON, "multi-factor authentication expired"),
    530034: Rule(ErrorClass.NEEDS_PERSON, "delegated admin access blocked (risk)"),
    500213: Rule(ErrorClass.NEEDS_PERSON, "blocked by a cross-tenant access policy (inbound)"),
    500212: Rule(ErrorClass.NEEDS_PERSON, "blocked by a cross-tenant access policy (outbound)"),
    5000224: Rule(ErrorClass.NEEDS_PERSON, "the tenant has been deleted"),
    # bad request
    90002: Rule(ErrorClass.BAD_REQUEST, "no such tenant or domain in this cloud"),
    50049: Rule(ErrorClass.BAD_REQUEST, "unknown authority instance"),
    70011: Rule(ErrorClass.BAD_REQUEST, "invalid scope"),
    900144: Rule(ErrorClass.BAD_REQUEST, "a required parameter is missing"),
    500011: Rule(ErrorClass.BAD_REQUEST, "the resource is not present in the tenant"),
    54005: Rule(ErrorClass.BAD_REQUEST, "the authorization code was already redeemed"),
    70000: Rule(ErrorClass.BAD_REQUEST, "the grant is invalid"),
    50126: Rule(ErrorClass.BAD_REQUEST, "invalid user name or password"),
}

# Graph `error.code` values, and the HTTP status used when the code says nothing more.
GRAPH_CODE_RULES: dict[str, Rule] = {
    "TooManyRequests": Rule(ErrorClass.TRANSIENT, "throttled by Microsoft Graph"),
    "ServiceUnavailable": Rule(ErrorClass.TRANSIENT, "Microsoft Graph is unavailable"),
    "UnknownError": Rule(ErrorClass.TRANSIENT, "Microsoft Graph failed internally"),
    "Authorization_RequestDenied": Rule(
        ErrorClass.PROPAGATING,
        "insufficient privileges (on a young relationship: pre-consent not in effect yet)",
    ),
    "Authorization_IdentityNotFound": Rule(
        ErrorClass.PROPAGATING, "the app's identity is not (yet) known in the customer tenant"
    ),
    "InvalidAuthenticationToken": Rule(ErrorClass.BAD_REQUEST, "the access token was rejected"),
    "Request_ResourceNotFound": Rule(ErrorClass.BAD_REQUEST, "no such object"),
    "ResourceNotFound": Rule(ErrorClass.BAD_REQUEST, "no such object"),
    "Request_BadRequest": Rule(ErrorClass.BAD_REQUEST, "the request is not valid"),
    "Request_UnsupportedQuery": Rule(ErrorClass.BAD_REQUEST, "the query is not supported"),
    "BadRequest": Rule(ErrorClass.BAD_REQUEST, "the request is not valid"),
    "syncStateNotFound": Rule(ErrorClass.BAD_REQUEST, "the delta token expired: resync"),
    "resyncRequired": Rule(ErrorClass.BAD_REQUEST, "the delta token expired: resync"),
    "AppLifecycle_2210": Rule(ErrorClass.NEEDS_PERSON, "the tenant is not licensed for this"),
    "CspScopeViolation": Rule(ErrorClass.BAD_REQUEST, "outside what a CSP app may call"),
}

# Partner Center's own codes (wire-facts §4.3).
PARTNER_CENTER_CODE_RULES: dict[str, Rule] = {
    "20002": Rule(
        ErrorClass.NEEDS_PERSON, "the partner has no commerce relationship with the customer"
    ),
    "60003": Rule(ErrorClass.BAD_REQUEST, "no such customer tenant"),
    "800001": Rule(ErrorClass.NEEDS_PERSON, "Partner Center received no partner token"),
    "800002": Rule(ErrorClass.BAD_REQUEST, "invalid request input"),
    "600002": Rule(
        ErrorClass.BAD_REQUEST, "organization registration id not accepted in this country"
    ),
    "600049": Rule(ErrorClass.BAD_REQUEST, "organization registration id required in this country"),
    "600051": Rule(ErrorClass.BAD_REQUEST, "a phone number is required"),
}

# Texts that classify a failure when no code does (CIPP's field experience).
TEXT_RULES: tuple[tuple[re.Pattern[str], Rule], ...] = (
    (re.compile(r"User was not found", re.I), Rule(ErrorClass.NEEDS_PERSON, "user not found")),
    (
        re.compile(r"Request not applicable to target tenant", re.I),
        Rule(ErrorClass.NEEDS_PERSON, "the tenant is not licensed for this"),
    ),
)

_AADSTS = re.compile(r"AADSTS(\d+)")


class CspGraphError(Exception):
    """A classified failure: what happened, where, and what to do about it.

    Raise one of the four subclasses (or a subclass of one of them): the class says what to do
    (``error_class``). ``message`` is the text as given; ``str(error)`` adds the code, status,
    tenant and request id that support asks for.
    """

    error_class: ClassVar[ErrorClass]

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        tenant: str | None = None,
        request_id: str | None = None,
        reason: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        if not hasattr(type(self), "error_class"):
            raise TypeError(
                "CspGraphError says what to do through its subclass: raise TransientError, "
                "PropagatingError, NeedsPersonError or BadRequestError"
            )
        self.message = message
        self.code = code
        self.status = status
        self.tenant = tenant
        self.request_id = request_id
        self.reason = reason or message
        self.retry_after = retry_after
        details = ", ".join(
            f"{k}={v}"
            for k, v in (("code", code), ("status", status), ("tenant", tenant),
                         ("request-id", request_id))
            if v is not None
        )  # fmt: skip
        super().__init__(f"{message} ({details})" if details else message)

    @property
    def retryable(self) -> bool:
        return self.error_class in (ErrorClass.TRANSIENT, ErrorClass.PROPAGATING)


class TransientError(CspGraphError):
    """Try again soon: throttling, an unavailable service, a race inside Entra, the network."""

    error_class = ErrorClass.TRANSIENT


class HostUnreachableError(TransientError):
    """No connection to the service's host could be made (refused, no route, no such name): the
    request never reached it. ``host`` is where it was going (``graph.microsoft.com``,
    ``127.0.0.1:8443``), ``service`` what serves there ("Microsoft Graph");
    :class:`~cspgraph.http.retry.HostWatch` keeps what such failures show about the host as a
    whole."""

    def __init__(self, message: str, *, host: str, service: str, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.host = host
        self.service = service

    @property
    def where(self) -> str:
        """The service and its host, for messages: "Microsoft Graph at 127.0.0.1:8443"."""
        return f"{self.service} at {self.host}"


class PropagatingError(CspGraphError):
    """Retry later, and with a newly acquired token: the old one keeps its old claims."""

    error_class = ErrorClass.PROPAGATING


class NeedsPersonError(CspGraphError):
    """Nothing changes until somebody acts (consent, a credential, a sign-in, a policy)."""

    error_class = ErrorClass.NEEDS_PERSON


class BadRequestError(CspGraphError):
    """The request itself is wrong; retrying it is pointless."""

    error_class = ErrorClass.BAD_REQUEST


class CspScopeError(BadRequestError):
    """A call outside directory and Intune, refused before it left the process."""


ERROR_TYPES: dict[ErrorClass, type[CspGraphError]] = {
    cls.error_class: cls for cls in (TransientError, PropagatingError, NeedsPersonError,
                                     BadRequestError)
}  # fmt: skip


def aadsts_code(text: str | None) -> int | None:
    match = _AADSTS.search(text or "")
    return int(match.group(1)) if match else None


def classify_token_error(
    error: str | None,
    description: str | None,
    codes: list[int] | None = None,
    *,
    status: int | None = None,
) -> Rule:
    """Classify an OAuth2 error answer from the token endpoint (or MSAL's dict of it)."""
    for code in [*(codes or []), aadsts_code(description)]:
        if code is not None and code in AADSTS_RULES:
            return AADSTS_RULES[code]
    if error in ("temporarily_unavailable", "server_error") or (status and status >= 500):
        return Rule(ErrorClass.TRANSIENT, "the identity platform is unavailable")
    if status == 429:
        return Rule(ErrorClass.TRANSIENT, "throttled by the identity platform")
    if error == "invalid_client":
        return Rule(ErrorClass.NEEDS_PERSON, "the app's credential was rejected")
    return _by_text(description) or Rule(ErrorClass.BAD_REQUEST, error or "token request failed")


def classify_graph_error(status: int, code: str | None, message: str | None) -> Rule:
    """Classify a Graph (or Partner Center) error answer."""
    if status == 429:
        return GRAPH_CODE_RULES["TooManyRequests"]
    if status >= 500:
        return Rule(ErrorClass.TRANSIENT, f"HTTP {status} from the service")
    by_text = _by_text(message)
    if by_text is not None:
        return by_text
    if code in GRAPH_CODE_RULES:
        return GRAPH_CODE_RULES[code]
    if status == 403:
        return GRAPH_CODE_RULES["Authorization_RequestDenied"]
    return Rule(ErrorClass.BAD_REQUEST, f"HTTP {status}")


def classify_partner_center_error(status: int, code: str | None, description: str) -> Rule:
    """Classify a Partner Center error answer (its own shape: code, description)."""
    if status == 429:
        return Rule(ErrorClass.TRANSIENT, "throttled by Partner Center")
    if status >= 500:
        return Rule(ErrorClass.TRANSIENT, f"HTTP {status} from Partner Center")
    if status == 409:
        return Rule(ErrorClass.BAD_REQUEST, "the domain is already used by another tenant")
    if code in PARTNER_CENTER_CODE_RULES:
        return PARTNER_CENTER_CODE_RULES[code]
    if status == 401:
        if "mfa" in description.lower():
            return Rule(
                ErrorClass.NEEDS_PERSON,
                "Partner Center requires multi-factor authentication for app+user tokens",
            )
        return Rule(
            ErrorClass.NEEDS_PERSON,
            "Partner Center refused the token (is this a partner tenant's token?)",
        )
    if status == 403:
        return Rule(ErrorClass.NEEDS_PERSON, "Partner Center denied access")
    if status == 404:
        return Rule(ErrorClass.BAD_REQUEST, "not found")
    return Rule(ErrorClass.BAD_REQUEST, f"HTTP {status}")


def _by_text(text: str | None) -> Rule | None:
    for pattern, rule in TEXT_RULES:
        if text and pattern.search(text):
            return rule
    return None


def error_from_rule(
    rule: Rule,
    message: str,
    *,
    code: str | None = None,
    status: int | None = None,
    tenant: str | None = None,
    request_id: str | None = None,
    retry_after: str | None = None,
) -> CspGraphError:
    return ERROR_TYPES[rule.error_class](
        message,
        code=code,
        status=status,
        tenant=tenant,
        request_id=request_id,
        reason=rule.reason,
        retry_after=retry_after,
    )


# -- GDAP: the same failures, read with what is known about the customer's access -----------------
#
# A token refused with "the app is not in this tenant" means "wait" for a customer with DAP whose
# relationship is young (the pre-consent arrives with it: the rules above), and "somebody must
# act" for a customer without DAP: under GDAP the app is only ever there through its own consent
# in that customer, which nothing brings but a person (or `cspgraph gdap consent`). Graph's 403
# means "wait" on a young DAP relationship, and "a role is missing" for a delegated caller under
# GDAP, whose roles are exactly what its groups' access assignments hold. So these failures are
# classified again with the facts of the customer's access (:class:`AccessFacts`) by
# :func:`classify_access_failure`; the reasons below name the next step.

# The answers of a token request for an app that is not (yet) in the tenant: Entra's codes for an
# app without a service principal or consent there (wire-facts §1.6, §8; the emulator's choice for
# app-only requests in a GDAP customer is 700016, for a partner agent 90099, for the customer's
# own user 65001).
APP_NOT_IN_TENANT_CODES = frozenset({65001, 700016, 7000229, 90099, 650051})
# A partner user who holds no role in the customer (no relationship in effect, or no active
# access assignment of a group the user is in): the guest-not-found answer (wire-facts §8).
NO_ROLE_IN_TENANT_CODES = frozenset({50020, 50177})

# Relationship statuses (Graph docs: delegatedAdminRelationship).
GDAP_IN_EFFECT = frozenset({"active", "expiring"})
GDAP_ON_ITS_WAY = frozenset({"approved", "activating"})
GDAP_WAITING = frozenset({"created", "approvalPending"})
GDAP_ENDED = frozenset({"expired", "terminated", "terminating", "terminationRequested"})

GDAP_RULES: dict[str, Rule] = {
    "consent_missing": Rule(
        ErrorClass.NEEDS_PERSON,
        "the app is not consented in this customer (no DAP; GDAP needs the app's own consent): "
        "run `cspgraph gdap consent --customer {customer}`",
    ),
    "consent_gone": Rule(
        ErrorClass.NEEDS_PERSON,
        "the app's consent in this customer is gone (it worked before): run `cspgraph gdap "
        "consent --customer {customer}`",
    ),
    "relationship_activating": Rule(
        ErrorClass.PROPAGATING,
        "the GDAP relationship {name} was approved and is {status}: not there yet, try again "
        "in a few minutes",
    ),
    "relationship_ended": Rule(
        ErrorClass.NEEDS_PERSON,
        "the GDAP relationship {name} is {status} (ended {end}): ask the customer to approve a "
        "new one (`cspgraph gdap invite --customer {customer}`)",
    ),
    "approval_pending": Rule(
        ErrorClass.NEEDS_PERSON,
        "the GDAP relationship {name} awaits the customer's approval: send the approval link "
        "again (`cspgraph gdap status --customer {customer}`)",
    ),
    "no_relationship": Rule(
        ErrorClass.NEEDS_PERSON,
        "no DAP and no GDAP relationship with this customer: invite it with `cspgraph gdap "
        "invite --customer {customer}`",
    ),
    "assignment_pending": Rule(
        ErrorClass.PROPAGATING,
        "the access assignments of the GDAP relationship {name} are not active yet: not there "
        "yet, try again in a few minutes",
    ),
    "no_role_for_account": Rule(
        ErrorClass.NEEDS_PERSON,
        "this account holds no role in the customer: none of its groups has an active access "
        "assignment in the GDAP relationship {name} ({holders}); add it to one of those groups "
        "(`cspgraph gdap assign`)",
    ),
    "role_missing": Rule(
        ErrorClass.NEEDS_PERSON,
        "{operation} needs the role {role} in this customer, which this account does not hold "
        "through GDAP ({holders}): add it to a group holding {role}, or assign {role} to one "
        "of its groups (`cspgraph gdap assign`)",
    ),
    "permission_missing": Rule(
        ErrorClass.NEEDS_PERSON,
        "{operation} needs the {kind} permission {permission}, which {holder} does not carry "
        "({granted}): {next_step}; retrying will not help until then",
    ),
    "not_in_admin_agents": Rule(
        ErrorClass.NEEDS_PERSON,
        "this account is not in AdminAgents: Graph answers its list of GDAP relationships with "
        "an empty list (not 0 relationships); add {account} to the partner tenant's AdminAgents "
        "group",
    ),
}


@dataclass(frozen=True)
class RelationshipFact:
    """One GDAP relationship of the partner with a customer, as :func:`classify_access_failure`
    needs it: its name, status, end (ISO 8601, or None), and which partner groups hold which
    roles through its active access assignments (role name → group names; empty when unknown)."""

    name: str
    status: str
    end: str | None = None
    holders: tuple[tuple[str, tuple[str, ...]], ...] = ()
    assignments_pending: bool = False


@dataclass(frozen=True)
class AccessFacts:
    """What is known about how cspgraph reaches a customer; None where unknown.

    ``customer``: how a command names it (domain or tenant id). ``dap``: Partner Center's
    ``allowDelegatedAccess``. ``relationships``: the partner's GDAP relationships with it (None:
    not read). ``reached_before``: a token of this kind worked here in an earlier run."""

    customer: str
    dap: bool | None = None
    relationships: tuple[RelationshipFact, ...] | None = None
    reached_before: bool = False
    delegated: bool = False  # the failure is a partner user's (a service account), not the app's
    # Partner Center lists it as the partner's customer (None: not asked). A reseller customer
    # without DAP is reached through the app's consent or not at all; a tenant that is not the
    # partner's customer may be one whose relationship just ended.
    reseller: bool | None = None


def _gdap_error(error: CspGraphError, key: str, **fields: str) -> CspGraphError:
    rule = GDAP_RULES[key]
    reason = rule.reason.format(**fields)
    return ERROR_TYPES[rule.error_class](
        error.message,
        code=error.code,
        status=error.status,
        tenant=error.tenant,
        request_id=error.request_id,
        reason=reason,
        retry_after=error.retry_after,
    )


def _holders_text(rel: RelationshipFact) -> str:
    if not rel.holders:
        return "which groups hold which roles is unknown"
    return "; ".join(f"{role}: {', '.join(groups) or 'no group'}" for role, groups in rel.holders)


def _nearest_in_effect(rels: tuple[RelationshipFact, ...]) -> RelationshipFact | None:
    live = [r for r in rels if r.status in GDAP_IN_EFFECT]
    return max(live, key=lambda r: r.end or "", default=None)


def _latest(
    rels: tuple[RelationshipFact, ...], statuses: frozenset[str]
) -> RelationshipFact | None:
    found = [r for r in rels if r.status in statuses]
    return max(found, key=lambda r: r.end or "", default=None)


def classify_access_failure(error: CspGraphError, facts: AccessFacts) -> CspGraphError:
    """``error`` classified again with what is known of the customer's access (see above): the
    same message, code and request id, with the GDAP class and the next step as its reason.
    Failures these facts say nothing new about come back unchanged."""
    code = aadsts_code(error.message) or aadsts_code(error.code)
    if code in APP_NOT_IN_TENANT_CODES or code in NO_ROLE_IN_TENANT_CODES:
        return _token_refused(error, facts, code in NO_ROLE_IN_TENANT_CODES)
    return error


def _token_refused(error: CspGraphError, facts: AccessFacts, no_role: bool) -> CspGraphError:
    if facts.dap:
        return error  # DAP: the pre-consent arrives with a young relationship (the rules above)
    rels = facts.relationships
    customer = facts.customer
    if rels is None:
        if facts.dap is False and facts.reseller and not no_role:
            key = "consent_gone" if facts.reached_before else "consent_missing"
            return _gdap_error(error, key, customer=customer)
        return error  # nothing known beyond the code
    live = _nearest_in_effect(rels)
    if live is not None:
        if no_role:
            if live.assignments_pending:
                return _gdap_error(error, "assignment_pending", name=live.name)
            return _gdap_error(
                error, "no_role_for_account", name=live.name, holders=_holders_text(live)
            )
        key = "consent_gone" if facts.reached_before else "consent_missing"
        return _gdap_error(error, key, customer=customer)
    coming = _latest(rels, GDAP_ON_ITS_WAY)
    if coming is not None:
        return _gdap_error(error, "relationship_activating", name=coming.name, status=coming.status)
    waiting = _latest(rels, GDAP_WAITING)
    if waiting is not None:
        return _gdap_error(error, "approval_pending", name=waiting.name, customer=customer)
    ended = _latest(rels, GDAP_ENDED)
    if ended is not None:
        return _gdap_error(
            error,
            "relationship_ended",
            name=ended.name,
            status=ended.status,
            end=(ended.end or "on an unknown date")[:10],
            customer=customer,
        )
    if facts.dap is False:
        return _gdap_error(error, "no_relationship", customer=customer)
    return error


def role_missing_error(
    error: CspGraphError, operation: str, role: str, rel: RelationshipFact | None
) -> CspGraphError:
    """Graph's 403 for a delegated caller in a GDAP customer: the role ``operation`` needs, and
    which groups hold which roles there."""
    holders = _holders_text(rel) if rel is not None else "no GDAP relationship in effect"
    return _gdap_error(error, "role_missing", operation=operation, role=role, holders=holders)


def permission_missing_error(
    error: CspGraphError,
    *,
    operation: str,
    permission: str,
    kind: str,
    holder: str,
    granted: list[str] | None,
    next_step: str,
) -> CspGraphError:
    """Graph's 403 for a token that carries permissions, but not the one ``operation`` needs:
    no wait brings it (the young relationship's 403 is a token with none at all), so somebody
    must grant ``permission`` (``kind``: "application" or "delegated")."""
    carried = f"it carries {', '.join(sorted(granted))}" if granted else "it carries none"
    return _gdap_error(
        error, "permission_missing", operation=operation, permission=permission, kind=kind,
        holder=holder, granted=carried, next_step=next_step,
    )  # fmt: skip


def not_in_admin_agents_error(account: str, *, tenant: str | None = None) -> NeedsPersonError:
    """The empty 200 Graph answers a caller outside AdminAgents with, said as what it is."""
    reason = GDAP_RULES["not_in_admin_agents"].reason.format(account=account)
    return NeedsPersonError(
        f"listing GDAP relationships: {reason}",
        code="NotInAdminAgents",
        tenant=tenant,
        reason=reason,
    )
