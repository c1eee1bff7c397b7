"""The token endpoint (v1 and v2) and the device authorization endpoint, one handler per grant.

Order of checks, as Entra does them: the grant type, the tenant in the path, the client
(``client_id``, then its credential), then the grant itself, and last the CSP rules at the tenant
the token is for (csp_rules). Rules are evaluated at issue time, so a refresh token redeemed at
another customer's endpoint is judged by that customer's relationships.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from csp_emulator.context import EmulatorContext
from csp_emulator.http import json_response
from csp_emulator.identity import csp_rules, errors
from csp_emulator.identity.clients import (
    AuthenticatedClient,
    authenticate,
    find_client,
    requested_client_id,
)
from csp_emulator.identity.errors import NO_STORE, AADError
from csp_emulator.identity.request import (
    read_form,
    resolve_segment,
    scope_request,
    token_endpoint_urls,
)
from csp_emulator.identity.scopes import ScopeRequest
from csp_emulator.identity.state import SignIn
from csp_emulator.identity.token_issuer import Issue
from csp_emulator.world.model import Tenant, World, iso

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass(frozen=True)
class TokenRequest:
    ctx: EmulatorContext
    segment: str
    target: Tenant | None  # None at common/organizations
    auth: AuthenticatedClient
    form: Mapping[str, str]
    v1: bool
    now: float

    @property
    def world(self) -> World:
        return self.ctx.world

    def issue(self, tenant: Tenant, request: ScopeRequest, grant: str) -> Issue:
        return Issue(self.ctx, tenant, self.auth, request, self.v1, grant, self.now)

    def wants_client_info(self) -> bool:
        return self.form.get("client_info") == "1"


def pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    if method.upper() == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    else:
        expected = verifier
    return hmac.compare_digest(expected, challenge)


def load_user(world: World, sign_in: SignIn) -> tuple[Tenant, dict[str, Any]]:
    """The signed-in user as they are now; a deleted user's grants are dead (AADSTS50173)."""
    home = world.tenants.get(sign_in.home_tenant_id)
    user = home.get("users", sign_in.user_id) if home is not None else None
    if home is None or user is None:
        raise errors.grant_revoked()
    if user.get("accountEnabled") is False:
        raise errors.user_disabled()
    return home, user


# -- grants -------------------------------------------------------------------------------------


def client_credentials(req: TokenRequest) -> dict[str, Any]:
    target = req.target
    if target is None:
        raise errors.no_tenant_in_request()
    request, scope = scope_request(req.form, v1=req.v1, tenant_label=target.display_name)
    if not req.v1 and (request.permissions or not request.default or request.oidc):
        raise errors.scope_needs_default(scope)
    grant = csp_rules.app_only_grant(req.world, req.auth.client, target, request, req.now)
    return req.issue(target, request, "client_credentials").app_response(grant)


def _user_tokens(
    req: TokenRequest,
    *,
    tenant: Tenant,
    sign_in: SignIn,
    grant_type: str,
    scope_default: str | None,
    resource_default: str | None,
    nonce: str | None = None,
    max_age: str | None = None,
    offline_access: bool = False,
) -> dict[str, Any]:
    home, user = load_user(req.world, sign_in)
    request, scope = scope_request(
        req.form,
        v1=req.v1,
        tenant_label=tenant.display_name,
        scope_default=scope_default,
        resource_default=resource_default,
    )
    grant = csp_rules.user_grant(req.world, req.auth.client, home, user, tenant, request, req.now)
    return req.issue(tenant, request, grant_type).user_response(
        home=home,
        user=user,
        sign_in=sign_in,
        grant=grant,
        scope=scope,
        nonce=nonce,
        # v1 answers a redeemed code with an id_token whether or not `scope=openid` was sent: v1
        # ignores `scope` at authorize, and Microsoft's v1 code-flow answer carries one (v1
        # protocols, "OAuth 2.0 code grant flow", successful response). Its refresh answer
        # lists none, so refreshes keep the openid rule.
        want_id_token="openid" in request.oidc or (req.v1 and grant_type == "authorization_code"),
        # v1 always returns a refresh token; v2 when offline_access was asked for at sign-in or
        # now, and on every refresh.
        want_refresh_token=req.v1
        or offline_access
        or "offline_access" in request.oidc
        or grant_type == "refresh_token",
        want_client_info=req.wants_client_info(),
        max_age=max_age,
    )


def authorization_code(req: TokenRequest) -> dict[str, Any]:
    value = req.form.get("code")
    if not value:
        raise errors.missing_parameter("code")
    code = req.ctx.state.identity.codes.get(value)
    if code is None:
        raise errors.bad_code()
    if code.client_id != req.auth.client.app_id:
        raise errors.grant_for_other_client()
    if code.used:
        # A replayed code may mean it was stolen: what it issued is revoked (RFC 6749 §4.1.2),
        # so the refresh tokens descending from the first redemption stop working too.
        req.ctx.state.identity.revoke_family(value)
        raise errors.code_redeemed()
    if req.now > code.expires_at:
        raise errors.grant_expired()
    if req.target is not None and req.target.id != code.tenant_id:
        raise errors.code_for_other_tenant()
    redirect_uri = req.form.get("redirect_uri")
    if code.redirect_uri is not None:
        if not redirect_uri:
            raise errors.missing_parameter("redirect_uri")
        if redirect_uri != code.redirect_uri:
            raise errors.reply_address_mismatch(redirect_uri, code.redirect_uri)
    if code.code_challenge:
        verifier = req.form.get("code_verifier")
        if not verifier:
            raise errors.pkce_verifier_missing()
        if not pkce_matches(verifier, code.code_challenge, code.code_challenge_method):
            raise errors.pkce_mismatch()
    # One-time: spent now, whatever the rules below decide.
    code.used = True
    tenant = req.world.tenants.get(code.tenant_id)
    if tenant is None:
        raise errors.tenant_not_found(code.tenant_id, at_token_endpoint=True)
    answer = _user_tokens(
        req,
        tenant=tenant,
        sign_in=code.sign_in,
        grant_type="authorization_code",
        scope_default=code.scope,
        resource_default=code.resource,
        nonce=code.nonce,
        max_age=code.max_age,
        offline_access="offline_access" in code.scope.split(),
    )
    req.ctx.state.identity.adopt(answer, family=value)
    return answer


def refresh_token(req: TokenRequest) -> dict[str, Any]:
    value = req.form.get("refresh_token")
    if not value:
        raise errors.missing_parameter("refresh_token")
    grant = req.ctx.state.identity.refresh_tokens.get(value)
    if grant is None:
        raise errors.bad_refresh_token()
    if grant.client_id != req.auth.client.app_id:
        raise errors.grant_for_other_client()
    if req.now > grant.expires_at:
        lifetime_days = req.world.settings.refresh_token_lifetime / 86400
        raise errors.refresh_token_expired(iso(grant.issued_at), lifetime_days)
    home, _ = load_user(req.world, grant.sign_in)
    # Refresh tokens have no tenant: redeemed at a customer's endpoint, they yield that
    # customer's token (the CSP "one sign-in, many customers" pattern).
    tenant = req.target or home
    answer = _user_tokens(
        req,
        tenant=tenant,
        sign_in=grant.sign_in,
        grant_type="refresh_token",
        scope_default=grant.scope,
        resource_default=grant.resource,
    )
    req.ctx.state.identity.adopt(answer, family=grant.family)
    return answer


def device_code(req: TokenRequest) -> dict[str, Any]:
    value = req.form.get("device_code") or req.form.get("code")
    if not value:
        raise errors.missing_parameter("device_code")
    device = req.ctx.state.identity.devices.get(value)
    if device is None or device.client_id != req.auth.client.app_id:
        raise errors.device_code_unknown()
    if device.status == "redeemed":
        raise errors.device_code_redeemed()
    if req.now > device.expires_at:
        raise errors.device_code_expired()
    if device.status == "declined":
        raise errors.device_code_declined()
    if device.status == "pending" or device.sign_in is None:
        last_poll, device.last_poll = device.last_poll, req.now
        if last_poll is not None and req.now - last_poll < device.interval:
            raise errors.slow_down(device.interval)
        raise errors.authorization_pending()
    home, _ = load_user(req.world, device.sign_in)
    tenant = req.world.tenants.get(device.tenant_id) if device.tenant_id else home
    if tenant is None or (req.target is not None and req.target.id != tenant.id):
        raise errors.device_code_unknown()
    device.status = "redeemed"
    return _user_tokens(
        req,
        tenant=tenant,
        sign_in=device.sign_in,
        grant_type="device_code",
        scope_default=device.scope,
        resource_default=device.resource,
    )


GRANTS: dict[str, Callable[[TokenRequest], dict[str, Any]]] = {
    "client_credentials": client_credentials,
    "authorization_code": authorization_code,
    "refresh_token": refresh_token,
    DEVICE_CODE_GRANT: device_code,
    # ADAL and older clients name the device grant "device_code".
    "device_code": device_code,
}


# -- endpoints ----------------------------------------------------------------------------------


def _client_label(target: Tenant | None, segment: str) -> str:
    return target.display_name if target is not None else segment


def handle_token_request(
    ctx: EmulatorContext,
    segment: str,
    form: Mapping[str, str],
    headers: Mapping[str, str],
    *,
    v1: bool,
    now: float,
) -> dict[str, Any]:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise errors.missing_parameter("grant_type")
    handler = GRANTS.get(grant_type)
    if handler is None:
        raise errors.unsupported_grant_type(grant_type)
    world = ctx.world
    target = resolve_segment(world, segment, at_token_endpoint=True)
    client_id = requested_client_id(form, headers)
    if not client_id:
        raise errors.missing_parameter("client_id")
    authority = ctx.endpoints.authority_host
    client = find_client(world, client_id, authority)
    if client is None:
        raise errors.app_not_found(client_id, _client_label(target, segment))
    auth = authenticate(
        client,
        form,
        headers,
        audiences=token_endpoint_urls(authority, target, segment),
        now=now,
        allow_public=grant_type != "client_credentials",
    )
    return handler(TokenRequest(ctx, segment, target, auth, form, v1, now))


def _error(ctx: EmulatorContext, request: Request, err: AADError, now: float) -> Response:
    return errors.error_response(
        err,
        now=now,
        correlation_id=request.headers.get("client-request-id"),
        authority_host=ctx.endpoints.authority_host,
        headers=NO_STORE,
    )


async def token_endpoint(ctx: EmulatorContext, request: Request, *, v1: bool) -> Response:
    form = await read_form(request)
    now = ctx.world.clock.now()
    try:
        body = handle_token_request(
            ctx, request.path_params["t"], form, request.headers, v1=v1, now=now
        )
    except AADError as err:
        return _error(ctx, request, err, now)
    return json_response(body, headers=NO_STORE)


async def devicecode_endpoint(ctx: EmulatorContext, request: Request, *, v1: bool) -> Response:
    form = await read_form(request)
    world = ctx.world
    now = world.clock.now()
    segment = request.path_params["t"]
    try:
        target = resolve_segment(world, segment, at_token_endpoint=True)
        client_id = form.get("client_id")
        if not client_id:
            raise errors.missing_parameter("client_id")
        client = find_client(world, client_id, ctx.endpoints.authority_host)
        if client is None:
            raise errors.app_not_found(client_id, _client_label(target, segment))
        label = _client_label(target, segment)
        scope_request(form, v1=v1, tenant_label=label)  # refuse a bad scope now, not at polling
    except AADError as err:
        return _error(ctx, request, err, now)
    device = ctx.state.identity.new_device(
        now=now,
        client_id=client.app_id,
        tenant_id=target.id if target is not None else None,
        v1=v1,
        scope=form.get("scope", ""),
        resource=form.get("resource"),
    )
    uri = f"{ctx.endpoints.authority_host}/devicelogin"
    message = (
        f"To sign in, use a web browser to open the page {uri} and enter the code "
        f"{device.user_code} to authenticate."
    )
    body: dict[str, Any] = {"user_code": device.user_code, "device_code": device.device_code}
    if v1:
        body.update(
            {
                "verification_url": uri,
                "expires_in": str(int(device.expires_at - now)),
                "interval": str(device.interval),
            }
        )
    else:
        body.update(
            {
                "verification_uri": uri,
                "expires_in": int(device.expires_at - now),
                "interval": device.interval,
            }
        )
    body["message"] = message
    return json_response(body, headers=NO_STORE)
