"""A partner service account's delegated tokens for GDAP customers: the Secure Application Model.

A customer whose app-only access does not work (no DAP, no consent of the app) can still be read
through GDAP by a partner user whose groups hold roles there. Partners' tools (CIPP) keep one
service account for this: it signs in once, interactively (with multi-factor authentication),
and its refresh token is then redeemed at each customer's authority, where the token carries
the roles its groups' access assignments give it there (wire-facts §5, §8).

That refresh token opens every customer the account reaches, so it is kept encrypted at rest:
MSAL's cache, serialized, is encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from
``cryptography``) under a key kept in its own file next to it (``<cache>.key``); both files are
created 0600 and replaced atomically. The key file and the cache file are both needed to read it
(a backup of one is not a leak of the token). The OS keyring is not used: it is not present on
the servers cspgraph syncs from (a choice; see docs/gdap.md). Tokens never reach a log line:
MSAL's logs are redacted and no repr shows them.

:class:`ServiceAccountTokens` is a ``TokenSource`` (``get_token(tenant)``) over the agent
machinery of :mod:`cspgraph.identity.agent`, with :class:`EncryptedTokenCache` as its cache.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken

from cspgraph.config import write_private_file
from cspgraph.identity.agent import AgentAccount, AgentTokenProvider, SignInResult
from cspgraph.identity.cache import PersistentTokenCache, narrowed_to_owner
from cspgraph.identity.loopback import PendingSignIn

if TYPE_CHECKING:
    from cspgraph.identity import TokenProvider

log = logging.getLogger(__name__)


def key_path_for(cache_path: Path) -> Path:
    return cache_path.with_name(cache_path.name + ".key")


class EncryptedTokenCache(PersistentTokenCache):
    """:class:`PersistentTokenCache` whose file is Fernet-encrypted under a key file (0600)."""

    def __init__(self, path: Path) -> None:
        self.key_path = key_path_for(path)
        self._fernet = Fernet(self._key())
        super().__init__(path)

    def _key(self) -> bytes:
        if not narrowed_to_owner(self.key_path, "key file"):
            key = Fernet.generate_key()
            write_private_file(self.key_path, key.decode("ascii"))
            return key
        return self.key_path.read_text(encoding="ascii").strip().encode("ascii")

    def _read(self) -> None:
        assert self.path is not None
        if not narrowed_to_owner(self.path, "token cache"):
            return
        try:
            plain = self._fernet.decrypt(self.path.read_bytes())
            self.deserialize(plain.decode("utf-8"))
        except (OSError, ValueError, InvalidToken) as exc:
            # Another key, or a damaged file: nobody is signed in (sign in again).
            log.warning("ignoring an unreadable service account cache %s: %s", self.path,
                        type(exc).__name__)  # fmt: skip

    def save(self) -> None:
        if self.path is None or not self.has_state_changed:
            return
        with self._file_lock:
            sealed = self._fernet.encrypt(self.serialize().encode("utf-8"))
            write_private_file(self.path, sealed.decode("ascii"))


class ServiceAccountTokens:
    """The service account's delegated Graph tokens, per customer (a ``TokenSource``)."""

    def __init__(self, provider: TokenProvider, cache_path: Path) -> None:
        self.cache_path = cache_path
        self.agent = AgentTokenProvider(
            provider.router,
            session=provider.session,
            cache=EncryptedTokenCache(cache_path),
            credentials=provider.credentials,
        )

    async def get_token(self, tenant: str, *, fresh: bool = False) -> str:
        return await self.agent.get_token(tenant, fresh=fresh)

    def begin_sign_in(
        self, at: str, *, login_hint: str | None = None
    ) -> PendingSignIn[SignInResult]:
        """Start the account's one interactive sign-in, at ``at`` (its partner tenant or any
        customer of the region)."""
        return self.agent.begin_sign_in(at, login_hint=login_hint)

    def accounts(self) -> list[AgentAccount]:
        return self.agent.accounts()

    def sign_out(self) -> int:
        return self.agent.sign_out()

    def close(self) -> None:
        self.agent.close()
