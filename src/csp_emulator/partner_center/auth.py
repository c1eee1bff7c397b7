"""Who calls Partner Center: a valid token for its API, issued in a partner tenant, with MFA for
app+user calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from csp_emulator import wellknown
from csp_emulator.context import EmulatorContext
from csp_emulator.identity.tokens import InvalidToken
from csp_emulator.partner_center.errors import PartnerCenterError
from csp_emulator.world.model import Tenant

# v1 tokens name the resource by URI; the API's app id is accepted too, as Entra may issue either.
AUDIENCES = frozenset({wellknown.PARTNER_CENTER_RESOURCE, wellknown.PARTNER_CENTER_APP_ID})

_INVALID_TOKEN = 'Bearer error="invalid_token"'


@dataclass(frozen=True)
class Caller:
    partner: Tenant
    claims: dict[str, Any]


def authenticate(ctx: EmulatorContext, request: Request) -> Caller:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise PartnerCenterError(
            401,
            "800001",
            "Partner Token missing in request context",
            {"WWW-Authenticate": "Bearer"},
        )
    world = ctx.world
    try:
        claims = ctx.keys.validate(token, now=world.clock.now(), audiences=AUDIENCES)
    except InvalidToken as exc:
        raise PartnerCenterError(
            401, "400", f"Access denied. {exc.reason}", {"WWW-Authenticate": _INVALID_TOKEN}
        ) from None
    tid = str(claims.get("tid", ""))
    partner = world.tenant(tid) if tid else None
    if partner is None or partner.kind != "partner":
        # A valid token from a tenant that is not a CSP partner: Partner Center's documented
        # "access denied" (401/400) is the emulator's reading of this case.
        raise PartnerCenterError(
            401,
            "400",
            f"Access denied. Tenant {tid or '(none)'} is not a Partner Center partner tenant.",
            {"WWW-Authenticate": _INVALID_TOKEN},
        )
    if _is_user_token(claims) and "mfa" not in (claims.get("amr") or []):
        raise PartnerCenterError(
            401,
            "400",
            "MFA required. App+User calls need a token whose amr claim includes 'mfa'.",
            {"WWW-Authenticate": _INVALID_TOKEN},
        )
    return Caller(partner, claims)


def _is_user_token(claims: dict[str, Any]) -> bool:
    idtyp = claims.get("idtyp")
    return idtyp == "user" or (idtyp != "app" and "scp" in claims)
