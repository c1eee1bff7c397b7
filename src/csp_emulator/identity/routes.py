"""The emulated login.microsoftonline.com's route table; the handlers are in the modules it names.

Every tenant path takes the tenant as its first segment: a GUID, any verified domain (any case),
or ``common``/``organizations`` where Entra allows them. v1 and v2 endpoints share a handler,
told apart by a keyword bound here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from csp_emulator.context import EmulatorContext
from csp_emulator.identity import admin_consent, admin_portal, discovery, grants, signin_page
from csp_emulator.routing import Route, context_app

Handler = Callable[[EmulatorContext, Request], Awaitable[Response]]


def _get(path: str, handler: Handler) -> Route[Handler]:
    return Route(path, {"GET": handler})


def _get_post(path: str, handler: Handler) -> Route[Handler]:
    return Route(path, {"GET": handler, "POST": handler})


def _post(path: str, handler: Handler) -> Route[Handler]:
    return Route(path, {"POST": handler})


ROUTES: tuple[Route[Handler], ...] = (
    # discovery and signing keys
    _get("/common/discovery/instance", discovery.instance_discovery),
    _get("/common/discovery/keys", partial(discovery.keys, v2=False)),
    _get("/{t}/discovery/keys", partial(discovery.keys, v2=False)),
    _get("/{t}/discovery/v2.0/keys", partial(discovery.keys, v2=True)),
    _get(
        "/{t}/.well-known/openid-configuration", partial(discovery.openid_configuration, v2=False)
    ),
    _get(
        "/{t}/v2.0/.well-known/openid-configuration",
        partial(discovery.openid_configuration, v2=True),
    ),
    # interactive sign-in, device login, sign-out
    _get_post("/devicelogin", signin_page.devicelogin),
    _get_post("/common/oauth2/deviceauth", signin_page.devicelogin),
    _get("/error", signin_page.error_help),
    _get_post("/{t}/oauth2/authorize", partial(signin_page.authorize, v1=True)),
    _get_post("/{t}/oauth2/v2.0/authorize", partial(signin_page.authorize, v1=False)),
    _get("/{t}/oauth2/logout", signin_page.logout),
    _get("/{t}/oauth2/v2.0/logout", signin_page.logout),
    # the customer's side of partner invitations (admin.microsoft.com's pages, admin_portal.py)
    _get("/AdminPortal/Home", admin_portal.home),
    _get_post(f"{admin_portal.GDAP_PATH}/{{id}}", admin_portal.relationship),
    _get_post(admin_portal.RESELLER_PATH, admin_portal.reseller),
    # a customer administrator's consent to a multi-tenant app
    _get_post("/{t}/adminconsent", partial(admin_consent.admin_consent, v2=False)),
    _get_post("/{t}/v2.0/adminconsent", partial(admin_consent.admin_consent, v2=True)),
    # tokens and device codes
    _post("/{t}/oauth2/token", partial(grants.token_endpoint, v1=True)),
    _post("/{t}/oauth2/v2.0/token", partial(grants.token_endpoint, v1=False)),
    _post("/{t}/oauth2/devicecode", partial(grants.devicecode_endpoint, v1=True)),
    _post("/{t}/oauth2/v2.0/devicecode", partial(grants.devicecode_endpoint, v1=False)),
)


def build_app(ctx: EmulatorContext) -> Starlette:
    return context_app(ctx, ROUTES)
