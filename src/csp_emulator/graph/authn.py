"""Who is calling: the bearer token, validated as Graph validates it, turned into a Caller.

The tenant served is the token's ``tid`` and nothing else, so a token for one customer can never
read another's directory.
"""

from __future__ import annotations

import logging

from csp_emulator import wellknown
from csp_emulator.context import EmulatorContext
from csp_emulator.graph.caller import Caller
from csp_emulator.graph.errors import EMPTY_TOKEN_HINT, no_token, unauthenticated
from csp_emulator.identity.tokens import EMPTY, INVALID, InvalidToken

log = logging.getLogger("csp_emulator")

# Graph accepts its resource URI (any cloud's) or its app id as the audience (wire-facts §1.7).
GRAPH_AUDIENCES = frozenset(
    {wellknown.GRAPH_APP_ID}
    | {f"https://{host}" for host in wellknown.CLOUD_GRAPH_HOSTS.values()}
    | {f"https://{host}/" for host in wellknown.CLOUD_GRAPH_HOSTS.values()}
)

_CACHE_MAX = 20_000


def authenticate(ctx: EmulatorContext, authorization: str | None) -> Caller:
    """The caller behind an ``Authorization`` header, or a 401 GraphError in Graph's words."""
    if authorization is None or not authorization.strip():
        log.warning("Graph: 401 Access token is empty: %s", EMPTY_TOKEN_HINT)
        raise no_token()
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthenticated(EMPTY)
    world = ctx.world
    try:
        # Signature checks are cached by SigningKeys; lifetime is checked on every call against
        # the world clock, which tests move.
        claims = ctx.keys.validate(token, now=world.clock.now(), audiences=GRAPH_AUDIENCES)
    except InvalidToken as exc:
        raise unauthenticated(exc.reason) from None
    cache = ctx.state.graph.callers
    caller = cache.get(token)
    if caller is None:
        caller = _caller(claims)
        cache[token] = caller
        if len(cache) > _CACHE_MAX:
            cache.popitem(last=False)
    if world.tenants.get(caller.tenant_id) is None:
        # A token for a tenant this world does not have (deleted, or a reset since issue).
        raise unauthenticated(INVALID)
    return caller


def _caller(claims: dict[str, object]) -> Caller:
    tenant_id = str(claims.get("tid") or "").lower()
    if not tenant_id:
        raise unauthenticated(INVALID)
    roles = claims.get("roles")
    scp = claims.get("scp")
    wids = claims.get("wids")
    oid = claims.get("oid")
    delegated = claims.get("idtyp") == "user" or (claims.get("idtyp") is None and bool(scp))
    return Caller(
        tenant_id=tenant_id,
        app_id=str(claims.get("appid") or claims.get("azp") or ""),
        delegated=delegated,
        roles=frozenset(str(r) for r in roles) if isinstance(roles, list) else frozenset(),
        scopes=frozenset(str(scp).split()) if isinstance(scp, str) else frozenset(),
        role_templates=frozenset(str(w) for w in wids) if isinstance(wids, list) else frozenset(),
        object_id=str(oid) if isinstance(oid, str) else None,
        # Agents' tokens carry `aai` (who they are at home) and an `idp` that is not this
        # tenant's STS (wire-facts §1.7).
        agent=delegated and "aai" in claims,
        claims=dict(claims),
    )
