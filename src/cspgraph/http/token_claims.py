"""What an access token says about itself: its claims, read without checking the signature.

Only ever used to *explain* a refusal (which permissions the token carried, which roles), never
to trust anything: the token came from cspgraph's own cache or token request. Nothing here logs
or returns the token itself.
"""

from __future__ import annotations

import base64
import json
from typing import Any


def claims(token: str | None) -> dict[str, Any] | None:
    """The payload of a JWT access token; None when it is not one."""
    if not token:
        return None
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def roles(token: str | None) -> list[str] | None:
    """The ``roles`` claim (application permissions); None when absent or unreadable: Entra
    leaves it out of a token without application permissions."""
    found = (claims(token) or {}).get("roles")
    return [str(r) for r in found] if isinstance(found, list) else None


def scopes(token: str | None) -> list[str] | None:
    """The ``scp`` claim (delegated permissions), split; None when absent or unreadable."""
    found = (claims(token) or {}).get("scp")
    return str(found).split() if isinstance(found, str) else None
