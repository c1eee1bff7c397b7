"""The emulated login.microsoftonline.com: routes only; the work is in the identity_* modules.

    discovery, JWKS, instance discovery   identity_discovery
    /authorize, sign-in form, devicelogin  signin_page
    /token, /devicecode                    identity_grants (grants) -> csp_rules (who gets what)
                                           -> token_issuer (claims, response bodies)
    AADSTS errors                          identity_errors

Every path takes the tenant as its first segment: a GUID, any verified domain (any case), or
``common``/``organizations`` where Entra allows them.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from csp_emulator.context import EmulatorContext
from csp_emulator.identity import discovery, grants, signin_page

Handler = Callable[[Request], Awaitable[Response]]


def build_app(ctx: EmulatorContext) -> Starlette:
    def bind(fn: Callable[..., Awaitable[Response]], **options: bool) -> Handler:
        async def handler(request: Request) -> Response:
            return await fn(ctx, request, **options)

        return handler

    async def logout(request: Request) -> Response:
        target = request.query_params.get("post_logout_redirect_uri", "")
        if target.startswith(("https://", "http://localhost", "http://127.0.0.1")):
            return RedirectResponse(target, status_code=302)
        return HTMLResponse("<!DOCTYPE html><title>Signed out</title><h1>You signed out.</h1>")

    async def error_help(request: Request) -> Response:
        code = html.escape(request.query_params.get("code", ""))
        return HTMLResponse(
            f"<!DOCTYPE html><title>AADSTS{code}</title><h1>Error AADSTS{code}</h1>"
            "<p>See the emulator's refusal table in csp_emulator.identity.csp_rules.</p>"
        )

    both = ["GET", "POST"]
    return Starlette(
        routes=[
            Route("/common/discovery/instance", bind(discovery.instance_discovery)),
            Route("/common/discovery/keys", bind(discovery.keys, v2=False)),
            Route("/devicelogin", bind(signin_page.devicelogin), methods=both),
            Route("/common/oauth2/deviceauth", bind(signin_page.devicelogin), methods=both),
            Route("/error", error_help),
            Route("/{t}/discovery/keys", bind(discovery.keys, v2=False)),
            Route("/{t}/discovery/v2.0/keys", bind(discovery.keys, v2=True)),
            Route(
                "/{t}/.well-known/openid-configuration",
                bind(discovery.openid_configuration, v2=False),
            ),
            Route(
                "/{t}/v2.0/.well-known/openid-configuration",
                bind(discovery.openid_configuration, v2=True),
            ),
            Route("/{t}/oauth2/authorize", bind(signin_page.authorize, v1=True), methods=both),
            Route(
                "/{t}/oauth2/v2.0/authorize", bind(signin_page.authorize, v1=False), methods=both
            ),
            Route("/{t}/oauth2/token", bind(grants.token_endpoint, v1=True), methods=["POST"]),
            Route(
                "/{t}/oauth2/v2.0/token", bind(grants.token_endpoint, v1=False), methods=["POST"]
            ),
            Route(
                "/{t}/oauth2/devicecode",
                bind(grants.devicecode_endpoint, v1=True),
                methods=["POST"],
            ),
            Route(
                "/{t}/oauth2/v2.0/devicecode",
                bind(grants.devicecode_endpoint, v1=False),
                methods=["POST"],
            ),
            Route("/{t}/oauth2/logout", logout),
            Route("/{t}/oauth2/v2.0/logout", logout),
        ]
    )
