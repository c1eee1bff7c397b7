"""``/{tenant}/adminconsent`` (v1) and ``/{tenant}/v2.0/adminconsent``: a customer's
administrator consents to a multi-tenant app for the whole tenant.

The page is the emulator's sign-in form; the administrator signs in with an account of that
tenant. A Global Administrator or Privileged Role Administrator may grant what the app asks for
(Entra's built-in roles reference: only these grant Microsoft Graph application permissions);
anyone else sees the form again with AADSTS90094 (*unverified* text). The consent — the app's
service principal, a tenant-wide grant of its delegated scopes and assignments of its Graph app
roles — reaches the token service ``settings.consent_delay`` later (world/consent.py). Then the
browser goes back to the app: ``{redirect_uri}?admin_consent=True&tenant={tid}&state=…`` (v2
adds ``scope``; wire-facts §1.1).

v1 grants everything the app's registration asks for; v2 takes ``scope``, either
``https://graph.microsoft.com/.default`` (everything asked for) or Graph permission names the app
asks for (each granted as the kind it is asked for).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from csp_emulator import roles, wellknown
from csp_emulator.context import EmulatorContext
from csp_emulator.identity import errors
from csp_emulator.identity.clients import Client, find_client, redirect_uri_allowed
from csp_emulator.identity.errors import AADError
from csp_emulator.identity.request import read_form, resolve_segment
from csp_emulator.identity.signin_page import credentials, error_page, sign_in_user, signin_form
from csp_emulator.world.consent import grant_consent
from csp_emulator.world.model import Tenant

GRANTING_ROLES = frozenset({roles.GLOBAL_ADMINISTRATOR, roles.PRIVILEGED_ROLE_ADMINISTRATOR})
GRAPH_PREFIX = "https://graph.microsoft.com/"


def admin_required(app: str) -> AADError:
    return AADError(
        90094,
        "access_denied",
        f"Admin consent is required for the permissions requested by the application {app}. "
        "Sign in with a Global Administrator or Privileged Role Administrator of this "
        "organization.",
    )


def _asked(client: Client) -> dict[str, list[str]]:
    asked = {
        "Role": client.required_permissions(wellknown.GRAPH_APP_ID, "Role"),
        "Scope": [
            p
            for p in client.required_permissions(wellknown.GRAPH_APP_ID, "Scope")
            if p not in wellknown.OIDC_SCOPES
        ],
    }
    return asked


def _chosen(client: Client, scope: str | None) -> dict[str, list[str]]:
    """What this request grants: everything asked for, or the named permissions."""
    asked = _asked(client)
    if scope is None:
        return asked
    names = [s for s in scope.split() if s.lower() not in wellknown.OIDC_SCOPES]
    if any(n.lower() in (f"{GRAPH_PREFIX}.default", ".default") for n in names):
        return asked
    chosen: dict[str, list[str]] = {"Role": [], "Scope": []}
    for name in names:
        bare = name[len(GRAPH_PREFIX) :] if name.lower().startswith(GRAPH_PREFIX) else name
        kind = next((k for k, ps in asked.items() if bare in ps), None)
        if kind is None:
            raise errors.invalid_scope(name)
        chosen[kind].append(bare)
    return chosen


def _redirect(redirect_uri: str, fields: dict[str, str]) -> Response:
    joiner = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{joiner}{urlencode(fields)}", status_code=302)


async def admin_consent(ctx: EmulatorContext, request: Request, *, v2: bool) -> Response:
    params: dict[str, str] = dict(request.query_params)
    if request.method == "POST":
        params.update(await read_form(request))
    world = ctx.world
    segment = request.path_params["t"]
    try:
        target = resolve_segment(world, segment, at_token_endpoint=False)
        client_id = params.get("client_id")
        if not client_id:
            raise errors.missing_parameter("client_id")
        client = find_client(world, client_id, ctx.endpoints.authority_host)
        label = target.display_name if target is not None else segment
        if client is None or client.first_party or client.home is None:
            raise errors.app_not_found(client_id, label)
        registered = client.redirect_uris()
        redirect_uri = params.get("redirect_uri") or (registered[0] if registered else "")
        if not redirect_uri:
            raise errors.no_redirect_uri_registered()
        if not redirect_uri_allowed(redirect_uri, registered):
            raise errors.redirect_uri_mismatch(redirect_uri, client.app_id)
        scope = params.get("scope") if v2 else None
        if v2 and not scope:
            raise errors.missing_parameter("scope")
        chosen = _chosen(client, scope)
    except AADError as err:
        return error_page(err)
    username, password = credentials(params)
    if request.method == "GET" or username is None:
        return signin_form(
            action=request.url.path, params=params, username=params.get("login_hint", ""),
            client=client,
        )  # fmt: skip
    try:
        home, user = sign_in_user(world, username, password)
        tenant: Tenant = target or home
        if home.id != tenant.id or not GRANTING_ROLES & set(tenant.roles_of(user["id"])):
            raise admin_required(client.display_name or client.app_id)
        if not client.multi_tenant and client.home_tenant_id != tenant.id:
            raise errors.app_not_found(client.app_id, tenant.display_name)
    except AADError as err:
        return signin_form(
            action=request.url.path, params=params, username=username, client=client, error=err
        )
    grant_consent(
        tenant, client.registration, client.home_tenant_id, scopes=chosen["Scope"],
        app_roles=chosen["Role"], now=world.clock.now(), delay=world.settings.consent_delay,
    )  # fmt: skip
    fields: dict[str, Any] = {"admin_consent": "True", "tenant": tenant.id}
    if v2 and scope:
        fields["scope"] = scope
    if params.get("state") is not None:
        fields["state"] = params["state"]
    return _redirect(redirect_uri, fields)
