"""Secrets out of log lines: tokens, passwords, client secrets, database passwords, codes.

Everything cspgraph writes to a log (``--verbose``, ``--log-file``) passes :func:`redact`, which
masks what looks like a secret (a JWT, a bearer token, ``client_secret=…``, ``"password": …``, a
URL's password or authorization code, an ``Authorization`` header) and every value the process
was told is secret (:func:`remember_secret`: the client secrets it loaded, the password in
``--db``, a new customer's admin password), wherever it appears. The library logs no secret on
purpose; this is the second line, for what a dependency or an error message might carry.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"

_known: set[str] = set()
_known_lock = threading.Lock()
_MIN_SECRET = 6  # shorter values would mask ordinary words; no real secret is that short

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # JWTs (access and id tokens, client assertions): header.payload.signature
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), MASK),
    # Authorization: Bearer …, Basic …
    (re.compile(r"(?i)\b(authorization['\"]?\s*[:=]\s*['\"]?)[^'\"\r\n,}]+"), rf"\g<1>{MASK}"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\g<1> {MASK}"),
    # key=value and "key": "value" for secret keys (forms, JSON, query strings)
    (
        re.compile(
            r"(?i)\b((?:client_secret|client_assertion|password|passwd|pwd|refresh_token|"
            r"access_token|id_token|assertion|secret|code_verifier)['\"]?\s*[:=]\s*['\"]?)"
            r"[^\s&'\",}]+"
        ),
        rf"\g<1>{MASK}",
    ),
    # an authorization code in a redirect URL (?code=… or &code=…), not Graph's error "code"
    (re.compile(r"([?&#]code=)[^&\s'\"]+"), rf"\g<1>{MASK}"),
    # scheme://user:password@host
    (re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)[^@/\s]+@"), rf"\g<1>{MASK}@"),
]


def remember_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears in a log line from now on."""
    if value and len(value) >= _MIN_SECRET:
        with _known_lock:
            _known.add(value)


def redact(text: str) -> str:
    """``text`` with every secret masked."""
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter whose every line (message, arguments, traceback) has gone through
    :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
