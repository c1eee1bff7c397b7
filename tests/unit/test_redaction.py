"""Log lines lose their secrets: every shape a secret takes in what cspgraph or a dependency
might log, and the values the process was told are secret."""

from __future__ import annotations

import logging

import pytest

from cspgraph.http.redaction import RedactingFormatter, redact, remember_secret

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (f"Authorization: Bearer {JWT}", JWT),
        ("authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        (f"sent {JWT} to graph", JWT),
        ("grant_type=client_credentials&client_secret=Qx7~abc.def&scope=x", "Qx7~abc.def"),
        ('{"refresh_token": "1.AXoA-opaque-refresh"}', "1.AXoA-opaque-refresh"),
        ("client_assertion=header.payload.sig", "header.payload.sig"),
        ('{"passwordProfile": {"password": "Hunter2-Hunter2"}}', "Hunter2-Hunter2"),
        ("GET http://localhost:5123/?code=0.AQ-auth-code&state=s", "0.AQ-auth-code"),
        ("store postgresql+psycopg://sync:pg-Pa55@db/fleet", "pg-Pa55"),
        ("code_verifier=verifier-value-123", "verifier-value-123"),
    ],
)
def test_a_secret_in_any_shape_is_masked(line: str, secret: str) -> None:
    shown = redact(line)
    assert secret not in shown and "***" in shown


def test_what_is_not_secret_is_kept() -> None:
    line = "GET /v1.0/users: 403 (graph request-id 5d0c) code=Authorization_RequestDenied"
    assert redact(line) == line


def test_a_remembered_secret_is_masked_wherever_it_appears() -> None:
    remember_secret("opaque-S3cret-from-a-file")
    remember_secret("abc")  # too short to be a secret: ordinary words stay readable
    assert redact("mismatch: opaque-S3cret-from-a-file!") == "mismatch: ***!"
    assert redact("abc def") == "abc def"


def test_the_formatter_redacts_arguments_and_tracebacks() -> None:
    formatter = RedactingFormatter("%(message)s")
    try:
        raise ValueError(f"token {JWT} refused")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "sent %s", (JWT,), sys.exc_info()
        )
    text = formatter.format(record)
    assert JWT not in text and text.count("***") == 2 and "Traceback" in text
