"""Partner agents signing in: authorization code + PKCE against the *customer's* authority.

The CSP pattern (seed, "Token acquisition flows"): an agent signs in with their partner account
(agent@partner.com), but the app asks the customer tenant's authority, so the tokens are for the
customer. The partner-managed app is a confidential client, so the code is redeemed with the
region's credential. The refresh token the agent gets is not bound to that customer: MSAL keeps
refresh tokens without a realm, so another customer's MSAL application sharing the same token
cache redeems it at *that* customer's token endpoint — one sign-in, many customers.

v2 (the default) goes through MSAL. v1 (``/oauth2/authorize`` + ``/oauth2/token`` with
``resource=``, exactly as the original CSP description shows) is built here with plain requests,
and its result is stored in the same MSAL cache so the refresh token serves the next customer the
same way.

The redirect comes back to a one-shot listener on loopback (``http://localhost:{free port}``),
:mod:`cspgraph.identity.loopback`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import secrets
import threading
import time
import webbrowser
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import jwt
import msal
import requests

from cspgraph.customer_ref import customer_key
from cspgraph.discovery import Route, Router
from cspgraph.http.errors import (
    NeedsPersonError,
    TransientError,
)
from cspgraph.identity.app_tokens import (
    TRANSPORT_ERRORS,
    Credentials,
    KeyedLocks,
    build_msal_app,
    token_error,
    transport_error,
)
from cspgraph.identity.cache import PersistentTokenCache
from cspgraph.identity.loopback import LoopbackReceiver, PendingSignIn, SignInError
from cspgraph.identity.msal_transport import DiscoveryOnlyHttpCache, MsalTransport, redact_msal_logs

# The loopback listener and PendingSignIn moved to loopback.py (the partner admin's sign-in uses
# them too); they stay importable from here.
__all__ = [
    "ID_TOKEN_LEEWAY",
    "AgentAccount",
    "AgentTokenProvider",
    "LoopbackReceiver",
    "NotSignedInError",
    "PendingSignIn",
    "SignInError",
    "SignInResult",
]

log = logging.getLogger(__name__)

_CT = msal.TokenCache.CredentialType
# Seconds an id_token's times may be off this machine's clock before the sign-in is said to meet
# a clock skew: .NET's token validation default (MSAL Python's legacy check used 120 s).
ID_TOKEN_LEEWAY = 300


class NotSignedInError(NeedsPersonError):
    """No agent's sign-in is cached for this region's app (or it must be renewed)."""


@dataclass(frozen=True)
class AgentAccount:
    """A partner agent whose tokens are cached."""

    username: str
    home_account_id: str  # "{oid}.{home tenant id}"
    environment: str
    client_id: str
    region: str

    @property
    def home_tenant_id(self) -> str:
        return self.home_account_id.split(".", 1)[-1]


@dataclass(frozen=True)
class SignInResult:
    account: AgentAccount
    tenant_id: str  # the customer tenant the tokens are for
    region: str
    protocol: Literal["v2", "v1"]
    expires_at: float
    # Seconds the identity platform's clock is ahead of this machine's (negative: behind), as
    # far as the id_token shows it, when that is beyond ID_TOKEN_LEEWAY; None within it.
    clock_skew: float | None = None
    # The delegated permissions the new token holds (its `scp`): what the app asks for now.
    scopes: tuple[str, ...] = ()


class _HeldTokens(msal.TokenCache):  # type: ignore[misc]
    """A sign-in's tokens, held back from the shared cache until the sign-in is validated: MSAL
    stores what a code redemption returns before the caller sees it, and a sign-in that fails
    afterwards (an id_token that does not validate) must leave no agent behind."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def add(self, event: dict[str, Any], **kwargs: Any) -> None:
        self.events.append(event)

    def release_to(self, cache: msal.TokenCache) -> None:
        for event in self.events:
            cache.add(event)


# -- the provider ----------------------------------------------------------------------------------


class AgentTokenProvider:
    """Delegated tokens of a signed-in partner agent for any customer of the agent's region.

    Implements the Graph client's ``TokenSource``. ``username`` picks the agent when several are
    signed in for one region's app.
    """

    def __init__(
        self,
        router: Router,
        *,
        session: requests.Session,
        cache: PersistentTokenCache,
        credentials: Credentials,
        username: str | None = None,
        workers: int = 4,
    ) -> None:
        self.router = router
        self.session = session
        self.cache = cache
        self.username = username.lower() if username else None
        self._credentials = credentials
        self._apps: dict[tuple[str, str], msal.ConfidentialClientApplication] = {}
        self._http_cache = DiscoveryOnlyHttpCache()
        self._transport = MsalTransport(session, router.discovery.take_document)
        self._jwks: dict[str, dict[str, Any]] = {}
        self._locks = KeyedLocks()
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cspgraph-agent")
        redact_msal_logs()

    # -- signing in -----------------------------------------------------------------------------
    def begin_sign_in(
        self,
        customer: str,
        *,
        v1: bool = False,
        port: int = 0,
        login_hint: str | None = None,
    ) -> PendingSignIn[SignInResult]:
        """Start a sign-in for ``customer``. The customer is placed first: a customer of a region
        without a partner identity is refused here, before any browser opens."""
        route = self.router.route_sync(customer)
        receiver = LoopbackReceiver(port)
        try:
            if v1:
                return self._begin_v1(route, customer_key(customer), receiver, login_hint)
            return self._begin_v2(route, receiver, login_hint)
        except BaseException:
            receiver.close()
            raise

    def sign_in(
        self,
        customer: str,
        *,
        v1: bool = False,
        open_browser: bool = True,
        show_url: Callable[[str], None] = print,
        timeout: float = 300.0,
        login_hint: str | None = None,
    ) -> SignInResult:
        """Interactive sign-in: open the browser (or show the URL), wait, redeem, cache."""
        with self.begin_sign_in(customer, v1=v1, login_hint=login_hint) as pending:
            if not (open_browser and webbrowser.open(pending.auth_url)):
                show_url(pending.auth_url)
            return pending.wait(timeout)

    def _begin_v2(
        self, route: Route, receiver: LoopbackReceiver, login_hint: str | None
    ) -> PendingSignIn[SignInResult]:
        held = _HeldTokens()
        app = build_msal_app(
            route,
            self._credentials.get(route.identity),
            transport=self._transport,
            http_cache=self._http_cache,
            token_cache=held,
        )
        flow = app.initiate_auth_code_flow(
            scopes=[route.cloud.graph_scope],
            redirect_uri=receiver.redirect_uri,
            login_hint=login_hint,
            # The code comes back in a POST body, not in a URL a browser keeps in its history.
            response_mode="form_post",
        )
        receiver.expect(flow["state"])

        def complete(answer: dict[str, str]) -> SignInResult:
            self._check_answer(answer, flow["state"], route)
            what = f"agent sign-in at tenant {route.tenant_id}"
            try:
                result = app.acquire_token_by_auth_code_flow(flow, answer)
            except RuntimeError as exc:  # the id_token's nonce does not match this sign-in
                raise SignInError(f"{what} failed: {exc}") from None
            except TRANSPORT_ERRORS as exc:
                raise transport_error(exc, route.tenant_id, what) from None
            if "access_token" not in result:
                raise token_error(result, route.tenant_id, what)
            skew = self._validate_id_token(result.get("id_token"), route, nonce=None)
            self._forget_older_tokens(route, result)
            held.release_to(self.cache)  # validated: now the agent is signed in
            return self._signed_in(route, result, "v2", skew)

        return PendingSignIn(flow["auth_uri"], receiver, complete)

    def _begin_v1(
        self, route: Route, tenant_ref: str, receiver: LoopbackReceiver, login_hint: str | None
    ) -> PendingSignIn[SignInResult]:
        cloud = route.cloud
        identity = route.identity
        state = secrets.token_urlsafe(16)
        verifier = secrets.token_urlsafe(32)  # 43 characters, as RFC 7636 asks at least
        challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
        nonce = secrets.token_urlsafe(16)
        params = {
            "client_id": identity.client_id,
            "response_type": "code",
            "redirect_uri": receiver.redirect_uri,
            "resource": cloud.graph_resource,
            "scope": "openid",  # v1: an id_token names the agent for the cache's account
            "response_mode": "form_post",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if login_hint:
            params["login_hint"] = login_hint
        auth_url = f"{cloud.login}/{tenant_ref}/oauth2/authorize?{urlencode(params)}"
        token_endpoint = f"{cloud.login}/{tenant_ref}/oauth2/token"
        receiver.expect(state)

        def complete(answer: dict[str, str]) -> SignInResult:
            self._check_answer(answer, state, route)
            what = f"agent sign-in (v1) at tenant {route.tenant_id}"
            form = {
                "grant_type": "authorization_code",
                "client_id": identity.client_id,
                "code": answer["code"],
                "redirect_uri": receiver.redirect_uri,
                "resource": cloud.graph_resource,
                "scope": "openid",
                "code_verifier": verifier,
                "client_info": "1",
                **self._credentials.get(identity).token_form(identity.client_id, token_endpoint),
            }
            try:
                response = self.session.post(
                    token_endpoint, data=form, headers={"Accept": "application/json"}
                )
                body = response.json()
            except TRANSPORT_ERRORS as exc:
                raise transport_error(exc, route.tenant_id, what) from None
            if response.status_code >= 500:
                raise TransientError(
                    f"{what} failed: HTTP {response.status_code}",
                    status=response.status_code,
                    tenant=route.tenant_id,
                )
            if not isinstance(body, dict) or "access_token" not in body:
                raise token_error(body if isinstance(body, dict) else {}, route.tenant_id, what)
            skew = self._validate_id_token(body.get("id_token"), route, nonce=nonce)
            self._forget_older_tokens(route, body)
            return self._signed_in(route, self._store_v1(route, body), "v1", skew)

        return PendingSignIn(auth_url, receiver, complete)

    def _check_answer(self, answer: dict[str, str], state: str, route: Route) -> None:
        if not secrets.compare_digest(answer.get("state", ""), state):
            raise SignInError(
                "the sign-in answer belongs to another sign-in (state mismatch); start again",
                tenant=route.tenant_id,
            )
        if "error" in answer:
            raise token_error(dict(answer), route.tenant_id, "agent sign-in")
        if "code" not in answer:
            raise SignInError(
                "the sign-in answer carries no authorization code",
                tenant=route.tenant_id,
            )

    def _forget_older_tokens(self, route: Route, answer: dict[str, Any]) -> None:
        """A new sign-in is the agent's word that the app's permissions are as they are now (an
        administrator may just have added a delegated permission): no access token of this
        agent and app from before it is handed out again, in any customer. MSAL files a token
        under the scopes its answer names, so an older one lacking the new permission would
        still match a ``.default`` request, here and for every other customer, until it
        expired. The refresh token stays: the next token for a customer is redeemed with it."""
        claims = _unverified_claims(answer.get("id_token") or answer.get("access_token") or "")
        home = _home_account_id(answer)
        if home is None:  # v1 without client_info: as _store_v1 files it
            uid, tenant = claims.get("oid") or _aai_object(claims), _home_tenant(claims)
            home = f"{uid}.{tenant}" if uid and tenant else None
        if home is not None:
            self.cache.evict_account(route.identity.client_id, home)

    def _store_v1(self, route: Route, body: dict[str, Any]) -> dict[str, Any]:
        """Put a v1 token answer into the MSAL cache, as MSAL would have stored a v2 one.

        The access token is filed under the Graph `.default` scope (v1 answers name a resource,
        not scopes), and the account under ``client_info`` — from the answer when the server
        sent one, else from the id_token's ``oid`` and the agent's home tenant.
        """
        response = dict(body)
        claims = _unverified_claims(response.get("id_token") or response["access_token"])
        if "client_info" not in response:
            home = _home_tenant(claims)
            uid = claims.get("oid") or _aai_object(claims)
            if uid and home:
                info = json.dumps({"uid": uid, "utid": home}).encode()
                response["client_info"] = _b64url(info)
        username = (
            claims.get("upn") or claims.get("unique_name") or claims.get("preferred_username")
        )
        self.cache.add(
            {
                "client_id": route.identity.client_id,
                "scope": [route.cloud.graph_scope],
                "token_endpoint": f"{route.cloud.login}/{route.tenant_id}/oauth2/token",
                "environment": urlsplit(route.cloud.login).hostname,
                "response": response,
                "grant_type": "authorization_code",
                "data": {},
                "username": username or "",
            }
        )
        return response

    def _signed_in(
        self,
        route: Route,
        result: dict[str, Any],
        protocol: Literal["v2", "v1"],
        clock_skew: float | None,
    ) -> SignInResult:
        expires_in = float(result.get("expires_in") or 0)
        home_account_id = _home_account_id(result)
        account = next((a for a in self.accounts() if a.home_account_id == home_account_id), None)
        if account is None:
            raise SignInError(
                "the sign-in succeeded but no account could be cached (the answer had no "
                "client_info); the server is not behaving like Entra ID",
                tenant=route.tenant_id,
            )
        log.info(
            "agent %s signed in at tenant %s (%s)", account.username, route.tenant_id, protocol
        )
        scp = _unverified_claims(str(result.get("access_token") or "")).get("scp")
        return SignInResult(
            account=account,
            tenant_id=route.tenant_id,
            region=route.region,
            protocol=protocol,
            expires_at=time.time() + expires_in,
            clock_skew=clock_skew,
            scopes=tuple(str(scp).split()) if scp else (),
        )

    # -- id_token validation (MSAL 1.38+ no longer validates; client-traps §8) ------------------
    def _validate_id_token(
        self, id_token: str | None, route: Route, nonce: str | None
    ) -> float | None:
        """Check who the id_token names and who signed it (signature, audience, issuer, tenant,
        nonce): a failure is a :class:`SignInError`. Return the clock skew its times show
        (:func:`clock_skew`), which is not a failure: see there."""
        if not id_token:
            return None  # nothing claimed, nothing relied on
        info = self.router.discovery.cached(route.tenant_id)
        jwks_uri = (info.jwks_uri if info else None) or (
            f"{route.cloud.login}/{route.tenant_id}/discovery/v2.0/keys"
        )
        try:
            header = jwt.get_unverified_header(id_token)
            key = self._signing_key(jwks_uri, header.get("kid"))
            claims = jwt.decode(
                id_token,
                key,
                algorithms=["RS256"],
                audience=route.identity.client_id,
                options={
                    "require": ["exp", "iat", "aud", "iss"],
                    # Times are judged by clock_skew() below, not refused here.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, route.tenant_id, "fetching the signing keys") from None
        except jwt.PyJWTError as exc:
            raise SignInError(
                f"the id_token from tenant {route.tenant_id} does not validate: {exc}",
                tenant=route.tenant_id,
            ) from None
        tid = str(claims.get("tid", ""))
        if not tid or tid not in str(claims["iss"]):
            raise SignInError(
                f"the id_token's issuer {claims['iss']!r} does not name its tenant",
                tenant=route.tenant_id,
            )
        if nonce is not None and claims.get("nonce") not in (None, nonce):
            raise SignInError(
                "the id_token belongs to another sign-in (nonce mismatch)",
                tenant=route.tenant_id,
            )
        skew = clock_skew(claims, time.time())
        if skew is not None:
            log.warning(
                "the id_token from tenant %s shows the identity platform's clock %+.0f s off "
                "this machine's", route.tenant_id, skew,
            )  # fmt: skip
        return skew

    def _signing_key(self, jwks_uri: str, kid: str | None) -> Any:
        for attempt in range(2):  # refetch once: keys roll over
            keys = self._jwks.get(jwks_uri)
            if keys is None or attempt:
                response = self.session.get(jwks_uri, headers={"Accept": "application/json"})
                response.raise_for_status()
                keys = self._jwks[jwks_uri] = response.json()
            for jwk in keys.get("keys", []):
                if kid is None or jwk.get("kid") == kid:
                    return jwt.PyJWK(jwk).key
        raise jwt.InvalidKeyError(f"no signing key {kid!r} at {jwks_uri}")

    # -- tokens (TokenSource) -------------------------------------------------------------------
    async def get_token(self, tenant: str, *, fresh: bool = False) -> str:
        """The agent's delegated Graph token for ``tenant``, from cache or by redeeming the
        agent's refresh token at that tenant. ``fresh=True`` evicts this tenant's access
        tokens first."""
        route = await self.router.route(tenant)
        key = (route.identity.client_id, route.tenant_id)
        async with self._locks.async_lock(key):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self._silent, route, fresh)

    def get_token_sync(self, tenant: str, *, fresh: bool = False) -> str:
        return self._silent(self.router.route_sync(tenant), fresh)

    async def partner_center_token(self, partner_tenant: str, *, fresh: bool = False) -> str:
        """The agent's app+user Partner Center token in their partner tenant (the same refresh
        token, another resource): what Partner Center's GDAP-era calls (applicationconsents,
        relationshiprequests) need, since an app-only caller holds no GDAP roles."""
        route = await self.router.route(partner_tenant)
        key = (route.identity.client_id, route.tenant_id)
        async with self._locks.async_lock(key):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._pool, self._silent, route, fresh, route.cloud.partner_center_scope
            )

    def _silent(self, route: Route, fresh: bool, scope: str | None = None) -> str:
        key = (route.identity.client_id, route.tenant_id)
        what = f"agent token for tenant {route.tenant_id}"
        with self._locks.thread_lock(key):
            app = self._app(route)
            account = self._account(app, route)
            if fresh:
                self.cache.evict_tenant(key[0], key[1], account["home_account_id"])
            try:
                result = app.acquire_token_silent_with_error(
                    [scope or route.cloud.graph_scope], account=account
                )
            except TRANSPORT_ERRORS as exc:
                raise transport_error(exc, route.tenant_id, what) from None
            if result is None:
                raise NotSignedInError(
                    f"{what}: the cached sign-in of {account.get('username')} cannot be used "
                    f"any more; sign in again (cspgraph login --customer {route.customer})",
                    tenant=route.tenant_id,
                    code="NotSignedIn",
                )
            if "access_token" not in result:
                raise token_error(result, route.tenant_id, what)
            token: str = result["access_token"]
            return token

    def _account(self, app: msal.ConfidentialClientApplication, route: Route) -> dict[str, Any]:
        client_id = route.identity.client_id
        candidates = [
            a
            for a in app.get_accounts(username=self.username)
            if self._has_refresh_token(a["home_account_id"], client_id)
        ]
        if len(candidates) == 1:
            account: dict[str, Any] = candidates[0]
            return account
        if not candidates:
            who = f"{self.username} has not" if self.username else "no agent has"
            raise NotSignedInError(
                f"{who} signed in for region {route.region} (app {client_id}); run "
                f"`cspgraph login --customer {route.customer}` first",
                tenant=route.tenant_id,
                code="NotSignedIn",
            )
        names = ", ".join(sorted(a.get("username", "?") for a in candidates))
        raise NotSignedInError(
            f"several agents are signed in for region {route.region} ({names}); choose one "
            "(username=… / --agent-user)",
            tenant=route.tenant_id,
            code="AmbiguousAgent",
        )

    def _has_refresh_token(self, home_account_id: str, client_id: str) -> bool:
        query = {"home_account_id": home_account_id, "client_id": client_id}
        return any(True for _ in self.cache.search(_CT.REFRESH_TOKEN, query=query))

    def accounts(self) -> list[AgentAccount]:
        """Every agent with a usable sign-in in the cache, per region's app."""
        out = []
        identities = self.router.config.identities.values()
        for entry in self.cache.search(_CT.ACCOUNT):
            for identity in identities:
                if self._has_refresh_token(entry["home_account_id"], identity.client_id):
                    out.append(
                        AgentAccount(
                            username=entry.get("username", ""),
                            home_account_id=entry["home_account_id"],
                            environment=entry.get("environment", ""),
                            client_id=identity.client_id,
                            region=identity.region,
                        )
                    )
        return sorted(set(out), key=lambda a: (a.region, a.username))

    def sign_out(self, username: str | None = None) -> int:
        """Forget cached agents (all, or the one named); return how many were forgotten."""
        gone = {
            a.home_account_id
            for a in self.accounts()
            if username is None or a.username.lower() == username.lower()
        }
        for home_account_id in gone:
            self.cache.remove_account_entries(home_account_id)
        return len(gone)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.cache.save()

    def _app(self, route: Route) -> msal.ConfidentialClientApplication:
        key = (route.identity.client_id, route.tenant_id)
        with self._guard:
            app = self._apps.get(key)
        if app is not None:
            return app
        app = build_msal_app(
            route,
            self._credentials.get(route.identity),
            transport=self._transport,
            http_cache=self._http_cache,
            token_cache=self.cache,  # shared: the agent's refresh token serves every customer
        )
        with self._guard:
            return self._apps.setdefault(key, app)


# -- helpers ---------------------------------------------------------------------------------------


def clock_skew(claims: dict[str, Any], now: float) -> float | None:
    """Seconds the issuer's clock is ahead of ``now`` (negative: behind), at least, as an
    id_token's times show it, when beyond :data:`ID_TOKEN_LEEWAY`; None within it.

    A skew does not fail the sign-in. The id_token came straight from the token endpoint over
    TLS, in answer to this sign-in's PKCE-bound code (and nonce, v1): its times guard against a
    replay that cannot happen here (OpenID Connect Core 3.1.3.7), and the tokens stay good, since
    MSAL keeps their lifetime as ``expires_in`` from receipt, never as the issuer's clock says.
    MSAL Python decided the same: its legacy check only logged time errors ("the token(s) are
    still correct and probably functioning"), and 1.38 dropped id_token validation entirely.
    So the caller is told the skew (a machine's clock is wrong, or an emulator's was moved)."""
    issued = max(_epoch(claims.get("iat"), now), _epoch(claims.get("nbf"), now))
    if issued - now > ID_TOKEN_LEEWAY:
        return issued - now
    expires = _epoch(claims.get("exp"), now)
    if now - expires > ID_TOKEN_LEEWAY:
        return expires - now
    return None


def _epoch(value: Any, default: float) -> float:
    """A time claim in seconds, or ``default`` when it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unverified_claims(token: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _home_tenant(claims: dict[str, Any]) -> str | None:
    """The signed-in user's home tenant: a partner agent's is named by ``idp`` (its home STS),
    everyone else's is ``tid``."""
    idp = str(claims.get("idp") or "")
    for part in idp.rstrip("/").split("/"):
        if len(part) == 36 and part.count("-") == 4:
            return part.lower()
    tid = claims.get("tid")
    return str(tid) if tid else None


def _aai_object(claims: dict[str, Any]) -> str | None:
    """The agent's object id in its home tenant from an access token's ``aai`` claim
    ("tenant: {partner tid}, object: {user oid}"), for tokens without ``oid``."""
    for part in str(claims.get("aai") or "").split(","):
        name, _, value = part.partition(":")
        if name.strip() == "object" and value.strip():
            return value.strip()
    return None


def _home_account_id(result: dict[str, Any]) -> str | None:
    raw = result.get("client_info")
    if not raw:
        return None
    try:
        info = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except ValueError:
        return None
    if isinstance(info, dict) and "uid" in info and "utid" in info:
        return f"{info['uid']}.{info['utid']}"
    return None
