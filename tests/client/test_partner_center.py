"""The Partner Center client against the emulator, over real HTTPS: paging by continuation,
reads, idempotent creation, the error taxonomy and Retry-After."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import typer
from typer.testing import CliRunner

from cspgraph.config import Config, PartnerIdentity, config_from_data
from cspgraph.http.errors import BadRequestError, ErrorClass, TransientError
from cspgraph.http.sessions import requests_session
from cspgraph.identity import PartnerCenterTokens
from cspgraph.partner.center import (
    BillingAddress,
    CustomerNotFoundError,
    DomainInUseError,
    NewCustomer,
    NotYourCustomerError,
    PartnerCenterClient,
    partner_center_error,
)
from cspgraph.partner.onboarding import EmulatorClock
from cspgraph.partner.pacing import PartnerCenterPacer
from tests.client.partner_helpers import emulator_cloud
from tests.conftest import MakeEmulator

CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "app-secret-na"


def world(customers: int = 5, **settings: Any) -> dict[str, Any]:
    tenants: list[dict[str, Any]] = [
        {
            "domain": "partner.com",
            "kind": "partner",
            "region": "NA",
            "app": [
                {
                    "display_name": "Fabrikam CSP app",
                    "client_id": CLIENT_ID,
                    "client_secret": SECRET,
                    "admin_agents": True,
                    "application_permissions": ["User.Read.All"],
                }
            ],
        },
        {"domain": "partner2.com", "kind": "partner", "region": "NA"},
        {"domain": "other.com", "partner": "partner2.com"},
    ]
    tenants += [{"domain": f"c{i}.com", "partner": "partner.com"} for i in range(customers)]
    return {"settings": {"propagation_delay": "3m", **settings}, "tenant": tenants}


def identity_for(emu: Any) -> PartnerIdentity:
    return config_for(emu).identities["NA"]


def config_for(emu: Any) -> Config:
    """The NA partner's configuration for this emulator (tokens in memory)."""
    return config_from_data(
        {
            "emulator": str(emu.endpoints_file),
            "token_cache": "memory",
            "discovery_cache": "memory",
            "regions": {
                "NA": {
                    "partner_tenant": "partner.com",
                    "client_id": CLIENT_ID,
                    "client_secret_env": "PC_TEST_SECRET",
                }
            },
        },
        env={"PC_TEST_SECRET": SECRET},
    )


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests_session() as s:
        yield s


def client_for(emu: Any, session: requests.Session, **kwargs: Any) -> PartnerCenterClient:
    cloud = emulator_cloud(emu)
    session.verify = cloud.ca_bundle
    session.trust_env = False
    tokens = PartnerCenterTokens(identity_for(emu), cloud, session=session)
    return PartnerCenterClient(
        tokens, base_url=cloud.partner_center, ca_bundle=cloud.ca_bundle, **kwargs
    )


def new_customer(domain: str, **changes: Any) -> NewCustomer:
    address = BillingAddress(
        address_line1="1 Main St", city="Redmond", state="WA", postal_code="98052", country="US"
    )
    values: dict[str, Any] = {
        "domain": domain,
        "company_name": "New Co",
        "email": f"admin@{domain}",
        "address": address,
    }
    values.update(changes)
    return NewCustomer(**values)


async def test_lists_every_customer_following_the_continuation(
    make_emulator: MakeEmulator, session: requests.Session
) -> None:
    emu = make_emulator(world(customers=5))
    async with client_for(emu, session, page_size=2) as pc:
        pages = [page async for page in pc.pages()]
        customers = [c async for c in pc.list_customers()]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(c.domain for c in customers) == [f"c{i}.onmicrosoft.com" for i in range(5)]
    assert all(c.relationship == "reseller" and len(c.tenant_id) == 36 for c in customers)
    # three pages, twice: the next pages came from links.next with its continuation header
    assert pc.stats.requests == 6 and pc.stats.retries == 0


async def test_reads_a_customer_and_says_whose_it_is_not(
    make_emulator: MakeEmulator, session: requests.Session
) -> None:
    emu = make_emulator(world(customers=1))
    mine = emu.world.tenant("c0.com")
    theirs = emu.world.tenant("other.com")
    assert mine is not None and theirs is not None
    async with client_for(emu, session) as pc:
        customer = await pc.get_customer(mine.id)
        assert customer.tenant_id == mine.id and customer.company_name
        with pytest.raises(NotYourCustomerError) as not_ours:
            await pc.get_customer(theirs.id)
        with pytest.raises(CustomerNotFoundError) as unknown:
            await pc.get_customer(str(uuid.uuid4()))
        with pytest.raises(BadRequestError):
            await pc.get_customer("not-a-guid")
    assert not_ours.value.code == "20002" and not_ours.value.status == 403
    assert not_ours.value.error_class is ErrorClass.NEEDS_PERSON
    assert unknown.value.code == "60003" and unknown.value.status == 404


async def test_creates_once_per_domain(
    make_emulator: MakeEmulator, session: requests.Session
) -> None:
    emu = make_emulator(world(customers=1))
    request_id = str(uuid.uuid4())
    async with client_for(emu, session) as pc:
        first = await pc.create_customer(
            new_customer("newco.onmicrosoft.com"), request_id=request_id
        )
        replay = await pc.create_customer(
            new_customer("newco.onmicrosoft.com"), request_id=request_id
        )
        again = await pc.ensure_customer(new_customer("newco.onmicrosoft.com"))
        listed = [c async for c in pc.list_customers() if c.domain == "newco.onmicrosoft.com"]
    assert first.created and first.admin_username == "admin@newco.onmicrosoft.com"
    assert first.admin_password is not None and first.admin_password.reveal()
    assert first.admin_password.reveal() not in repr(first)  # a repr never shows the password
    assert replay.customer.tenant_id == first.customer.tenant_id
    assert not again.created and again.customer.tenant_id == first.customer.tenant_id
    assert len(listed) == 1
    assert sum(1 for t in emu.world.tenants.values() if "newco.onmicrosoft.com" in t.domains) == 1


async def test_a_domain_of_another_tenant_is_refused(
    make_emulator: MakeEmulator, session: requests.Session
) -> None:
    emu = make_emulator(world(customers=0))
    async with client_for(emu, session) as pc:
        with pytest.raises(DomainInUseError) as taken:
            await pc.create_customer(new_customer("other.com"))
    assert taken.value.status == 409 and taken.value.error_class is ErrorClass.BAD_REQUEST
    assert "already used by another tenant" in str(taken.value)


async def test_partner_center_input_errors_keep_their_code(
    make_emulator: MakeEmulator, session: requests.Session
) -> None:
    emu = make_emulator(world(customers=0))
    address = BillingAddress(address_line1="Rua 1", city="São Paulo", country="BR")
    async with client_for(emu, session) as pc:
        with pytest.raises(BadRequestError) as missing:
            await pc.create_customer(new_customer("br.onmicrosoft.com", address=address))
    assert missing.value.code == "600049" and missing.value.status == 400


async def test_retry_after_is_honoured(
    make_emulator: MakeEmulator, session: requests.Session
) -> None:
    # Partner Center allows 500 customer calls a minute per partner; scaled down to one here.
    emu = make_emulator(world(customers=1, throttling={"partner_center_scale": 0.002}))
    clock = await EmulatorClock.connect(emu.endpoints.control, ca_bundle=emu.endpoints.ca_bundle)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await clock.sleep(seconds)

    # The pacer (Partner Center's published 500 a minute) reads the world clock too: the 429's
    # pause is over once the client has slept its Retry-After there.
    pacer = PartnerCenterPacer(clock=clock.now)
    try:
        async with client_for(emu, session, sleep=sleep, pacer=pacer) as pc:
            first = [c async for c in pc.list_customers()]
            second = [c async for c in pc.list_customers()]
    finally:
        await clock.aclose()
    assert first == second and len(first) == 1
    assert pc.stats.throttled == 1 and pc.stats.retries == 1
    assert len(slept) == 1 and slept[0] == int(slept[0]) and slept[0] >= 1  # Partner Center's


async def test_partner_center_tokens_are_app_only_and_fresh_on_demand(
    make_emulator: MakeEmulator, session: requests.Session
) -> None:
    emu = make_emulator(world(customers=0))
    cloud = emulator_cloud(emu)
    session.verify, session.trust_env = cloud.ca_bundle, False
    tokens = PartnerCenterTokens(identity_for(emu), cloud, session=session)
    first = await tokens.get_token()
    cached = await tokens.get_token()
    fresh = await tokens.get_token(fresh=True)
    assert first == cached and fresh != first and tokens.token_requests == 2
    issued = [t for t in emu.world.issued_tokens if t.client_id == CLIENT_ID]
    assert {t.audience for t in issued} == {"https://api.partnercenter.microsoft.com"}
    assert {t.kind for t in issued} == {"app"}


def test_error_shapes_map_to_the_taxonomy() -> None:
    throttled = partner_center_error(
        429, {"statusCode": 429, "message": "Rate limit is exceeded."}, what="listing"
    )
    assert isinstance(throttled, TransientError) and throttled.code == "429"
    unavailable = partner_center_error(503, None, what="listing")
    assert isinstance(unavailable, TransientError) and "HTTP 503" in str(unavailable)
    mfa = partner_center_error(401, {"code": "400", "description": "MFA required."}, what="x")
    assert mfa.error_class is ErrorClass.NEEDS_PERSON and "multi-factor" in (mfa.reason or "")


def test_the_customers_commands(make_emulator: MakeEmulator, tmp_path: Path) -> None:
    from cspgraph.cli import partner_cmd

    emu = make_emulator(world(customers=2))
    config = tmp_path / "config.toml"
    config.write_text(
        f'emulator = "{emu.endpoints_file}"\ntoken_cache = "memory"\n'
        'discovery_cache = "memory"\n\n[regions.NA]\npartner_tenant = "partner.com"\n'
        f'client_id = "{CLIENT_ID}"\nclient_secret_env = "PC_CLI_SECRET"\n'
    )
    app = typer.Typer()
    app.add_typer(partner_cmd.customers_app, name="customers")
    env = {"PC_CLI_SECRET": SECRET, "CSPGRAPH_CONFIG": str(config)}
    runner = CliRunner()
    create = ["customers", "create", "--domain", "cli.onmicrosoft.com", "--name", "CLI Co"]

    # Off a terminal the password needs a file to go to; nothing is created without one.
    refused = runner.invoke(app, [*create, "--json"], env=env)
    assert refused.exit_code == 2 and "pass --password-file FILE" in refused.stderr
    kept = tmp_path / "cli-admin.txt"
    made = runner.invoke(app, [*create, "--json", "--password-file", str(kept)], env=env)
    assert made.exit_code == 0, made.output
    answer = json.loads(made.stdout)
    assert answer["created"] and answer["admin_username"] == "admin@cli.onmicrosoft.com"
    password = kept.read_text().strip()
    assert password and password not in made.output  # in the 0600 file only, not in the JSON

    # A replay creates nothing and brings no password: its (new) password file is never made,
    # and the first one is left as it was (an existing file is refused, never overwritten).
    unused = tmp_path / "cli-admin-again.txt"
    again = runner.invoke(app, [*create, "--json", "--password-file", str(unused)], env=env)
    assert again.exit_code == 0 and not json.loads(again.stdout)["created"]
    assert "password" not in again.output
    assert not unused.exists() and kept.read_text().strip() == password

    password_file = tmp_path / "pw"
    other = ["customers", "create", "--domain", "cli2.onmicrosoft.com", "--name", "Two"]
    runner.invoke(app, [*other, "--password-file", str(password_file)], env=env)
    assert password_file.stat().st_mode & 0o777 == 0o600 and password_file.read_text().strip()

    listed = runner.invoke(app, ["customers", "list", "--json"], env=env)
    rows = json.loads(listed.stdout)
    assert sorted(r["domain"] for r in rows) == [
        "c0.onmicrosoft.com", "c1.onmicrosoft.com", "cli.onmicrosoft.com", "cli2.onmicrosoft.com",
    ]  # fmt: skip
    assert {r["region"] for r in rows} == {"NA"}
