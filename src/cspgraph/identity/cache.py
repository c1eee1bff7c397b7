"""Token caches: app-only tokens in memory per tenant, agents' tokens persisted in a 0600 file.

Two stores with two shapes, because the two kinds of token behave differently (client-traps §4):

* **App-only tokens** live in memory only. Each customer tenant's MSAL application keeps its own
  ``msal.TokenCache`` (a miss in one shared MSAL cache is O(n) over every tenant's tokens, and its
  serialisation rewrites all of them on each change), and :class:`HotTokens` holds the current
  token of every (app, tenant) in one dict: a lookup is O(1) whether the fleet has 5 tenants or
  5,000, and needs no thread hop.
* **An agent's tokens** (delegated) are shared across customers on purpose: MSAL stores refresh
  tokens without a realm, so one sign-in serves every customer through any customer's MSAL
  application that shares the cache. :class:`PersistentTokenCache` is that shared
  ``msal.SerializableTokenCache``, saved to a file created 0600 and replaced atomically, or kept in
  memory only.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msal

from cspgraph.config import write_private_file

log = logging.getLogger(__name__)

# MSAL counts a token with under five minutes left as expired; we use the same margin so the hot
# store never hands out a token MSAL itself would already renew.
EXPIRY_MARGIN = 300.0

_CT = msal.TokenCache.CredentialType


@dataclass(frozen=True)
class HotToken:
    token: str = ""
    expires_at: float = 0.0  # wall clock
    renew_at: float = 0.0  # wall clock: expiry minus margin, or the server's refresh_in
    # Which token request of this (app, tenant) produced it, counting from 1: a "fresh" ask is
    # served by any token from a later request than the one the asker saw.
    generation: int = 0

    def usable(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.renew_at

    def __repr__(self) -> str:  # the token never appears in a repr, a log line or a traceback
        return f"HotToken(expires_at={self.expires_at:.0f}, renew_at={self.renew_at:.0f})"


class HotTokens:
    """The current access token per (client_id, tenant id): O(1), thread-safe, memory only."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], HotToken] = {}
        self._lock = threading.Lock()

    def get(self, client_id: str, tenant_id: str) -> HotToken | None:
        return self._tokens.get((client_id, tenant_id))

    def put(self, client_id: str, tenant_id: str, token: HotToken) -> None:
        """Keep ``token`` unless a token from a later request is already there (a slow answer
        to an older request must not replace a fresh token)."""
        key = (client_id, tenant_id)
        with self._lock:
            current = self._tokens.get(key)
            if current is None or token.generation >= current.generation:
                self._tokens[key] = token

    def drop(self, client_id: str, tenant_id: str) -> None:
        with self._lock:
            self._tokens.pop((client_id, tenant_id), None)

    def __len__(self) -> int:
        return len(self._tokens)


def hot_token_from(result: dict[str, Any], generation: int) -> HotToken:
    """A HotToken from an MSAL success result (``expires_in`` is what is left, also on a hit)."""
    now = time.time()
    expires_at = now + float(result.get("expires_in", 0))
    renew_at = expires_at - EXPIRY_MARGIN
    if result.get("refresh_in"):
        renew_at = min(renew_at, now + float(result["refresh_in"]))
    return HotToken(result["access_token"], expires_at, renew_at, generation)


def evict_access_tokens(
    cache: msal.TokenCache,
    client_id: str,
    tenant_id: str,
    *,
    home_account_id: str | None = None,
    app_only: bool = True,
) -> int:
    """Remove the access tokens of one app in one tenant; return how many were removed.

    ``remove_tokens_for_client()`` would wipe every tenant's tokens in a shared cache, so this
    searches by realm (client-traps §4). App-only tokens have no account (``home_account_id``
    None); for an agent give its ``home_account_id``, or ``app_only=False`` with none to evict
    every account's tokens in that tenant. Refresh tokens are kept: they serve other tenants.
    """
    query: dict[str, Any] = {"client_id": client_id, "realm": tenant_id}
    if app_only or home_account_id is not None:
        query["home_account_id"] = home_account_id
    found = list(cache.search(_CT.ACCESS_TOKEN, query=query))
    for at in found:
        cache.remove_at(at)
    return len(found)


def narrowed_to_owner(path: Path, what: str) -> bool:
    """Whether ``path`` exists; a file others could read is narrowed to 0600 first (and the log
    says so): a cache or key left group- or world-readable by hand or by a copy."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s %s was readable by others; narrowing it to 0600", what, path)
        os.chmod(path, 0o600)
    return True


class PersistentTokenCache(msal.SerializableTokenCache):  # type: ignore[misc]
    """MSAL's serializable cache, saved to ``path`` (0600, atomic replace) on every change.

    With ``path=None`` it is memory only. Two processes that sign in at the same moment each
    write their whole view; the later write wins (sign in again in the other one if needed).
    """

    def __init__(self, path: Path | None = None) -> None:
        super().__init__()
        self.path = path
        self._file_lock = threading.RLock()
        if path is not None:
            self._read()

    def _read(self) -> None:
        assert self.path is not None
        if not narrowed_to_owner(self.path, "token cache"):
            return
        try:
            self.deserialize(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("ignoring an unreadable token cache %s: %s", self.path, type(exc).__name__)

    def add(self, event: dict[str, Any], **kwargs: Any) -> None:
        with self._file_lock:
            super().add(event, **kwargs)
            self.save()

    def save(self) -> None:
        """Write the cache if it changed (MSAL also changes it while searching: expired tokens)."""
        if self.path is None or not self.has_state_changed:
            return
        with self._file_lock:
            write_private_file(self.path, self.serialize())

    def evict_tenant(self, client_id: str, tenant_id: str, home_account_id: str | None) -> int:
        with self._file_lock:
            removed = evict_access_tokens(
                self, client_id, tenant_id, home_account_id=home_account_id, app_only=False
            )
            self.save()
        return removed

    def evict_account(self, client_id: str, home_account_id: str) -> int:
        """Remove one agent's access tokens of one app in every tenant (refresh tokens stay);
        return how many were removed."""
        with self._file_lock:
            query = {"client_id": client_id, "home_account_id": home_account_id}
            found = list(self.search(_CT.ACCESS_TOKEN, query=query))
            for at in found:
                self.remove_at(at)
            self.save()
        return len(found)

    def remove_account_entries(self, home_account_id: str) -> None:
        """Forget one agent entirely: account, refresh/access/id tokens."""
        with self._file_lock:
            for kind in (_CT.ACCESS_TOKEN, _CT.REFRESH_TOKEN, _CT.ID_TOKEN, _CT.ACCOUNT):
                for entry in list(self.search(kind, query={"home_account_id": home_account_id})):
                    self.modify(kind, entry)
            self.save()
