"""A partner administrator's sign-in for set-up (Partner Center's app-only tokens are
:class:`cspgraph.identity.PartnerCenterTokens`).

* :class:`AdminSignIn` — a partner **administrator** signed in to the partner tenant for set-up,
  before the partner-managed app exists: "Microsoft Graph Command Line Tools"
  (``14d82eec-204b-4c2f-b7e8-296a70dab67e``, the first-party public client behind
  ``Connect-MgGraph``) with the authorization code flow + PKCE on a loopback redirect, or the
  device code flow on a machine without a browser. Its delegated tokens stay in memory: a Global
  Administrator's refresh token is not something to leave in a file for a one-off set-up.

MSAL is synchronous (client-traps §6): its calls run in a worker thread. The HTTP session, the
loopback listener and the error translation are the identity package's.
"""

from __future__ import annotations

import asyncio
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msal
import requests

from cspgraph.clouds import Cloud
from cspgraph.customer_ref import is_guid
from cspgraph.http.errors import BadRequestError, NeedsPersonError
from cspgraph.identity.app_tokens import TRANSPORT_ERRORS, token_error, transport_error
from cspgraph.identity.loopback import LoopbackReceiver, PendingSignIn, SignInError
from cspgraph.identity.msal_transport import DiscoveryOnlyHttpCache, MsalTransport
from cspgraph.identity.partner_center import remove_access_tokens

# "Microsoft Graph Command Line Tools": consented in every tenant for whatever an admin accepts.
GRAPH_CLI_CLIENT_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"

# What set-up does in the partner tenant, as delegated Graph permissions: register and change
# the app, create its service principal (Application.ReadWrite.All), find AdminAgents and add
# the service principal to it (GroupMember.ReadWrite.All; adding a service principal to a group
# also needs Application.ReadWrite.All — wire-facts §7), and grant the app its application
# permissions in the partner tenant itself (AppRoleAssignment.ReadWrite.All: app role
# assignments to its service principal, the portal's "Grant admin consent").
SETUP_SCOPES: tuple[str, ...] = (
    "Application.ReadWrite.All",
    "GroupMember.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
)


# -- a partner administrator, delegated ------------------------------------------------------------


class NotSignedInError(NeedsPersonError):
    """No administrator has signed in yet (or the sign-in can no longer be used)."""


@dataclass(frozen=True)
class AdminAccount:
    """Who signed in for set-up."""

    username: str
    home_account_id: str
    tenant_id: str  # the partner tenant (GUID) the tokens are for
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class DeviceCodePrompt:
    """What to show a person for the device code flow."""

    user_code: str
    verification_uri: str
    expires_in: int
    message: str


# An admin's interactive sign-in in progress: open ``auth_url``, then ``wait()``.
PendingAdminSignIn = PendingSignIn[AdminAccount]


class AdminSignIn:
    """A partner administrator's delegated Graph tokens for the partner tenant.

    Sign in once (:meth:`sign_in_interactive` or :meth:`sign_in_device_code`); then
    :meth:`get_token` serves the Graph client (it implements ``TokenSource`` for the partner
    tenant only).
    """

    def __init__(
        self,
        cloud: Cloud,
        tenant: str,
        *,
        session: requests.Session,
        scopes: tuple[str, ...] = SETUP_SCOPES,
        client_id: str = GRAPH_CLI_CLIENT_ID,
    ) -> None:
        self.cloud = cloud
        self.tenant = tenant.lower()
        self.session = session
        self.client_id = client_id
        self.scopes = [self._qualified(s) for s in scopes]
        self._cache = msal.TokenCache()  # memory only, on purpose (see the module docstring)
        self._app: msal.PublicClientApplication | None = None
        self._account: dict[str, Any] | None = None
        self._signed_in: AdminAccount | None = None
        self._lock = threading.Lock()

    def _qualified(self, scope: str) -> str:
        return scope if "://" in scope else f"{self.cloud.graph_resource}/{scope}"

    @property
    def account(self) -> AdminAccount | None:
        return self._signed_in

    # -- signing in --------------------------------------------------------------------------------

    def begin_interactive(
        self, *, port: int = 0, login_hint: str | None = None
    ) -> PendingAdminSignIn:
        """Start an authorization code + PKCE sign-in that returns to a loopback listener."""
        app = self._application()
        receiver = LoopbackReceiver(port)
        try:
            flow = app.initiate_auth_code_flow(
                scopes=self.scopes,
                redirect_uri=receiver.redirect_uri,
                login_hint=login_hint,
                prompt="select_account",
                # The code comes back in a POST body, not in a URL a browser keeps in history.
                response_mode="form_post",
            )
        except BaseException:
            receiver.close()
            raise
        receiver.expect(flow["state"])

        def complete(answer: dict[str, str]) -> AdminAccount:
            what = f"administrator sign-in at {self.tenant}"
            if "error" in answer:
                raise token_error(dict(answer), self.tenant, what)
            try:
                result = app.acquire_token_by_auth_code_flow(flow, answer, scopes=self.scopes)
            except (ValueError, RuntimeError) as exc:  # state or nonce of another sign-in
                raise SignInError(f"{what} failed: {exc}") from None
            except TRANSPORT_ERRORS as exc:
                raise transport_error(exc, self.tenant, what) from None
            return self._accept(result, what)

        return PendingAdminSignIn(flow["auth_uri"], receiver, complete)

    def sign_in_interactive(
        self,
        *,
        open_browser: Callable[[str], bool] | None = None,
        show_url: Callable[[str], None] = print,
        timeout: float = 300.0,
        login_hint: str | None = None,
    ) -> AdminAccount:
        """Open the browser at the sign-in page (or show its URL) and wait for the redirect."""
        opener = open_browser or webbrowser.open  # looked up now, so it can be replaced
        with self.begin_interactive(login_hint=login_hint) as pending:
            if not opener(pending.auth_url):
                show_url(pending.auth_url)
            return pending.wait(timeout)

    def sign_in_device_code(self, show: Callable[[DeviceCodePrompt], None]) -> AdminAccount:
        """The device code flow: ``show`` tells the person where to go and which code to enter,
        then this polls until they have signed in (or the code expires)."""
        app = self._application()
        what = f"administrator sign-in (device code) at {self.tenant}"
        try:
            flow = app.initiate_device_flow(scopes=self.scopes)
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self.tenant, what) from None
        if "user_code" not in flow:
            raise token_error(flow, self.tenant, what)
        show(
            DeviceCodePrompt(
                user_code=str(flow["user_code"]),
                verification_uri=str(
                    flow.get("verification_uri") or flow.get("verification_url") or ""
                ),
                expires_in=int(flow.get("expires_in") or 0),
                message=str(flow.get("message") or ""),
            )
        )
        try:
            result = app.acquire_token_by_device_flow(flow)
        except TRANSPORT_ERRORS as exc:
            raise transport_error(exc, self.tenant, what) from None
        return self._accept(result, what)

    def _accept(self, result: dict[str, Any], what: str) -> AdminAccount:
        if "access_token" not in result:
            raise token_error(result, self.tenant, what)
        claims = result.get("id_token_claims") or {}
        tenant_id = str(claims.get("tid") or "").lower()
        # The authority named the partner tenant, so Entra answered for it; a GUID is checked
        # (a domain cannot be, without another discovery round trip).
        if is_guid(self.tenant) and tenant_id != self.tenant:
            raise SignInError(
                f"{what}: the sign-in was for tenant {tenant_id or '(unknown)'}, not {self.tenant}",
            )
        accounts = self._application().get_accounts()
        home = _home_account_id(claims)
        account = next((a for a in accounts if a.get("home_account_id") == home), None)
        if account is None and len(accounts) == 1:
            account = accounts[0]
        if account is None:
            raise SignInError(
                f"{what}: signed in, but the account could not be cached (no client_info)",
            )
        self._account = account
        granted = tuple(str(result.get("scope") or "").split())
        self._signed_in = AdminAccount(
            username=str(account.get("username") or claims.get("preferred_username") or ""),
            home_account_id=str(account["home_account_id"]),
            tenant_id=tenant_id,
            scopes=granted,
        )
        return self._signed_in

    # -- tokens ------------------------------------------------------------------------------------

    async def get_token(self, tenant: str, *, fresh: bool = False) -> str:
        """The administrator's delegated Graph token (``TokenSource`` for the partner tenant)."""
        return await asyncio.to_thread(self.get_token_sync, tenant, fresh=fresh)

    def get_token_sync(self, tenant: str, *, fresh: bool = False) -> str:
        signed_in = self._signed_in
        if signed_in is None or self._account is None:
            raise NotSignedInError(
                "no partner administrator has signed in; sign in first",
                code="NotSignedIn",
            )
        if tenant.lower() not in (self.tenant, signed_in.tenant_id):
            raise BadRequestError(
                f"the administrator's sign-in is for the partner tenant {self.tenant}, "
                f"not {tenant}",
            )
        what = f"administrator token for {self.tenant}"
        with self._lock:
            app = self._application()
            if fresh:
                remove_access_tokens(self._cache, self.client_id)
            try:
                result = app.acquire_token_silent_with_error(self.scopes, account=self._account)
            except TRANSPORT_ERRORS as exc:
                raise transport_error(exc, self.tenant, what) from None
        if result is None:
            raise NotSignedInError(
                f"{what}: the sign-in can no longer be used; sign in again",
                code="NotSignedIn",
            )
        if "access_token" not in result:
            raise token_error(result, self.tenant, what)
        token: str = result["access_token"]
        return token

    def _application(self) -> msal.PublicClientApplication:
        if self._app is None:
            what = f"preparing the administrator sign-in at {self.tenant}"
            try:
                self._app = msal.PublicClientApplication(
                    self.client_id,
                    authority=self.cloud.authority(self.tenant),
                    http_client=MsalTransport(self.session),
                    http_cache=DiscoveryOnlyHttpCache(),
                    instance_discovery=self.cloud.instance_discovery,
                    token_cache=self._cache,
                )
            except TRANSPORT_ERRORS as exc:
                raise transport_error(exc, self.tenant, what) from None
        return self._app


def _home_account_id(claims: dict[str, Any]) -> str | None:
    oid, tid = claims.get("oid"), claims.get("tid")
    return f"{oid}.{tid}" if oid and tid else None
