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
from typing import ClassVar


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
