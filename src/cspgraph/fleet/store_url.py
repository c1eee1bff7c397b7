"""The store's URL as people may see it, and why a store did not open, in one line.

A PostgreSQL URL may carry its password (``postgresql+psycopg://sync:s3cret@db/fleet``, or
``?password=…``); ``--db`` and ``$CSPGRAPH_DB`` come back in messages (``store: …``, errors), a
cron log keeps them. Everything printed about a store goes through :func:`masked`; a driver's
error through :func:`open_error`, which also drops SQLAlchemy's multi-line decoration and removes
the password wherever a driver might have echoed it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"

# scheme://user:PASSWORD@host — the password runs to the last "@" before the path (an unencoded
# "@" in a password is a user's mistake SQLAlchemy tolerates; mask all of it then).
_USERINFO = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@?#]*:)(?P<password>[^/?#]*)@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd|pass)=)(?P<password>[^&#]*)", re.I)


def passwords(url: str) -> list[str]:
    """The password(s) ``url`` carries, as written and percent-decoded (empty: none)."""
    found: list[str] = []
    match = _USERINFO.match(url)
    if match and match["password"]:
        found.append(match["password"])
    found += [m["password"] for m in _QUERY_PASSWORD.finditer(url) if m["password"]]
    return [p for raw in found for p in {raw, unquote(raw)}]


def masked(url: str) -> str:
    """``url`` with any password replaced by ``***`` (a URL without one comes back as given)."""
    url = _USERINFO.sub(lambda m: f"{m['head']}{MASK}@" if m["password"] else m[0], url)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", url)


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's error, say) with every password of ``url`` masked."""
    for secret in sorted(passwords(url), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def open_error(url: str, exc: BaseException) -> str:
    """One line on why the store at ``url`` could not be opened or read, password-free."""
    orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
    cause = orig if isinstance(orig, BaseException) else exc
    if isinstance(cause, OSError) and cause.strerror:
        detail = f"{cause.strerror}: {cause.filename}" if cause.filename else cause.strerror
    else:
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        # SQLAlchemy appends "(Background on this error at: …)"; drivers add "DETAIL:" lines.
        detail = " ".join(line for line in lines if not line.startswith("(Background on"))
    detail = detail or type(cause).__name__
    return scrub(f"{masked(url)}: {detail}", url)
