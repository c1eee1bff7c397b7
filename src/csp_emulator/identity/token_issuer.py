"""Access tokens, id tokens and the token-endpoint response bodies, v1 and v2.

Graph and Partner Center take v1 access tokens whichever endpoint issued them (wire-facts §1.7):
``iss`` = ``https://sts.windows.net/{tid}/``, ``ver`` "1.0", ``appid``/``appidacr``. Graph tokens
also carry the header ``nonce`` that makes them opaque to clients. v1 responses spell numbers as
strings and echo the resource; v2 responses carry the scopes, ``client_info`` and an id token.
Every issued access token is recorded in the world (its claims summary, never the token).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from csp_emulator.context import EmulatorContext
from csp_emulator.identity.clients import AuthenticatedClient
from csp_emulator.identity.csp_rules import AppGrant, UserGrant
from csp_emulator.identity.scopes import DEFAULT, GRAPH, ScopeRequest
from csp_emulator.identity.state import RefreshGrant, SignIn
from csp_emulator.identity.tokens import b64url, new_jti
from csp_emulator.world.model import IssuedToken, Tenant


def sts_issuer(tenant_id: str) -> str:
    return f"https://sts.windows.net/{tenant_id}/"


def pairwise_subject(object_id: str, client_id: str, tenant_id: str) -> str:
    """`sub` is pairwise: stable per user and app, useless to correlate across apps."""
    return b64url(hashlib.sha256(f"{object_id}|{client_id}|{tenant_id}".encode()).digest())


def client_info(user_id: str, home_tenant_id: str) -> str:
    raw = json.dumps({"uid": user_id, "utid": home_tenant_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def _opaque() -> str:
    # Shapes of Entra's `aio`/`rh`: opaque to everyone but Entra.
    return "0.A" + new_jti() + new_jti()


@dataclass(frozen=True)
class Issue:
    """One token request that passed its checks: what to issue, for whom, where."""

    ctx: EmulatorContext
    target: Tenant
    auth: AuthenticatedClient
    request: ScopeRequest
    v1: bool
    grant: str  # the grant type, for the record
    now: float

    @property
    def lifetime(self) -> int:
        return int(self.ctx.world.settings.token_lifetime)

    def _base_claims(self, jti: str) -> dict[str, Any]:
        now = int(self.now)
        tenant = self.target
        client = self.auth.client
        return {
            "aud": self.request.audience,
            "iss": sts_issuer(tenant.id),
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "aio": _opaque(),
            "app_displayname": client.display_name,
            "appid": client.app_id,
            "appidacr": self.auth.acr,
            "idp": sts_issuer(tenant.id),
            "rh": _opaque(),
            "tenant_ctry": tenant.country,
            "tenant_region_scope": tenant.region,
            "tid": tenant.id,
            "uti": jti,
            "ver": "1.0",
            "xms_tcdt": int(tenant.created_at),
        }

    def _sign(self, claims: dict[str, Any]) -> str:
        return self.ctx.keys.sign(claims, graph_style=self.request.resource is GRAPH)

    def _record(self, jti: str, kind: str, subject: str, roles: list[str], scp: str) -> None:
        self.ctx.world.record_token(
            IssuedToken(
                jti=jti,
                tenant_id=self.target.id,
                client_id=self.auth.client.app_id,
                audience=self.request.audience,
                kind=kind,
                subject=subject,
                issued_at=self.now,
                expires_at=self.now + self.lifetime,
                roles=roles,
                scp=scp,
                grant=self.grant,
            )
        )

    def _expiry(self) -> dict[str, Any]:
        lifetime = self.lifetime
        if self.v1:
            return {
                "token_type": "Bearer",
                "expires_in": str(lifetime),
                "ext_expires_in": str(lifetime),
                "expires_on": str(int(self.now) + lifetime),
                "not_before": str(int(self.now)),
            }
        return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime}

    # -- app-only ----------------------------------------------------------------------------
    def app_response(self, grant: AppGrant) -> dict[str, Any]:
        jti = new_jti()
        sp_id = str(grant.service_principal["id"])
        claims = self._base_claims(jti)
        claims.update({"idtyp": "app", "oid": sp_id, "sub": sp_id})
        if grant.roles:
            claims["roles"] = list(grant.roles)  # absent when nothing is granted
        token = self._sign(claims)
        self._record(jti, "app", sp_id, list(grant.roles), "")
        body = self._expiry()
        if self.v1:
            body["resource"] = self.request.resource_param or self.request.audience
        # No `scope` for client credentials: MSAL would cache under it (client-traps §4).
        body["access_token"] = token
        return body

    # -- user ------------------------------------------------------------------------------------
    def user_response(
        self,
        *,
        home: Tenant,
        user: dict[str, Any],
        sign_in: SignIn,
        grant: UserGrant,
        scope: str,
        nonce: str | None,
        want_id_token: bool,
        want_refresh_token: bool,
        want_client_info: bool,
        max_age: str | None = None,
    ) -> dict[str, Any]:
        jti = new_jti()
        upn = str(user["userPrincipalName"])
        client_id = self.auth.client.app_id
        claims = self._base_claims(jti)
        claims.update(
            {
                "acct": 1 if grant.partner else 0,
                "acr": "1",
                "amr": list(sign_in.amr),
                "idtyp": "user",
                "name": user.get("displayName") or upn,
                "sub": pairwise_subject(user["id"], client_id, self.target.id),
                "unique_name": upn,
            }
        )
        for claim, key in (("given_name", "givenName"), ("family_name", "surname")):
            if user.get(key):
                claims[claim] = user[key]
        if grant.partner is not None:
            # A partner agent: their home STS, a marker of who they are there, and no object in
            # this tenant (wire-facts §1.7, the agent decode).
            claims["idp"] = sts_issuer(grant.partner.id)
            claims["aai"] = f"tenant: {grant.partner.id}, object: {user['id']}"
        else:
            claims["oid"] = user["id"]
            claims["upn"] = upn
        if grant.scopes:
            claims["scp"] = " ".join(grant.scopes)
        if grant.wids:
            claims["wids"] = list(grant.wids)
        token = self._sign(claims)
        self._record(jti, "user", str(user["id"]), [], " ".join(grant.scopes))
        body = self._expiry()
        if self.v1:
            body["scope"] = " ".join(grant.scopes)
            body["resource"] = self.request.resource_param or self.request.audience
        else:
            body["scope"] = self._v2_scope(grant)
        body["access_token"] = token
        if want_refresh_token:
            body["refresh_token"] = self._refresh_token(sign_in, scope)
        if want_id_token:
            body["id_token"] = self._id_token(user, home, nonce, sign_in, max_age)
        if want_client_info and not self.v1:
            body["client_info"] = client_info(str(user["id"]), home.id)
        return body

    def _v2_scope(self, grant: UserGrant) -> str:
        # Fully qualified as the request named the resource, plus `.default` when asked for, so
        # MSAL's cache finds the token under the scopes it requested (client-traps §4).
        request = self.request
        items = [request.qualified(p) for p in grant.scopes]
        if request.default:
            items.append(request.qualified(DEFAULT))
        items.extend(
            s for s in ("openid", "profile", "email", "offline_access") if s in request.oidc
        )
        return " ".join(dict.fromkeys(items))

    def _refresh_token(self, sign_in: SignIn, scope: str) -> str:
        settings = self.ctx.world.settings
        grant = RefreshGrant(
            client_id=self.auth.client.app_id,
            sign_in=sign_in,
            scope=scope,
            resource=self.request.resource_param,
            issued_at=self.now,
            expires_at=self.now + settings.refresh_token_lifetime,
        )
        return self.ctx.state.identity.new_refresh_token(grant, self.now)

    def _id_token(
        self,
        user: dict[str, Any],
        home: Tenant,
        nonce: str | None,
        sign_in: SignIn,
        max_age: str | None,
    ) -> str:
        now = int(self.now)
        tid = self.target.id
        client_id = self.auth.client.app_id
        upn = str(user["userPrincipalName"])
        claims: dict[str, Any] = {
            "aud": client_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "name": user.get("displayName") or upn,
            "oid": user["id"],
            "sub": pairwise_subject(user["id"], client_id, tid),
            "tid": tid,
        }
        if self.v1:
            claims.update(
                {
                    "iss": sts_issuer(tid),
                    "amr": list(sign_in.amr),
                    "unique_name": upn,
                    "upn": upn,
                    "ver": "1.0",
                }
            )
        else:
            claims.update(
                {
                    "iss": f"{self.ctx.endpoints.authority_host}/{tid}/v2.0",
                    "preferred_username": upn,
                    "rh": _opaque(),
                    "uti": new_jti(),
                    "ver": "2.0",
                }
            )
        if nonce is not None:
            claims["nonce"] = nonce  # verbatim: MSAL compares it with its own hash
        if max_age is not None:
            claims["auth_time"] = int(sign_in.auth_time)
        if home.id != tid:
            claims["idp"] = sts_issuer(home.id)
        return self.ctx.keys.sign(claims)
