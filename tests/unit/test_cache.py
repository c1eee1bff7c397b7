"""Token caches: the O(1) hot store, per-tenant eviction, the 0600 persistent cache, and the
http_cache that keeps MSAL from replaying token errors."""

from __future__ import annotations

import base64
import json
import stat
import time
from pathlib import Path
from typing import Any

import msal
from msal.throttled_http_client import ThrottledHttpClient

from cspgraph.identity.cache import (
    EXPIRY_MARGIN,
    HotToken,
    HotTokens,
    PersistentTokenCache,
    evict_access_tokens,
    hot_token_from,
)
from cspgraph.identity.msal_transport import DiscoveryOnlyHttpCache

CID = "6731de76-14a6-49ae-97bc-6eba6914391e"
TENANT_A = "aaaaaaaa-0000-0000-0000-000000000001"
TENANT_B = "bbbbbbbb-0000-0000-0000-000000000002"
SCOPE = "https://graph.microsoft.com/.default"
CT = msal.TokenCache.CredentialType


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def app_event(tenant: str, token: str) -> dict[str, Any]:
    return {
        "client_id": CID,
        "scope": [SCOPE],
        "token_endpoint": f"https://login.example/{tenant}/oauth2/v2.0/token",
        "response": {"access_token": token, "expires_in": 3600, "token_type": "Bearer"},
        "grant_type": "client_credentials",
        "data": {},
    }


def user_event(tenant: str, token: str, refresh: str) -> dict[str, Any]:
    event = app_event(tenant, token)
    event["grant_type"] = "authorization_code"
    event["response"] = dict(
        event["response"],
        refresh_token=refresh,
        client_info=b64({"uid": "agent-oid", "utid": "partner-tid"}),
    )
    return event


def test_hot_tokens_keep_the_newest_request_and_hide_the_token() -> None:
    store = HotTokens()
    now = time.time()
    store.put(CID, TENANT_A, HotToken("new-token", now + 3600, now + 3300, generation=2))
    store.put(CID, TENANT_A, HotToken("slow-old-token", now + 3600, now + 3300, generation=1))
    hot = store.get(CID, TENANT_A)
    assert hot is not None and hot.token == "new-token"
    assert "new-token" not in repr(hot)
    assert store.get(CID, TENANT_B) is None
    store.drop(CID, TENANT_A)
    assert len(store) == 0


def test_hot_tokens_are_renewed_with_msals_margin_or_earlier_when_the_server_says() -> None:
    before = time.time()
    hot = hot_token_from({"access_token": "t", "expires_in": 3599}, 1)
    assert hot.expires_at - hot.renew_at == EXPIRY_MARGIN
    assert before + 3599 <= hot.expires_at <= time.time() + 3599
    assert hot.usable()
    early = hot_token_from({"access_token": "t", "expires_in": 3599, "refresh_in": 1800}, 1)
    assert early.renew_at <= time.time() + 1800
    assert not hot_token_from({"access_token": "t", "expires_in": 200}, 1).usable()


def test_evicting_one_tenant_leaves_the_others_and_the_agents_tokens() -> None:
    cache = msal.TokenCache()
    cache.add(app_event(TENANT_A, "at-a"))
    cache.add(app_event(TENANT_B, "at-b"))
    cache.add(user_event(TENANT_A, "agent-at-a", "agent-rt"))
    assert evict_access_tokens(cache, CID, TENANT_A) == 1
    left = {at["secret"] for at in cache.search(CT.ACCESS_TOKEN)}
    assert left == {"at-b", "agent-at-a"}
    # The agent's own eviction takes its access token but keeps the refresh token (it serves
    # the other customers).
    assert evict_access_tokens(cache, CID, TENANT_A, home_account_id="agent-oid.partner-tid") == 1
    assert {at["secret"] for at in cache.search(CT.ACCESS_TOKEN)} == {"at-b"}
    assert [rt["secret"] for rt in cache.search(CT.REFRESH_TOKEN)] == ["agent-rt"]


def test_the_persistent_cache_is_created_0600_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "tokens.json"
    cache = PersistentTokenCache(path)
    assert not path.exists()
    cache.add(user_event(TENANT_A, "agent-at", "agent-rt"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = PersistentTokenCache(path)
    accounts = list(again.search(CT.ACCOUNT))
    assert [a["home_account_id"] for a in accounts] == ["agent-oid.partner-tid"]
    assert again.evict_tenant(CID, TENANT_A, "agent-oid.partner-tid") == 1
    assert list(PersistentTokenCache(path).search(CT.ACCESS_TOKEN)) == []
    again.remove_account_entries("agent-oid.partner-tid")
    reloaded = PersistentTokenCache(path)
    assert list(reloaded.search(CT.REFRESH_TOKEN)) == []
    assert list(reloaded.search(CT.ACCOUNT)) == []


def test_a_cache_file_readable_by_others_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("{}")
    path.chmod(0o644)
    PersistentTokenCache(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_memory_cache_writes_nothing(tmp_path: Path) -> None:
    cache = PersistentTokenCache(None)
    cache.add(user_event(TENANT_A, "at", "rt"))
    cache.save()
    assert list(tmp_path.iterdir()) == []


class CountingClient:
    """A fake transport: answers every POST with a 400 and every GET with a 200."""

    def __init__(self) -> None:
        self.posts = 0
        self.gets = 0

    def post(self, url: str, **kwargs: Any) -> Any:
        self.posts += 1
        return _Response(400, '{"error": "invalid_client"}')

    def get(self, url: str, **kwargs: Any) -> Any:
        self.gets += 1
        return _Response(200, "{}")

    def close(self) -> None:
        pass


class _Response:
    def __init__(self, status: int, text: str) -> None:
        self.status_code = status
        self.text = text
        self.headers: dict[str, str] = {}

    def raise_for_status(self) -> None:
        pass


def test_token_errors_are_never_replayed_but_discovery_is_reused() -> None:
    """MSAL replays a token endpoint's 400 for 60 s (client-traps §5); our http_cache refuses
    to keep POST answers, so a retry really asks again."""
    raw = CountingClient()
    client = ThrottledHttpClient(raw, http_cache=DiscoveryOnlyHttpCache(), default_throttle_time=5)
    form = {"client_id": CID, "scope": SCOPE, "grant_type": "client_credentials"}
    for _ in range(3):
        assert (
            client.post("https://login.example/t/oauth2/v2.0/token", data=form).status_code == 400
        )
    assert raw.posts == 3
    for _ in range(3):
        client.get("https://login.example/t/v2.0/.well-known/openid-configuration")
    assert raw.gets == 1
    # With MSAL's default dict the same 400 would have been replayed without a request:
    replaying = ThrottledHttpClient(CountingClient(), http_cache={}, default_throttle_time=5)
    for _ in range(3):
        replaying.post("https://login.example/t/oauth2/v2.0/token", data=form)
    assert replaying.http_client.posts == 1
