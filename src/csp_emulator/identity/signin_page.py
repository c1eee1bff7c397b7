"""The interactive half of the identity platform: /authorize with its sign-in form, the
device-login page, sign-out and the error help page.

The sign-in form is stateless: it posts every authorize parameter back as hidden fields, so a
browser (Playwright) fills in ``username`` and ``password`` and submits, and a script can POST the
authorize parameters plus ``username``/``password`` to the same URL in one request. There are no
sessions: every authorization is a fresh sign-in, and every interactive sign-in counts as
multi-factor (``amr`` ["pwd", "mfa"]) so Partner Center's MFA rule passes for app+user tokens.

Errors in the request itself (unknown client, unregistered redirect URI, unknown tenant) are shown
on an error page (400) and never redirected, because the redirect URI cannot be trusted yet.
Protocol errors after that (response_type, PKCE method, scope) go back to the app as
``error``/``error_description`` on the redirect. Sign-in failures (wrong password, a user the
tenant does not admit, an app without consent there) show the form again with the AADSTS message
(200), so another account can be tried.
"""

from __future__ import annotations

import hmac
import html
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from csp_emulator.context import EmulatorContext
from csp_emulator.identity import csp_rules, errors
from csp_emulator.identity.clients import Client, find_client, redirect_uri_allowed
from csp_emulator.identity.errors import AADError
from csp_emulator.identity.request import read_form, resolve_segment
from csp_emulator.identity.scopes import parse_resource, parse_scope
from csp_emulator.identity.state import CODE_LIFETIME, AuthCode, SignIn
from csp_emulator.world.model import Tenant, World

INTERACTIVE_AMR = ("pwd", "mfa")
CREDENTIAL_FIELDS = frozenset({"username", "password", "login", "passwd"})
RESPONSE_MODES = frozenset({"query", "fragment", "form_post"})


class PageError(Exception):
    """A request the emulator cannot send back to the app: shown as an error page."""

    def __init__(self, err: AADError) -> None:
        super().__init__(err.text)
        self.err = err


class RedirectError(Exception):
    """A protocol error the app hears about on its redirect URI (already found valid)."""

    def __init__(self, err: AADError, request: AuthorizeRequest) -> None:
        super().__init__(err.text)
        self.err = err
        self.request = request


# -- HTML ----------------------------------------------------------------------------------------


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:Segoe UI,Helvetica,Arial,sans-serif;max-width:26rem;"
        "margin:3rem auto;padding:0 1rem}label,input,button{display:block;width:100%;"
        "margin:.4rem 0}input,button{padding:.5rem;box-sizing:border-box}"
        "#error{color:#a80000;margin:1rem 0}</style></head>"
        f"<body><main>{body}<p><small>cspgraph emulator</small></p></main></body></html>"
    )
    return HTMLResponse(document, status_code=status, headers={"Cache-Control": "no-store"})


def _error_html(err: AADError | None) -> str:
    if err is None:
        return ""
    return f'<div id="error" role="alert" data-aadsts="{err.code}">{html.escape(err.text)}</div>'


def error_page(err: AADError, status: int = 400) -> HTMLResponse:
    return _page(
        "Sign in to your account",
        "<h1>Sorry, but we're having trouble signing you in.</h1>" + _error_html(err),
        status,
    )


def _hidden(params: Mapping[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params.items()
        if k not in CREDENTIAL_FIELDS
    )


def _credential_inputs(username: str) -> str:
    return (
        '<label for="username">Email, phone, or Skype</label>'
        '<input id="username" name="username" type="email" autocomplete="username" '
        f'value="{html.escape(username)}" required>'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" '
        'autocomplete="current-password" required>'
    )


def signin_form(
    *,
    action: str,
    params: Mapping[str, str],
    username: str,
    client: Client,
    error: AADError | None = None,
) -> HTMLResponse:
    body = (
        "<h1>Sign in</h1>"
        f'<p id="app">to continue to {html.escape(client.display_name or client.app_id)}</p>'
        + _error_html(error)
        + f'<form id="signin" method="post" action="{html.escape(action)}">'
        + _hidden(params)
        + _credential_inputs(username)
        + '<button id="submit" type="submit">Sign in</button></form>'
    )
    return _page("Sign in to your account", body)


def form_post_page(redirect_uri: str, fields: Mapping[str, str]) -> HTMLResponse:
    inputs = _hidden(fields)
    body = (
        f'<form id="response" method="post" action="{html.escape(redirect_uri)}">{inputs}'
        '<noscript><button type="submit">Continue</button></noscript></form>'
        "<script>document.getElementById('response').submit()</script>"
    )
    return _page("Working...", body)


# -- sign-in -------------------------------------------------------------------------------------


def sign_in_user(world: World, username: str, password: str) -> tuple[Tenant, dict[str, Any]]:
    """The user behind a username and password; raises 50034 / 50126 / 50057."""
    domain = username.rpartition("@")[2]
    home = world.tenant(domain) if domain else None
    user = home.user_by_upn(username) if home is not None else None
    if home is None or user is None:
        raise errors.user_not_found(home.display_name if home is not None else domain or "")
    stored = user.get("_password")
    if not isinstance(stored, str) or not hmac.compare_digest(stored.encode(), password.encode()):
        raise errors.bad_password()
    if user.get("accountEnabled") is False:
        raise errors.user_disabled()
    return home, user


def credentials(form: Mapping[str, str]) -> tuple[str | None, str]:
    username = form.get("username") or form.get("login")
    password = form.get("password") or form.get("passwd") or ""
    return (username.strip() if username else None), password


# -- authorize -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorizeRequest:
    client: Client
    redirect_uri: str
    redirect_given: bool
    response_mode: str
    state: str | None
    scope: str
    resource: str | None
    code_challenge: str | None
    code_challenge_method: str
    nonce: str | None
    login_hint: str
    prompt: str | None
    max_age: str | None


def validate_authorize(
    ctx: EmulatorContext, target: Tenant | None, segment: str, params: Mapping[str, str], v1: bool
) -> AuthorizeRequest:
    world = ctx.world
    label = target.display_name if target is not None else segment
    client_id = params.get("client_id")
    if not client_id:
        raise PageError(errors.missing_parameter("client_id"))
    client = find_client(world, client_id, ctx.endpoints.authority_host)
    if client is None:
        raise PageError(errors.app_not_found(client_id, label))
    if target is not None and not client.multi_tenant and client.home_tenant_id != target.id:
        # A single-tenant app exists only in its home directory.
        raise PageError(errors.app_not_found(client.app_id, label))
    registered = client.redirect_uris()
    redirect_uri = params.get("redirect_uri")
    if redirect_uri:
        if not redirect_uri_allowed(redirect_uri, registered):
            raise PageError(errors.redirect_uri_mismatch(redirect_uri, client.app_id))
    elif registered:
        redirect_uri = registered[0]
    else:
        raise PageError(errors.no_redirect_uri_registered())
    response_mode = params.get("response_mode") or "query"
    if response_mode not in RESPONSE_MODES:
        response_mode = "query"
    request = AuthorizeRequest(
        client=client,
        redirect_uri=redirect_uri,
        redirect_given=bool(params.get("redirect_uri")),
        response_mode=response_mode,
        state=params.get("state"),
        scope=params.get("scope", ""),
        resource=params.get("resource") or None,
        code_challenge=params.get("code_challenge") or None,
        code_challenge_method=params.get("code_challenge_method") or "plain",
        nonce=params.get("nonce"),
        login_hint=params.get("login_hint", ""),
        prompt=params.get("prompt"),
        max_age=params.get("max_age"),
    )
    # From here on the redirect URI is trusted, so errors go back to the app.
    response_type = params.get("response_type")
    if not response_type:
        raise RedirectError(errors.missing_parameter("response_type"), request)
    if response_type != "code":
        raise RedirectError(errors.unsupported_response_type(response_type), request)
    if request.code_challenge and request.code_challenge_method.upper() not in ("S256", "PLAIN"):
        raise RedirectError(
            errors.bad_code_challenge_method(request.code_challenge_method), request
        )
    try:
        if v1:
            if request.resource:
                parse_resource(request.resource, request.scope, tenant_label=label)
        elif not request.scope:
            raise errors.missing_parameter("scope")
        else:
            parse_scope(request.scope, tenant_label=label)
    except AADError as err:
        raise RedirectError(err, request) from None
    if request.prompt == "none":
        # No sessions here: a silent request always needs a sign-in.
        raise RedirectError(errors.login_required(), request)
    return request


def _append(uri: str, separator: str, fields: Mapping[str, str]) -> str:
    joiner = separator if separator not in uri else "&"
    return f"{uri}{joiner}{urlencode(fields)}"


def respond_to_app(request: AuthorizeRequest, fields: dict[str, str]) -> Response:
    if request.state is not None:
        fields["state"] = request.state
    if request.response_mode == "form_post":
        return form_post_page(request.redirect_uri, fields)
    if request.response_mode == "fragment":
        return RedirectResponse(_append(request.redirect_uri, "#", fields), status_code=302)
    return RedirectResponse(_append(request.redirect_uri, "?", fields), status_code=302)


def _redirect_error(ctx: EmulatorContext, request: AuthorizeRequest, err: AADError) -> Response:
    body = errors.error_body(
        err,
        now=ctx.world.clock.now(),
        correlation_id=None,
        authority_host=ctx.endpoints.authority_host,
    )
    fields = {"error": err.error, "error_description": body["error_description"]}
    if err.suberror:
        fields["error_subcode"] = err.suberror
    fields["error_uri"] = body["error_uri"]
    return respond_to_app(request, fields)


async def authorize(ctx: EmulatorContext, request: Request, *, v1: bool) -> Response:
    params: dict[str, str] = dict(request.query_params)
    if request.method == "POST":
        params.update(await read_form(request))
    world = ctx.world
    segment = request.path_params["t"]
    try:
        target = resolve_segment(world, segment, at_token_endpoint=False)
        auth_request = validate_authorize(ctx, target, segment, params, v1)
    except AADError as err:
        return error_page(err)
    except PageError as exc:
        return error_page(exc.err)
    except RedirectError as exc:
        return _redirect_error(ctx, exc.request, exc.err)
    username, password = credentials(params)
    action = request.url.path
    if request.method == "GET" or username is None:
        return signin_form(
            action=action,
            params=params,
            username=auth_request.login_hint,
            client=auth_request.client,
        )
    now = world.clock.now()
    try:
        home, user = sign_in_user(world, username, password)
        tenant = target or home
        csp_rules.check_sign_in(world, auth_request.client, home, user, tenant, now)
    except AADError as err:
        return signin_form(
            action=action, params=params, username=username, client=auth_request.client, error=err
        )
    code = AuthCode(
        client_id=auth_request.client.app_id,
        tenant_id=tenant.id,
        redirect_uri=auth_request.redirect_uri if auth_request.redirect_given else None,
        v1=v1,
        scope=auth_request.scope,
        resource=auth_request.resource,
        code_challenge=auth_request.code_challenge,
        code_challenge_method=auth_request.code_challenge_method,
        nonce=auth_request.nonce,
        sign_in=SignIn(home.id, str(user["id"]), now, INTERACTIVE_AMR),
        expires_at=now + CODE_LIFETIME,
        max_age=auth_request.max_age,
    )
    value = ctx.state.identity.new_code(code, now)
    return respond_to_app(auth_request, {"code": value, "session_state": str(uuid.uuid4())})


# -- device login --------------------------------------------------------------------------------


def device_form(
    *, user_code: str, username: str, error: AADError | None = None, note: str = ""
) -> HTMLResponse:
    body = (
        "<h1>Enter code</h1>"
        "<p>Enter the code displayed on your app or device, then sign in.</p>"
        + _error_html(error)
        + (f'<p id="note">{html.escape(note)}</p>' if note else "")
        + '<form id="devicelogin" method="post" action="/devicelogin">'
        '<label for="user_code">Code</label>'
        f'<input id="user_code" name="user_code" value="{html.escape(user_code)}" required>'
        + _credential_inputs(username)
        + '<button id="submit" type="submit" name="action" value="continue">Next</button>'
        '<button id="decline" type="submit" name="action" value="decline" formnovalidate>'
        "Cancel sign-in</button></form>"
    )
    return _page("Enter code to allow access", body)


async def devicelogin(ctx: EmulatorContext, request: Request) -> Response:
    if request.method == "GET":
        code = request.query_params.get("otc") or request.query_params.get("user_code") or ""
        return device_form(user_code=code, username="")
    form = await read_form(request)
    world = ctx.world
    now = world.clock.now()
    user_code = form.get("user_code") or form.get("otc") or ""
    username, password = credentials(form)
    device = ctx.state.identity.device_by_user_code(user_code)
    if device is None or device.status != "pending":
        return device_form(
            user_code=user_code, username=username or "", error=errors.device_code_unknown()
        )
    if now > device.expires_at:
        return device_form(
            user_code=user_code, username=username or "", error=errors.device_code_expired()
        )
    if form.get("action") == "decline":
        device.status = "declined"
        return _page("Sign-in cancelled", "<h1>You have declined to sign in.</h1>")
    client = find_client(world, device.client_id, ctx.endpoints.authority_host)
    if client is None:
        return device_form(
            user_code=user_code,
            username=username or "",
            error=errors.app_not_found(device.client_id, "common"),
        )
    if username is None:
        return device_form(
            user_code=user_code, username="", note=f"Sign in to {client.display_name}"
        )
    try:
        home, user = sign_in_user(world, username, password)
        tenant = world.tenants.get(device.tenant_id) if device.tenant_id else home
        if tenant is None:
            raise errors.tenant_not_found(str(device.tenant_id), at_token_endpoint=False)
        csp_rules.check_sign_in(world, client, home, user, tenant, now)
    except AADError as err:
        # The device keeps polling "pending": the person at the page may try another account.
        return device_form(user_code=user_code, username=username, error=err)
    device.sign_in = SignIn(home.id, str(user["id"]), now, INTERACTIVE_AMR)
    device.status = "approved"
    return _page(
        "Signed in",
        f'<h1 id="done">You have signed in to the {html.escape(client.display_name)} application '
        "on your device. You may now close this window.</h1>",
    )


# -- signing out, and the help page error answers link to -----------------------------------------


async def logout(ctx: EmulatorContext, request: Request) -> Response:
    target = request.query_params.get("post_logout_redirect_uri", "")
    if target.startswith(("https://", "http://localhost", "http://127.0.0.1")):
        return RedirectResponse(target, status_code=302)
    return HTMLResponse("<!DOCTYPE html><title>Signed out</title><h1>You signed out.</h1>")


async def error_help(ctx: EmulatorContext, request: Request) -> Response:
    code = html.escape(request.query_params.get("code", ""))
    return HTMLResponse(
        f"<!DOCTYPE html><title>AADSTS{code}</title><h1>Error AADSTS{code}</h1>"
        "<p>See the emulator's refusal table in csp_emulator.identity.csp_rules.</p>"
    )
