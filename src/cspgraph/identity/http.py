"""The HTTP transport MSAL (and the v1 sign-in) talk through.

One ``requests.Session`` is shared by every MSAL application object: one connection pool, one
place where TLS trust is decided. Two MSAL/requests traps are handled here (client-traps §3):

* MSAL ignores its own ``verify=`` once it is given an ``http_client``, so trust is set on the
  session;
* a ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` in the environment silently overrides
  ``Session.verify``; with a CA bundle of our own the session therefore ignores the environment
  (``trust_env=False``), which also means no proxy variables are read for it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

DEFAULT_TIMEOUT = (10.0, 30.0)  # connect, read; MSAL passes no timeout through http_client


class TransportSession(requests.Session):
    """A Session that trusts ``ca_bundle`` whatever the environment says, with a default
    timeout and a pool big enough for every worker thread to keep its connection."""

    def __init__(
        self,
        ca_bundle: str | None = None,
        *,
        pool_maxsize: int = 64,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__()
        self._timeout = timeout
        if ca_bundle:
            self.verify = ca_bundle
            self.trust_env = False
        # max_retries=1 retries a failed connect only (nothing was sent), as MSAL's own does.
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=pool_maxsize, max_retries=1)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, *args, **kwargs)


class StaticResponse:
    """The part of a response MSAL reads, for a document we already hold."""

    def __init__(self, text: str, status_code: int = 200) -> None:
        self.text = text
        self.status_code = status_code
        self.headers: dict[str, str] = {"content-type": "application/json"}

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise requests.HTTPError(f"HTTP {self.status_code}")


class MsalTransport:
    """MSAL's ``http_client``: the shared session, plus discovery documents served from memory.

    Building an MSAL application fetches the tenant's OIDC discovery document, which the router
    has already fetched to learn the tenant's region; ``known_documents(url)`` hands that copy
    back, so a tenant costs one discovery GET instead of two.
    """

    def __init__(
        self,
        session: requests.Session,
        known_documents: Callable[[str], str | None] | None = None,
    ) -> None:
        self.session = session
        self._known = known_documents

    def get(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        if self._known is not None and not params:
            text = self._known(url)
            if text is not None:
                return StaticResponse(text)
        return self.session.get(url, params=params, headers=headers, **kwargs)

    def post(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        return self.session.post(url, params=params, data=data, headers=headers, **kwargs)

    def close(self) -> None:
        """MSAL never owns the shared session; closing is the provider's job."""


class DiscoveryOnlyHttpCache(dict[Any, Any]):
    """MSAL's ``http_cache`` that keeps discovery GETs but never a token endpoint's answer.

    MSAL replays a token endpoint's 400 for 60 s and a 429/5xx for its Retry-After (client-traps
    §5): a "fresh token" retry after consent has propagated would get the stale error back
    without a request being sent. Retrying is the caller's decision here (the error taxonomy says
    when), so POST answers are simply not stored.
    """

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, str) and key.startswith("POST "):
            return
        super().__setitem__(key, value)


# -- log hygiene -----------------------------------------------------------------------------------

_SECRET_FIELDS = re.compile(
    r'("(?:code|code_verifier|client_assertion|client_secret|assertion|password|access_token|'
    r'refresh_token|id_token)"\s*:\s*)"[^"]*"'
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+")


class RedactSecrets(logging.Filter):
    """Scrubs credentials from MSAL's DEBUG records.

    MSAL masks tokens and the client secret in its cache-event dump, but not the authorization
    code nor the PKCE verifier of an auth-code redemption; any JWT-shaped string is masked too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = _JWT.sub("<jwt>", _SECRET_FIELDS.sub(r'\1"********"', message))
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


_REDACTOR = RedactSecrets()


def redact_msal_logs() -> None:
    """Attach the redacting filter to every MSAL logger (idempotent).

    A logger's filters only see records created on that logger, so each ``msal.*`` logger gets
    its own reference (the names MSAL 1.39 logs under, and any created since)."""
    names = {
        "msal",
        "msal.application",
        "msal.token_cache",
        "msal.authority",
        "msal.telemetry",
        "msal.throttled_http_client",
        "msal.oauth2cli.oauth2",
        "msal.oauth2cli.oidc",
        "msal.oauth2cli.assertion",
        "msal.oauth2cli.authcode",
    }
    names.update(n for n in logging.root.manager.loggerDict if n.startswith("msal"))
    for name in names:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
