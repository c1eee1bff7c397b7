"""The identity platform's short-lived server-side state: authorization codes, refresh tokens,
device codes. It hangs on the emulator context (``ctx.state.identity``), so a control-API reset
forgets it with the world.

Codes and refresh tokens are opaque random strings, as Entra's are to clients; what they stand for
is kept here. A grant remembers the user by (home tenant, object id) and looks them up again at
use, so a user deleted or disabled since sign-in cannot redeem it.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from typing import Any

CODE_LIFETIME = 600.0  # authorization codes live 10 minutes
DEVICE_CODE_LIFETIME = 900
DEVICE_CODE_INTERVAL = 5
_PURGE_ABOVE = 5_000
USER_CODE_ALPHABET = string.ascii_uppercase.replace("O", "").replace("I", "") + "23456789"


@dataclass(frozen=True)
class SignIn:
    """Who signed in, when and how; carried from a code or device code into every token."""

    home_tenant_id: str
    user_id: str
    auth_time: float
    amr: tuple[str, ...]


@dataclass
class AuthCode:
    client_id: str
    tenant_id: str
    redirect_uri: str | None  # None when the authorize request named none (the default was used)
    v1: bool
    scope: str  # v2 scope or v1 `scope` (openid), as sent to /authorize
    resource: str | None  # v1 resource, when sent to /authorize
    code_challenge: str | None
    code_challenge_method: str
    nonce: str | None
    sign_in: SignIn
    expires_at: float
    max_age: str | None = None
    used: bool = False


@dataclass
class RefreshGrant:
    client_id: str
    sign_in: SignIn
    scope: str  # what the first sign-in asked for, the default for a redemption without scope
    resource: str | None
    issued_at: float
    expires_at: float  # inactivity limit: each redemption issues a new token with a new limit
    # The authorization code this token descends from (through any number of refreshes), so a
    # replay of that code can revoke the whole family (RFC 6749 §4.1.2).
    family: str | None = None


@dataclass
class DeviceAuthorization:
    device_code: str
    user_code: str
    client_id: str
    tenant_id: str | None  # None for common/organizations: the user's home tenant decides
    v1: bool
    scope: str
    resource: str | None
    expires_at: float
    interval: int
    status: str = "pending"  # pending | approved | declined | redeemed
    sign_in: SignIn | None = None
    last_poll: float | None = None


@dataclass
class IdentityState:
    codes: dict[str, AuthCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)
    devices: dict[str, DeviceAuthorization] = field(default_factory=dict)
    user_codes: dict[str, str] = field(default_factory=dict)  # user code -> device code

    def reset(self) -> None:
        """Forget every code, refresh token and device code (the emulator's reset)."""
        self.codes.clear()
        self.refresh_tokens.clear()
        self.devices.clear()
        self.user_codes.clear()

    def adopt(self, answer: dict[str, Any], family: str | None) -> None:
        """Record the family of the refresh token in a token ``answer``, if it has one."""
        token = answer.get("refresh_token")
        grant = self.refresh_tokens.get(token) if isinstance(token, str) else None
        if grant is not None and family is not None:
            grant.family = family

    def revoke_family(self, family: str) -> None:
        """Revoke every refresh token that descends from the authorization code ``family``."""
        self.refresh_tokens = {k: v for k, v in self.refresh_tokens.items() if v.family != family}

    def new_code(self, code: AuthCode, now: float) -> str:
        if len(self.codes) > _PURGE_ABOVE:
            self.codes = {k: v for k, v in self.codes.items() if v.expires_at > now}
        value = "1.A" + secrets.token_urlsafe(48)
        self.codes[value] = code
        return value

    def new_refresh_token(self, grant: RefreshGrant, now: float) -> str:
        if len(self.refresh_tokens) > _PURGE_ABOVE * 10:
            self.refresh_tokens = {
                k: v for k, v in self.refresh_tokens.items() if v.expires_at > now
            }
        value = "1.A" + secrets.token_urlsafe(96)
        self.refresh_tokens[value] = grant
        return value

    def new_device(self, **kwargs: Any) -> DeviceAuthorization:
        now = float(kwargs.pop("now"))
        if len(self.devices) > _PURGE_ABOVE:
            self.devices = {k: v for k, v in self.devices.items() if v.expires_at > now}
            self.user_codes = {u: d for u, d in self.user_codes.items() if d in self.devices}
        while True:
            raw = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
            user_code = f"{raw[:4]}-{raw[4:]}"
            if user_code not in self.user_codes:
                break
        device = DeviceAuthorization(
            device_code="DAQABAAEAAAD" + secrets.token_urlsafe(96),
            user_code=user_code,
            expires_at=now + DEVICE_CODE_LIFETIME,
            interval=DEVICE_CODE_INTERVAL,
            **kwargs,
        )
        self.devices[device.device_code] = device
        self.user_codes[user_code] = device.device_code
        return device

    def device_by_user_code(self, user_code: str) -> DeviceAuthorization | None:
        cleaned = user_code.strip().upper().replace("-", "").replace(" ", "")
        if len(cleaned) != 8:
            return None
        device_code = self.user_codes.get(f"{cleaned[:4]}-{cleaned[4:]}")
        return self.devices.get(device_code) if device_code else None
