"""Microsoft Graph's error answers: one exception type and the constructors the routes raise.

Every error leaves the emulator in Graph's shape (wire-facts §2.2)::

    {"error": {"code": "...", "message": "...",
               "innerError": {"date": "2021-05-23T06:39:06", "request-id": "...",
                              "client-request-id": "..."}}}

The codes and messages below reproduce what Graph sends where that is documented or captured;
the few that are guesses say so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from csp_emulator.graph.odata_schema import ODataError
from csp_emulator.identity.tokens import EMPTY

# Sent with every 401, exactly as Graph does (wire-facts §2.2).
WWW_AUTHENTICATE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize",'
    ' client_id="00000003-0000-0000-c000-000000000000"'
)

INSUFFICIENT_PRIVILEGES = "Insufficient privileges to complete the operation."


class GraphError(Exception):
    """An answer other than success; the pipeline renders it with the request's ids."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        inner: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        # Extra innerError members (the 429 body carries its own code, status and message).
        self.inner = inner or {}

    @classmethod
    def from_odata(cls, exc: ODataError) -> GraphError:
        return cls(exc.status, exc.code, exc.message)

    def body(self, *, request_id: str, client_request_id: str, now: float) -> dict[str, Any]:
        inner: dict[str, Any] = {
            "date": inner_error_date(now),
            "request-id": request_id,
            "client-request-id": client_request_id,
        }
        inner.update(self.inner)
        return {"error": {"code": self.code, "message": self.message, "innerError": inner}}


def inner_error_date(now: float) -> str:
    """Graph's innerError date: UTC, no zone designator, no fraction (2021-05-23T06:39:06)."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S")


# -- 401 ------------------------------------------------------------------------------------------

# The msgraph-sdk sends no Authorization header at all to a host outside its allowed_hosts
# (client-traps §10): say so where a developer looks, but outside Graph's own fields, whose
# message stays Graph's exact sentence (a client may compare it): in this response header, which
# Graph never sends, and in the emulator's log.
HINT_HEADER = "x-csp-emulator-hint"
EMPTY_TOKEN_HINT = (
    "the request carried no bearer token. msgraph-sdk (Kiota) silently sends none when the"
    " request's host is not in the authentication provider's allowed_hosts: pass"
    " allowed_hosts=[<emulator graph host>] and explicit scopes to"
    " AzureIdentityAuthenticationProvider."
)


def no_token() -> GraphError:
    """Graph's 401 for a request without a token, the hint in :data:`HINT_HEADER`."""
    error = unauthenticated(EMPTY)
    error.headers[HINT_HEADER] = EMPTY_TOKEN_HINT
    return error


def unauthenticated(message: str) -> GraphError:
    return GraphError(
        401,
        "InvalidAuthenticationToken",
        message,
        headers={"WWW-Authenticate": WWW_AUTHENTICATE},
    )


# -- 403 ------------------------------------------------------------------------------------------


def access_denied() -> GraphError:
    return GraphError(403, "Authorization_RequestDenied", INSUFFICIENT_PRIVILEGES)


# -- 400 / 404 / 405 ------------------------------------------------------------------------------


def bad_request(message: str, code: str = "Request_BadRequest") -> GraphError:
    return GraphError(400, code, message)


def segment_not_found(segment: str) -> GraphError:
    """Graph's answer to a path it has no resource for (captured: "Resource not found for the
    segment 'identityRiskEvents'.")."""
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def method_not_allowed() -> GraphError:
    return GraphError(
        405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
    )


def not_found(object_id: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


def invalid_json() -> GraphError:
    return GraphError(
        400,
        "BadRequest",
        "Unable to read JSON request payload. Please ensure Content-Type header is set and "
        "payload is of valid JSON format.",
    )


def required_property(name: str, resource_label: str) -> GraphError:
    # Graph's wording for a missing mandatory property on create (unverified in full).
    return bad_request(f"A value is required for property '{name}' of resource '{resource_label}'.")
