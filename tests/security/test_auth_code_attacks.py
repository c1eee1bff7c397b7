"""Attacks on the authorization code flow at the emulated Entra ID: a replayed code revokes
what it issued (RFC 6749 §4.1.2), PKCE cannot be skipped or satisfied with the challenge, and a
redirect URI with a user part never receives a code."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

import pytest
import requests

from csp_emulator.server import Emulator
from tests.conftest import MakeEmulator
from tests.emulator.identity_helpers import (
    GRAPH_DEFAULT,
    LOOPBACK,
    NA_APP,
    NA_SECRET,
    PASSWORDS,
    aadsts,
    authority,
    parse_page,
    session,
    sign_in_for_code,
)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def code_for(emu: Emulator, **extra: str) -> str:
    params = sign_in_for_code(
        session(emu),
        f"{authority(emu, 'customer.com')}/oauth2/v2.0/authorize",
        {"client_id": NA_APP, "response_type": "code", "redirect_uri": LOOPBACK,
         "scope": f"{GRAPH_DEFAULT} offline_access", **extra},
        "agent@partner.com",
        PASSWORDS["agent"],
    )  # fmt: skip
    return params["code"]


def token_request(emu: Emulator, **form: str) -> requests.Response:
    return session(emu).post(
        f"{authority(emu, 'customer.com')}/oauth2/v2.0/token",
        data={"client_id": NA_APP, "client_secret": NA_SECRET, "scope": GRAPH_DEFAULT, **form},
    )


def redeem(emu: Emulator, code: str, **extra: str) -> requests.Response:
    form = {"redirect_uri": LOOPBACK, **extra}
    return token_request(emu, grant_type="authorization_code", code=code, **form)


def refresh(emu: Emulator, refresh_token: str) -> requests.Response:
    return token_request(emu, grant_type="refresh_token", refresh_token=refresh_token)


def test_a_replayed_code_revokes_the_refresh_tokens_it_issued(make_emulator: MakeEmulator) -> None:
    emu = make_emulator()
    code = code_for(emu)
    first = redeem(emu, code)
    assert first.status_code == 200, first.text
    issued = first.json()["refresh_token"]
    renewed = refresh(emu, issued)  # a refresh descends from the code too
    assert renewed.status_code == 200, renewed.text
    descendant = renewed.json()["refresh_token"]

    replay = redeem(emu, code)
    assert (replay.status_code, aadsts(replay.json())) == (400, 54005)

    for token in (issued, descendant):
        refused = refresh(emu, token)
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_grant"


def test_a_code_redeemed_once_keeps_its_refresh_token_working(make_emulator: MakeEmulator) -> None:
    emu = make_emulator()
    other_code = code_for(emu)
    issued = redeem(emu, code_for(emu)).json()["refresh_token"]
    # Another sign-in's code replayed revokes only its own family.
    assert redeem(emu, other_code).status_code == 200
    assert redeem(emu, other_code).status_code == 400
    assert refresh(emu, issued).status_code == 200


@pytest.mark.parametrize(
    ("verifier", "expected"),
    [
        pytest.param(None, 50148, id="no verifier"),
        pytest.param("challenge", 501481, id="the challenge itself as verifier"),
        pytest.param("another", 501481, id="another verifier"),
    ],
)
def test_pkce_cannot_be_skipped_or_answered_with_the_challenge(
    emulator: Emulator, verifier: str | None, expected: int
) -> None:
    _, challenge = pkce()
    code = code_for(emulator, code_challenge=challenge, code_challenge_method="S256")
    extra: dict[str, Any] = {}
    if verifier == "challenge":
        extra["code_verifier"] = challenge
    elif verifier == "another":
        extra["code_verifier"] = pkce()[0]
    refused = redeem(emulator, code, **extra)
    assert (refused.status_code, aadsts(refused.json())) == (400, expected)


def test_a_code_refused_for_pkce_cannot_be_redeemed_afterwards(emulator: Emulator) -> None:
    verifier, challenge = pkce()
    code = code_for(emulator, code_challenge=challenge, code_challenge_method="S256")
    assert redeem(emulator, code, code_verifier=verifier).status_code == 200
    again = redeem(emulator, code, code_verifier=verifier)
    assert aadsts(again.json()) == 54005


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://attacker@localhost:51234",
        "http://user:password@localhost:51234/",
        "http://localhost@attacker.example:51234/",
        "http://localhost:51234@attacker.example/",
    ],
)
def test_a_redirect_uri_with_a_user_part_never_gets_a_code(
    emulator: Emulator, redirect_uri: str
) -> None:
    page = session(emulator).get(
        f"{authority(emulator, 'customer.com')}/oauth2/v2.0/authorize",
        params={"client_id": NA_APP, "response_type": "code", "redirect_uri": redirect_uri,
                "scope": GRAPH_DEFAULT, "state": "s"},
        allow_redirects=False,
    )  # fmt: skip
    assert page.status_code == 400  # an error page, never a redirect to the URI
    assert parse_page(page.text).error_code == 50011


def test_a_code_is_redeemed_only_with_the_redirect_uri_it_was_issued_for(
    emulator: Emulator,
) -> None:
    code = code_for(emulator)
    refused = redeem(emulator, code, redirect_uri="http://attacker@localhost")
    assert aadsts(refused.json()) == 500112
