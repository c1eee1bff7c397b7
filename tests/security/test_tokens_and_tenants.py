"""Forged tokens and one tenant's token against another tenant's data, on Graph and Partner
Center: every forgery is a 401, and tenant A's token never reads or changes tenant B's objects,
whether it names B's ids or replays B's nextLinks and delta links."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from csp_emulator.identity.tokens import SigningKeys
from csp_emulator.server import Emulator
from tests.conftest import tls
from tests.emulator.graph_tokens import (
    CUSTOMER_DOMAIN,
    app_token,
    graph_client,
    graph_emulator,
    tenant_of,
)

OTHER_DOMAIN = "other.com"
WRITE_ROLES = ("User.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All")


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with graph_emulator(tmp_path_factory.mktemp("security-tokens")) as emulator:
        yield emulator


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    head, body, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(head))),
        json.loads(base64.urlsafe_b64decode(pad(body))),
        signature,
    )


NA_APP = "6731de76-14a6-49ae-97bc-6eba6914391e"  # graph_world's partner app
NA_SECRET = "app-secret-na"
GRAPH = "https://graph.microsoft.com/.default"
PARTNER_CENTER = "https://api.partnercenter.microsoft.com/.default"


def issued(emu: Emulator, tenant: str, scope: str) -> str:
    """A token from the emulator's token endpoint (client credentials), as the client gets it."""
    with httpx.Client(verify=tls(emu)) as http:
        response = http.post(
            f"{emu.endpoints.authority_host}/{tenant}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "client_id": NA_APP,
                  "client_secret": NA_SECRET, "scope": scope},
        )  # fmt: skip
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def encode(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"


# Each forgery starts from a genuine token the emulator issued, so only the forgery is wrong.
def alg_none(emu: Emulator, genuine: str) -> str:
    header, claims, _ = parts(genuine)
    return encode({**header, "alg": "none"}, claims) + "."


def wrong_key(emu: Emulator, genuine: str) -> str:
    _, claims, _ = parts(genuine)
    return SigningKeys().sign(claims)  # the same claims, signed with a key of its own


def hs256_with_the_public_key(emu: Emulator, genuine: str) -> str:
    header, claims, _ = parts(genuine)
    public = emu.ctx.keys.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signed = encode({**header, "alg": "HS256"}, claims)
    return f"{signed}.{b64(hmac.new(public, signed.encode(), hashlib.sha256).digest())}"


def edited(change: Callable[[Emulator, dict[str, Any]], None]) -> Callable[[Emulator, str], str]:
    def forge(emu: Emulator, genuine: str) -> str:
        head, _, signature = genuine.split(".")
        claims = parts(genuine)[1]
        change(emu, claims)
        return f"{head}.{b64(json.dumps(claims).encode())}.{signature}"

    return forge


def _more_roles(emu: Emulator, claims: dict[str, Any]) -> None:
    claims["roles"] = [*claims.get("roles", []), "Directory.ReadWrite.All"]


def _other_tenant(emu: Emulator, claims: dict[str, Any]) -> None:
    claims["tid"] = tenant_of(emu, OTHER_DOMAIN).id


def _longer_life(emu: Emulator, claims: dict[str, Any]) -> None:
    claims["exp"] = int(claims["exp"]) + 86400


def expired(emu: Emulator, genuine: str) -> str:
    _, claims, _ = parts(genuine)
    now = int(emu.world.clock.now())
    return emu.ctx.keys.sign({**claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 1})


def not_yet_valid(emu: Emulator, genuine: str) -> str:
    _, claims, _ = parts(genuine)
    now = int(emu.world.clock.now())
    return emu.ctx.keys.sign({**claims, "iat": now + 3600, "nbf": now + 3600, "exp": now + 7200})


def no_signature(emu: Emulator, genuine: str) -> str:
    return genuine.rsplit(".", 1)[0] + "."


FORGERIES: dict[str, Callable[[Emulator, str], str]] = {
    "alg none": alg_none,
    "signed with another key": wrong_key,
    "HS256 keyed with the public key": hs256_with_the_public_key,
    "roles added after signing": edited(_more_roles),
    "tenant changed after signing": edited(_other_tenant),
    "lifetime stretched after signing": edited(_longer_life),
    "expired": expired,
    "not yet valid": not_yet_valid,
    "signature removed": no_signature,
}


def graph_status(emu: Emulator, token: str) -> int:
    with graph_client(emu, token) as graph:
        response = graph.get("/v1.0/users")
    if response.status_code == 401:
        assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    return response.status_code


def partner_center_status(emu: Emulator, token: str) -> int:
    with httpx.Client(base_url=emu.endpoints.partner_center, verify=tls(emu)) as pc:
        response = pc.get(
            "/v1/customers",
            params={"size": 1},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )
    return response.status_code


def test_the_genuine_tokens_the_forgeries_start_from_are_served(emu: Emulator) -> None:
    assert graph_status(emu, issued(emu, CUSTOMER_DOMAIN, GRAPH)) == 200
    assert partner_center_status(emu, issued(emu, "partner.com", PARTNER_CENTER)) == 200


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_forged_token_is_401_on_graph(
    emu: Emulator, forge: Callable[[Emulator, str], str]
) -> None:
    assert graph_status(emu, forge(emu, issued(emu, CUSTOMER_DOMAIN, GRAPH))) == 401


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_forged_token_is_401_at_partner_center(
    emu: Emulator, forge: Callable[[Emulator, str], str]
) -> None:
    token = forge(emu, issued(emu, "partner.com", PARTNER_CENTER))
    assert partner_center_status(emu, token) == 401


# -- tenant A's token against tenant B -------------------------------------------------------------


def ids_of(emu: Emulator, domain: str, resource: str) -> list[str]:
    return list(tenant_of(emu, domain).objects[resource])


def test_a_token_never_reads_or_changes_another_tenants_objects(emu: Emulator) -> None:
    theirs = ids_of(emu, OTHER_DOMAIN, "users")[0]
    before = dict(tenant_of(emu, OTHER_DOMAIN).objects["users"][theirs])
    token = app_token(emu, CUSTOMER_DOMAIN, roles=WRITE_ROLES)
    with graph_client(emu, token) as graph:
        assert graph.get(f"/v1.0/users/{theirs}").status_code == 404
        assert graph.patch(f"/v1.0/users/{theirs}", json={"jobTitle": "owned"}).status_code == 404
        assert graph.delete(f"/v1.0/users/{theirs}").status_code == 404
        assert graph.get(f"/v1.0/directoryObjects/{theirs}").status_code == 404
        batch = graph.post(
            "/v1.0/$batch",
            json={"requests": [{"id": "1", "method": "GET", "url": f"/users/{theirs}"}]},
        )
        assert [r["status"] for r in batch.json()["responses"]] == [404]
    assert tenant_of(emu, OTHER_DOMAIN).objects["users"][theirs] == before


def link_of(emu: Emulator, domain: str, path: str, key: str) -> str:
    """A nextLink or deltaLink that tenant ``domain``'s own token was given."""
    with graph_client(emu, app_token(emu, domain)) as graph:
        url: str | None = path
        while url is not None:
            body = graph.get(url).json()
            if key in body:
                return str(body[key])
            url = body.get("@odata.nextLink")
    raise AssertionError(f"no {key} for {domain} {path}")


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/v1.0/users?$top=2", "@odata.nextLink"),
        ("/v1.0/users/delta?$top=2", "@odata.nextLink"),
        ("/v1.0/users/delta", "@odata.deltaLink"),
        ("/v1.0/groups/delta", "@odata.deltaLink"),
    ],
)
def test_another_tenants_next_and_delta_links_yield_nothing_of_theirs(
    emu: Emulator, path: str, key: str
) -> None:
    # customer.com's link, replayed with other.com's token: never customer.com's objects.
    link = link_of(emu, CUSTOMER_DOMAIN, path, key)
    theirs = set(ids_of(emu, CUSTOMER_DOMAIN, "users")) | set(
        ids_of(emu, CUSTOMER_DOMAIN, "groups")
    )
    with graph_client(emu, app_token(emu, OTHER_DOMAIN)) as graph:
        response = graph.get(link)
    if response.status_code == 200:
        got = {item.get("id") for item in response.json().get("value", [])}
        assert not got & theirs
    else:
        assert response.status_code in (400, 401, 403, 404), response.text
