"""The customer's side of a partner's invitations, on the emulator's login origin: the pages
admin.microsoft.com shows a customer's administrator.

* A GDAP approval link has the shape partners send,
  ``…/AdminPortal/Home#/partners/invitation/granularAdminRelationships/{id}`` (wire-facts §5.1);
  a reseller invitation ``…/AdminPortal/Home?invType=ResellerRelationship&partnerId=…&DAP=…
  #/BillingAccounts/partner-invitation`` (partner_center/consents.py). The part after ``#`` never
  reaches a server, so ``/AdminPortal/Home`` is a small page whose script sends the browser to
  the server-rendered page for what the fragment names, as the real portal's script routes it.
* On either page the customer's administrator signs in (a Global Administrator of the customer:
  who may approve GDAP relationships, Partner Center docs) and approves or declines; the
  decision is world/customer_side.py's, the same code the control API's shortcuts run.

The pages are the emulator's own (the real portal is an app of its own): ids for scripts and
browsers to find (``#signin``, ``#approve``, ``#decline``, ``#result`` with ``data-status``).
"""

from __future__ import annotations

import html
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from csp_emulator import roles
from csp_emulator.context import EmulatorContext
from csp_emulator.identity.errors import AADError
from csp_emulator.identity.request import read_form
from csp_emulator.identity.signin_page import _page as page  # the sign-in pages' one look
from csp_emulator.identity.signin_page import credentials, sign_in_user
from csp_emulator.world.customer_side import (
    DecisionError,
    accept_reseller,
    decide,
    is_global_admin,
    pending_relationship,
)
from csp_emulator.world.gdap import Relationship
from csp_emulator.world.model import Tenant

GDAP_PATH = "/AdminPortal/partners/invitation/granularAdminRelationships"
RESELLER_PATH = "/AdminPortal/partners/invitation/reseller"

# Routes the portal's fragment to the server-rendered pages below.
_ROUTER = (
    "<script>(function () {"
    ' var hash = window.location.hash || "";'
    " var gdap = hash.match("
    r"/^#\/partners\/invitation\/granularAdminRelationships\/([0-9a-fA-F-]+)/);"
    f' if (gdap) {{ window.location.replace("{GDAP_PATH}/" + gdap[1]); return; }}'
    ' if (hash.indexOf("#/BillingAccounts/partner-invitation") === 0) {'
    f'  window.location.replace("{RESELLER_PATH}" + window.location.search); return; }}'
    ' document.getElementById("nothing").hidden = false;'
    " })();</script>"
)


async def home(ctx: EmulatorContext, request: Request) -> Response:
    body = (
        "<h1>Microsoft 365 admin center</h1>"
        '<p id="nothing" hidden>This link names no invitation.</p>'
        "<noscript>This page needs JavaScript to open the invitation in its link.</noscript>"
        + _ROUTER
    )
    return page("Microsoft 365 admin center", body)


def _administrator(ctx: EmulatorContext, form: dict[str, str]) -> Tenant:
    """The tenant of who signed in at an invitation page, a Global Administrator there."""
    username, password = credentials(form)
    if not username:
        raise DecisionError("Sign in with an administrator of your organization.")
    try:
        tenant, user = sign_in_user(ctx.world, username, password)
    except AADError as err:
        raise DecisionError(err.text) from None
    if not is_global_admin(tenant, str(user["id"])):
        raise DecisionError(
            "Only a Global Administrator of your organization can accept this invitation."
        )
    return tenant


def _form(action: str, buttons: str, error: str | None, username: str) -> str:
    alert = f'<div id="error" role="alert">{html.escape(error)}</div>' if error else ""
    return (
        alert + f'<form id="signin" method="post" action="{html.escape(action)}">'
        '<label for="username">Administrator account</label>'
        f'<input id="username" name="username" type="email" value="{html.escape(username)}" '
        "required>"
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" required>' + buttons + "</form>"
    )


def _result(title: str, status: str, text: str) -> HTMLResponse:
    return page(
        title, f'<h1 id="result" data-status="{html.escape(status)}">{html.escape(text)}</h1>'
    )


def _relationship_page(
    ctx: EmulatorContext, rel: Relationship, error: str | None = None, username: str = ""
) -> HTMLResponse:
    world = ctx.world
    partner = world.tenants.get(rel.partner_id)
    partner_name = partner.display_name if partner else rel.partner_id
    role_items = "".join(f"<li>{html.escape(roles.name_of(r))}</li>" for r in rel.roles)
    status = rel.status(world.clock.now())
    body = (
        "<h1>Partner relationship request</h1>"
        f'<p id="partner">{html.escape(partner_name)} asks for granular delegated admin '
        f"privileges in your organization for {html.escape(rel.duration)}.</p>"
        f'<p>Relationship <b id="name">{html.escape(rel.display_name)}</b> '
        f'(<span id="status">{html.escape(status)}</span>)</p>'
        f'<ul id="roles">{role_items}</ul>'
        + _form(
            f"{GDAP_PATH}/{rel.id}",
            '<button id="approve" type="submit" name="action" value="approve">'
            "Approve all roles</button>"
            '<button id="decline" type="submit" name="action" value="decline" '
            "formnovalidate>Decline</button>",
            error,
            username,
        )
    )
    return page("Partner relationship request", body)


async def relationship(ctx: EmulatorContext, request: Request) -> Response:
    try:
        rel = pending_relationship(ctx.world, request.path_params["id"])
    except DecisionError as exc:
        return page("Partner relationship request", f"<h1>{html.escape(str(exc))}</h1>", 404)
    if request.method == "GET":
        return _relationship_page(ctx, rel)
    form = await read_form(request)
    approve = form.get("action") != "decline"
    try:
        customer = _administrator(ctx, form)
        decide(ctx.world, rel.id, customer, approve=approve)
    except DecisionError as exc:
        return _relationship_page(ctx, rel, str(exc), credentials(form)[0] or "")
    if approve:
        return _result(
            "Relationship approved",
            "approved",
            f"You approved {rel.display_name}. The partner's access starts once it is active.",
        )
    return _result("Relationship declined", "declined", f"You declined {rel.display_name}.")


def _reseller_page(
    ctx: EmulatorContext, partner: Tenant, dap: bool, error: str | None = None, username: str = ""
) -> HTMLResponse:
    query = urlencode({"partnerId": partner.id, "DAP": "true" if dap else "false"})
    extent = " and delegated admin privileges (DAP)" if dap else ""
    body = (
        "<h1>Accept a partner invitation</h1>"
        f'<p id="partner">{html.escape(partner.display_name)} invites your organization to '
        f"a reseller relationship{extent}.</p>"
        + _form(
            f"{RESELLER_PATH}?{query}",
            '<button id="accept" type="submit">Accept and authorize</button>',
            error,
            username,
        )
    )
    return page("Accept a partner invitation", body)


async def reseller(ctx: EmulatorContext, request: Request) -> Response:
    params = request.query_params
    partner = ctx.world.tenant(params.get("partnerId", ""))
    if partner is None or partner.kind != "partner":
        return page("Accept a partner invitation", "<h1>This invitation is not valid.</h1>", 404)
    dap = params.get("DAP", "false").lower() == "true"
    if request.method == "GET":
        return _reseller_page(ctx, partner, dap)
    form = await read_form(request)
    try:
        customer = _administrator(ctx, form)
        accept_reseller(ctx.world, partner, customer, dap=dap)
    except DecisionError as exc:
        return _reseller_page(ctx, partner, dap, str(exc), credentials(form)[0] or "")
    return _result(
        "Invitation accepted",
        "accepted",
        f"{partner.display_name} is now your partner. Its access reaches your organization "
        "in a few minutes.",
    )
