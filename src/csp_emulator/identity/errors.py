"""The identity platform's errors: one exception, its wire body, and every AADSTS text we send.

All texts live here so the refusal table can be read in one place. The prefixes wire-facts §1.6
asks to reproduce exactly (90002, 700016, 65001, 7000215) are verbatim; the continuation after a
prefix follows what Entra prints today. Codes marked (unverified) in wire-facts stay so here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

from csp_emulator.http import json_response

# Token and device-code responses must never be cached by a proxy or a client (wire-facts §1.5).
NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


class AADError(Exception):
    """A refusal in Entra's words: AADSTS ``code``, OAuth ``error``, human ``message``."""

    def __init__(
        self,
        code: int,
        error: str,
        message: str,
        *,
        status: int | None = None,
        suberror: str | None = None,
    ) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.code = code
        self.error = error
        self.message = message
        # Every token error is a 400 except a failed client authentication (wire-facts §1.6).
        self.status = status if status is not None else (401 if error == "invalid_client" else 400)
        self.suberror = suberror

    @property
    def text(self) -> str:
        return f"AADSTS{self.code}: {self.message}"


def aad_timestamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def error_body(
    err: AADError, *, now: float, correlation_id: str | None, authority_host: str
) -> dict[str, Any]:
    trace_id = str(uuid.uuid4())
    correlation = correlation_id or str(uuid.uuid4())
    stamp = aad_timestamp(now)
    body: dict[str, Any] = {
        "error": err.error,
        "error_description": (
            f"{err.text}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation}"
            f"\r\nTimestamp: {stamp}"
        ),
        "error_codes": [err.code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation,
        "error_uri": f"{authority_host}/error?code={err.code}",
    }
    if err.suberror:
        body["suberror"] = err.suberror
    return body


def error_response(
    err: AADError,
    *,
    now: float,
    correlation_id: str | None,
    authority_host: str,
    headers: dict[str, str] | None = None,
) -> Response:
    body = error_body(err, now=now, correlation_id=correlation_id, authority_host=authority_host)
    return json_response(
        body, err.status, headers={**(headers or {}), "x-ms-request-id": body["trace_id"]}
    )


# -- tenants -----------------------------------------------------------------------------------


def tenant_not_found(segment: str, *, at_token_endpoint: bool) -> AADError:
    # Discovery says invalid_tenant, the token endpoint invalid_request (azure-cli#22145).
    return AADError(
        90002,
        "invalid_request" if at_token_endpoint else "invalid_tenant",
        f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may "
        "happen if there are no active subscriptions for the tenant.",
    )


def no_tenant_in_request() -> AADError:
    return AADError(
        50059,
        "invalid_request",
        "No tenant-identifying information found in either the request or implied by any "
        "provided credentials.",
    )


def unknown_instance() -> AADError:
    return AADError(50049, "invalid_instance", "Unknown or invalid instance.", status=400)


# -- requests ----------------------------------------------------------------------------------


def missing_parameter(name: str) -> AADError:
    return AADError(
        900144,
        "invalid_request",
        f"The request body must contain the following parameter: '{name}'.",
    )


def unsupported_grant_type(grant_type: str) -> AADError:
    return AADError(
        70003,
        "unsupported_grant_type",
        f"The app requested an unsupported grant type '{grant_type}'.",
    )


def invalid_scope(scope: str) -> AADError:
    return AADError(
        70011,
        "invalid_scope",
        f"The provided value for the input parameter 'scope' isn't valid. The scope {scope} is "
        "not valid.",
    )


def scope_needs_default(scope: str) -> AADError:
    return AADError(
        1002012,
        "invalid_scope",
        f"The provided value for scope {scope} is not valid. Client credential flows must have a "
        "scope value with /.default suffixed to the resource identifier (application ID URI).",
    )


def several_resources(scopes: str) -> AADError:
    return AADError(
        28000,
        "invalid_scope",
        "Provided value for the input parameter scope is not valid because it contains more "
        f"than one resource. Scope {scopes} is not valid.",
    )


def resource_not_found(resource: str, tenant_label: str) -> AADError:
    return AADError(
        500011,
        "invalid_resource",
        f"The resource principal named {resource} was not found in the tenant named "
        f"{tenant_label}. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You might have "
        "sent your authentication request to the wrong tenant.",
    )


# -- clients -----------------------------------------------------------------------------------


def app_not_found(app_id: str, tenant_label: str) -> AADError:
    return AADError(
        700016,
        "unauthorized_client",
        f"Application with identifier '{app_id}' was not found in the directory "
        f"'{tenant_label}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may have "
        "sent your authentication request to the wrong tenant.",
    )


def missing_service_principal(app_id: str, tenant_id: str) -> AADError:
    return AADError(
        7000229,
        "invalid_client",
        f"The client application {app_id} is missing service principal in the tenant {tenant_id}.",
        status=400,
    )


def bad_client_secret(app_id: str) -> AADError:
    return AADError(
        7000215,
        "invalid_client",
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        f"client secret value, not the client secret ID, for a secret added to app '{app_id}'.",
    )


def expired_client_secret(app_id: str) -> AADError:
    return AADError(
        7000222,
        "invalid_client",
        f"The provided client secret keys for app '{app_id}' are expired. Visit the Azure portal "
        "to create new keys for your app.",
    )


def no_client_credential() -> AADError:
    return AADError(
        7000218,
        "invalid_client",
        "The request body must contain the following parameter: 'client_assertion' or "
        "'client_secret'.",
    )


def public_client_with_credential() -> AADError:
    return AADError(
        700025,
        "invalid_client",
        "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
    )


def malformed_assertion(reason: str) -> AADError:
    return AADError(50027, "invalid_client", f"JWT token is invalid or malformed. {reason}")


def assertion_not_valid(reason: str) -> AADError:
    return AADError(
        700024, "invalid_client", f"Client assertion is not within its valid time range. {reason}"
    )


def assertion_signature(reason: str) -> AADError:
    return AADError(700027, "invalid_client", reason)


def assertion_audience(audience: str) -> AADError:
    return AADError(
        700023,
        "invalid_client",
        f"Client assertion audience claim does not match Realm issuer. Review the documentation "
        f"at https://aka.ms/certCredentials . Provided audience: '{audience}'.",
    )


def assertion_client_mismatch() -> AADError:
    return AADError(
        700021,
        "invalid_client",
        "Client assertion application identifier doesn't match 'client_id' parameter. Review "
        "the documentation at https://aka.ms/certCredentials .",
    )


# -- users and consent -------------------------------------------------------------------------


def user_not_found(tenant_label: str) -> AADError:
    return AADError(
        50034,
        "invalid_grant",
        f"The user account {{EUII Hidden}} does not exist in the {tenant_label} directory. To "
        "sign into this application, the account must be added to the directory.",
    )


def bad_password() -> AADError:
    return AADError(
        50126, "invalid_grant", "Error validating credentials due to invalid username or password."
    )


def user_disabled() -> AADError:
    return AADError(50057, "invalid_grant", "The user account is disabled.")


def user_not_in_tenant(upn: str, home_tenant_id: str, tenant_label: str, app: str) -> AADError:
    return AADError(
        50020,
        "invalid_grant",
        f"User account '{upn}' from identity provider 'https://sts.windows.net/{home_tenant_id}/' "
        f"does not exist in tenant '{tenant_label}' and cannot access the application {app} in "
        "that tenant. The account needs to be added as an external user in the tenant first. "
        "Sign out and sign in again with a different Microsoft Entra user account.",
    )


def consent_required(app_id: str, app_name: str) -> AADError:
    return AADError(
        65001,
        "invalid_grant",
        f"The user or administrator has not consented to use the application with ID '{app_id}' "
        f"named '{app_name}'. Send an interactive authorization request for this user and "
        "resource.",
        suberror="consent_required",
    )


def partner_app_not_authorized(app_id: str, app_name: str, tenant_label: str) -> AADError:
    return AADError(
        90099,
        "invalid_grant",
        f"The application '{app_id}' ({app_name}) has not been authorized in the tenant "
        f"'{tenant_label}'. Applications must be authorized to access the customer tenant before "
        "partner delegated administrators can use them. Provide pre-consent or execute the "
        "appropriate Partner Center API to authorize the application.",
    )


def login_required() -> AADError:
    return AADError(
        50058,
        "login_required",
        "A silent sign-in request was sent but no user is signed in.",
    )


# -- authorize -----------------------------------------------------------------------------------


def redirect_uri_mismatch(redirect_uri: str, app_id: str) -> AADError:
    return AADError(
        50011,
        "invalid_request",
        f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect "
        f"URIs configured for the application '{app_id}'. Make sure the redirect URI sent in the "
        "request matches one added to your application in the Azure portal. Navigate to "
        "https://aka.ms/redirectUriMismatchError to learn more about how to fix this.",
    )


def no_redirect_uri_registered() -> AADError:
    return AADError(
        500113, "invalid_request", "No reply address is registered for the application."
    )


def unsupported_response_type(response_type: str) -> AADError:
    return AADError(
        700054,
        "unsupported_response_type",
        f"response_type '{response_type}' is not enabled for the application.",
    )


def bad_code_challenge_method(method: str) -> AADError:
    return AADError(
        501491,  # (unverified) Entra's PKCE parameter family
        "invalid_request",
        f"Invalid code_challenge_method '{method}'. Supported values are 'S256' and 'plain'.",
    )


# -- grants ------------------------------------------------------------------------------------


def bad_code() -> AADError:
    return AADError(
        70000, "invalid_grant", "The provided value for the 'code' parameter is not valid."
    )


def code_redeemed() -> AADError:
    return AADError(
        54005,
        "invalid_grant",
        "OAuth2 Authorization code was already redeemed, please retry with a new valid code or "
        "use an existing refresh token.",
    )


def grant_expired() -> AADError:
    return AADError(
        70008,
        "invalid_grant",
        "The provided authorization code or refresh token has expired due to inactivity. Send a "
        "new interactive authorization request for this user and resource.",
    )


def code_for_other_tenant() -> AADError:
    return AADError(
        700005,
        "invalid_grant",
        "Provided Authorization Code is intended to use against other tenant, thus rejected.",
    )


def grant_for_other_client() -> AADError:
    return AADError(
        70000,
        "invalid_grant",
        "Provided grant is invalid or malformed. It was issued to a different client.",
    )


def reply_address_mismatch(given: str, expected: str) -> AADError:
    return AADError(
        500112,
        "invalid_grant",
        f"The reply address '{given}' does not match the reply address '{expected}' provided "
        "when requesting Authorization code.",
    )


def pkce_verifier_missing() -> AADError:
    return AADError(
        50148,
        "invalid_grant",
        "The code_verifier does not match the code_challenge supplied in the authorization "
        "request for PKCE.",
    )


def pkce_mismatch() -> AADError:
    return AADError(
        501481,
        "invalid_grant",
        "The Code_Verifier does not match the code_challenge supplied in the authorization "
        "request.",
    )


def bad_refresh_token() -> AADError:
    return AADError(9002313, "invalid_grant", "Invalid request. Request is malformed or invalid.")


def refresh_token_expired(issued: str, lifetime_days: float) -> AADError:
    return AADError(
        700082,
        "invalid_grant",
        f"The refresh token has expired due to inactivity. The token was issued on {issued} and "
        f"was inactive for {lifetime_days:.2f} days.",
    )


def grant_revoked() -> AADError:
    return AADError(
        50173,
        "invalid_grant",
        "The provided grant has expired due to it being revoked, a fresh auth token is needed. "
        "The user might have changed or reset their password.",
    )


# -- device code polling (wire-facts §1.5) ------------------------------------------------------


def authorization_pending() -> AADError:
    return AADError(
        70016,
        "authorization_pending",
        "The provided request has not yet been authorized by the user. The user must input "
        "their code.",
    )


def slow_down(interval: int) -> AADError:
    return AADError(
        70016,  # (unverified) Entra documents no separate code for slow_down
        "slow_down",
        f"The client is polling too often. Wait at least {interval} seconds between requests.",
    )


def device_code_expired() -> AADError:
    return AADError(
        70020,
        "expired_token",
        "The provided value for the input parameter 'device_code' is not valid. This device "
        "code has expired.",
    )


def device_code_declined() -> AADError:
    return AADError(
        70000,  # (unverified)
        "authorization_declined",
        "The user has declined the authorization request.",
    )


def device_code_unknown() -> AADError:
    return AADError(
        70000,  # (unverified)
        "bad_verification_code",
        "The provided value for the input parameter 'device_code' is not valid.",
    )


def device_code_redeemed() -> AADError:
    return AADError(
        54005,
        "invalid_grant",
        "The device code was already redeemed. Start a new device code flow.",
    )
