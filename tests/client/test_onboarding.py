"""Onboarding against the emulator over real HTTPS, on the emulator's world clock: the wait, the
denied first attempt, the retry with a new token, resuming, and the refusals."""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import typer
from typer.testing import CliRunner

from csp_emulator.server import Emulator
from cspgraph.config import Config, config_from_data
from cspgraph.graph.client import GraphClient
from cspgraph.http.errors import PropagatingError
from cspgraph.identity import PartnerCenterTokens, TokenProvider
from cspgraph.partner.center import (
    BillingAddress,
    DomainInUseError,
    NewCustomer,
    PartnerCenterClient,
)
from cspgraph.partner.onboarding import (
    EmulatorClock,
    OnboardingProgress,
    OnboardingRecord,
    OnboardingSettings,
    OnboardingStore,
    OnboardingTimeout,
    onboard_customer,
    young_tenant_policy,
    young_tenants,
)
from tests.client.partner_helpers import emulator_cloud
from tests.conftest import MakeEmulator, tls

CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "app-secret-na"
# World seconds: the relationship reaches a new customer 4 s after creation; onboarding waits 3 s
# before its first token, then 2 s between attempts, and gives up 20 s after creation.
SETTINGS = OnboardingSettings(initial_wait=3, retry_every=2, budget=20, progress_every=None)


def world(delay: str = "4s") -> dict[str, Any]:
    return {
        "settings": {"propagation_delay": delay},
        "tenant": [
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
                        "application_permissions": ["User.Read.All", "Organization.Read.All"],
                    }
                ],
            },
            {"domain": "customer.com", "partner": "partner.com", "generate": {"users": 3}},
            {"domain": "partner2.com", "kind": "partner", "region": "NA"},
            {"domain": "other.com", "partner": "partner2.com"},
        ],
    }


def config_for(emu: Emulator) -> Config:
    return config_from_data(
        {
            "emulator": str(emu.endpoints_file),
            "token_cache": "memory",
            "discovery_cache": "memory",
            "regions": {
                "NA": {
                    "partner_tenant": "partner.com",
                    "client_id": CLIENT_ID,
                    "client_secret_env": "ONBOARD_TEST_SECRET",
                }
            },
        },
        env={"ONBOARD_TEST_SECRET": SECRET},
    )


def new_customer(domain: str) -> NewCustomer:
    return NewCustomer(
        domain=domain,
        company_name="New Co",
        email=f"admin@{domain}",
        address=BillingAddress(address_line1="1 Main St", city="Redmond", country="US"),
    )


class RecordingTokens:
    """The token provider, remembering every token it handed out and whether it was fresh."""

    def __init__(self, inner: TokenProvider) -> None:
        self.inner = inner
        self.calls: list[tuple[str, bool, str]] = []

    async def get_token(self, tenant: str, *, fresh: bool = False) -> str:
        token = await self.inner.get_token(tenant, fresh=fresh)
        self.calls.append((tenant, fresh, token))
        return token


class Stop(Exception):
    """Stands for a crash or a Ctrl-C at a chosen point of the procedure."""


class Harness:
    def __init__(self, emu: Emulator, provider: TokenProvider, clock: EmulatorClock, tmp: Path):
        self.emu = emu
        self.provider = provider
        self.clock = clock
        self.store = OnboardingStore(tmp / "onboarding")
        self.cloud = emulator_cloud(emu)
        self.tokens = RecordingTokens(provider)
        self.events: list[OnboardingProgress] = []

    def partner_center(self) -> PartnerCenterClient:
        identity = self.provider.config.identities["NA"]
        pc_tokens = PartnerCenterTokens(identity, self.cloud, session=self.provider.session)
        return PartnerCenterClient(
            pc_tokens,
            base_url=self.cloud.partner_center,
            ca_bundle=self.cloud.ca_bundle,
            sleep=self.clock.sleep,
        )

    async def onboard(
        self,
        domain: str,
        *,
        settings: OnboardingSettings = SETTINGS,
        discovery: bool = True,
        stop_at: str | None = None,
    ) -> Any:
        def progress(event: OnboardingProgress) -> None:
            self.events.append(event)
            if stop_at is not None and event.state == stop_at:
                raise Stop(stop_at)

        async with self.partner_center() as pc:
            return await onboard_customer(
                new_customer(domain),
                region="NA",
                partner_center=pc,
                tokens=self.tokens,
                graph_url=self.cloud.graph,
                ca_bundle=self.cloud.ca_bundle,
                store=self.store,
                clock=self.clock,
                settings=settings,
                discovery=self.provider.discovery if discovery else None,
                on_progress=progress,
            )

    def tenants_with(self, domain: str) -> int:
        return sum(1 for t in self.emu.world.tenants.values() if domain in t.domains)


async def harness_for(emu: Emulator, tmp: Path) -> AsyncIterator[Harness]:
    clock = await EmulatorClock.connect(emu.endpoints.control, ca_bundle=emu.endpoints.ca_bundle)
    try:
        async with TokenProvider(config_for(emu), workers=2) as provider:
            yield Harness(emu, provider, clock, tmp)
    finally:
        await clock.aclose()


@pytest.fixture
async def h(make_emulator: MakeEmulator, tmp_path: Path) -> AsyncIterator[Harness]:
    async for harness in harness_for(make_emulator(world()), tmp_path):
        yield harness


async def graph_status(emu: Emulator, token: str, path: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls(emu))) as session,
        session.get(
            f"{emu.endpoints.graph}/v1.0{path}", headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        return response.status, await response.json()


async def test_onboarding_waits_then_retries_with_a_new_token(h: Harness) -> None:
    result = await h.onboard("newco.onmicrosoft.com")

    assert result.state == "done" and result.created and not result.resumed
    assert result.admin_username == "admin@newco.onmicrosoft.com"
    assert result.admin_password is not None and result.admin_password.reveal() not in repr(result)
    assert result.organization == "New Co" and result.users_seen == 1
    # the first attempt came after the initial wait and was denied; the retry, after retry_every
    # and with a newly acquired token, got in
    first, second = result.attempts
    assert result.created_at is not None
    assert first.at - result.created_at >= SETTINGS.initial_wait
    assert not first.ok and first.status == 403 and first.code == "Authorization_RequestDenied"
    assert second.ok and second.at - first.at >= SETTINGS.retry_every
    tenant = result.tenant_id
    issued = [t for t in h.emu.world.issued_tokens if t.tenant_id == tenant]
    assert min(t.issued_at for t in issued) - result.created_at >= SETTINGS.initial_wait - 0.1
    attempts = [(fresh, token) for t, fresh, token in h.tokens.calls if t == tenant and fresh]
    assert len(attempts) == 2 and attempts[0][1] != attempts[1][1]
    assert h.clock.advanced > 0  # world time was moved on, nothing slept

    state = json.loads(result.state_file.read_text())
    assert [s["state"] for s in state["history"]] == [
        "creating", "created", "waiting", "token_acquired", "verified", "done",
    ]  # fmt: skip
    assert state["tenant_id"] == tenant and "password" not in result.state_file.read_text()
    assert result.state_file.stat().st_mode & 0o777 == 0o600


async def test_the_first_token_would_never_have_worked(h: Harness) -> None:
    result = await h.onboard("newco.onmicrosoft.com")
    fresh = [token for t, f, token in h.tokens.calls if t == result.tenant_id and f]
    old, new = fresh[0], fresh[-1]
    # Propagation is long over by now, yet the token from before it stays without the grant.
    status, body = await graph_status(h.emu, old, "/users")
    assert status == 403 and body["error"]["code"] == "Authorization_RequestDenied"
    status, body = await graph_status(h.emu, new, "/users")
    assert status == 200 and body["value"]


async def test_an_interrupted_onboarding_resumes_without_a_second_customer(h: Harness) -> None:
    with pytest.raises(Stop):
        await h.onboard("newco.onmicrosoft.com", stop_at="created")
    saved = json.loads(h.store.path("newco.onmicrosoft.com").read_text())
    assert saved["state"] == "created" and saved["tenant_id"]

    result = await h.onboard("newco.onmicrosoft.com")
    assert result.state == "done" and result.resumed and not result.created
    assert result.tenant_id == saved["tenant_id"]
    assert h.tenants_with("newco.onmicrosoft.com") == 1
    async with h.partner_center() as pc:
        listed = [c async for c in pc.list_customers() if c.domain == "newco.onmicrosoft.com"]
    assert len(listed) == 1

    again = await h.onboard("newco.onmicrosoft.com")  # finished: nothing more to do
    assert again.state == "done" and again.attempts == result.attempts


async def test_an_interruption_while_waiting_keeps_the_schedule(h: Harness) -> None:
    with pytest.raises(Stop):
        await h.onboard("newco.onmicrosoft.com", stop_at="waiting")
    result = await h.onboard("newco.onmicrosoft.com")
    assert result.state == "done" and h.tenants_with("newco.onmicrosoft.com") == 1
    assert result.created_at is not None
    assert result.attempts[0].at - result.created_at >= SETTINGS.initial_wait


async def test_a_create_cut_short_is_repeated_with_the_same_request_id(h: Harness) -> None:
    with pytest.raises(Stop):  # stopped before the create request was sent
        await h.onboard("newco.onmicrosoft.com", stop_at="creating")
    result = await h.onboard("newco.onmicrosoft.com")
    assert result.state == "done" and result.created and result.resumed
    assert h.tenants_with("newco.onmicrosoft.com") == 1


async def test_a_create_whose_answer_was_lost_is_replayed(h: Harness) -> None:
    with pytest.raises(Stop):
        await h.onboard("newco.onmicrosoft.com", stop_at="creating")
    saved = json.loads(h.store.path("newco.onmicrosoft.com").read_text())
    async with h.partner_center() as pc:  # the request went through; its answer never came back
        lost = await pc.create_customer(
            new_customer("newco.onmicrosoft.com"), request_id=saved["request_id"]
        )
    result = await h.onboard("newco.onmicrosoft.com")
    assert result.state == "done" and result.tenant_id == lost.customer.tenant_id
    assert h.tenants_with("newco.onmicrosoft.com") == 1
    # Partner Center replayed its first answer, the new admin's password included
    assert result.admin_password is not None and lost.admin_password is not None
    assert result.admin_password.reveal() == lost.admin_password.reveal()


async def test_losing_the_state_file_after_creating_finds_the_customer_again(h: Harness) -> None:
    with pytest.raises(Stop):
        await h.onboard("newco.onmicrosoft.com", stop_at="created")
    h.store.forget("newco.onmicrosoft.com")
    result = await h.onboard("newco.onmicrosoft.com")
    assert result.state == "done" and result.adopted and not result.created
    assert h.tenants_with("newco.onmicrosoft.com") == 1


@pytest.mark.parametrize("discovery", [True, False], ids=["discovery", "partner-center-list"])
async def test_a_domain_that_is_not_yours_is_refused(h: Harness, discovery: bool) -> None:
    before = len(h.emu.world.tenants)
    with pytest.raises(DomainInUseError) as refused:
        await h.onboard("other.com", discovery=discovery)
    assert "other.com already belongs to" in str(refused.value)
    assert "not a customer of yours" in str(refused.value)
    assert len(h.emu.world.tenants) == before
    assert not h.store.path("other.com").exists()


async def test_an_existing_customer_is_adopted_without_waiting(h: Harness) -> None:
    result = await h.onboard("customer.com")
    assert result.state == "done" and result.adopted and not result.created
    assert len(result.attempts) == 1 and result.attempts[0].ok
    assert h.clock.advanced == 0
    assert result.users_seen == 4  # three generated users and the admin


async def test_giving_up_says_what_was_tried(make_emulator: MakeEmulator, tmp_path: Path) -> None:
    async for h in harness_for(make_emulator(world(delay="10m")), tmp_path):
        settings = OnboardingSettings(initial_wait=3, retry_every=2, budget=10, progress_every=None)
        with pytest.raises(OnboardingTimeout) as gave_up:
            await h.onboard("slow.onmicrosoft.com", settings=settings)
        error = gave_up.value
        assert len(error.attempts) == 4 and not any(a.ok for a in error.attempts)
        text = str(error)
        assert "Tried 4 time(s), each with a newly acquired token" in text
        assert "+3s, +5s, +7s, +9s" in text and "Authorization_RequestDenied (HTTP 403)" in text
        saved = json.loads(h.store.path("slow.onmicrosoft.com").read_text())
        assert saved["state"] == "waiting" and len(saved["attempts"]) == 4


async def test_the_policy_protects_any_call_to_a_young_tenant(h: Harness) -> None:
    async with h.partner_center() as pc:
        created = await pc.create_customer(new_customer("young.onmicrosoft.com"))
    tenant = created.customer.tenant_id
    waits: list[float] = []
    policy = young_tenant_policy(SETTINGS, on_wait=lambda error, wait: waits.append(wait))
    async with GraphClient(
        h.tokens,
        graph_url=h.cloud.graph,
        ca_bundle=h.cloud.ca_bundle,
        sleep=h.clock.sleep,
        propagation=policy,
    ) as graph:
        users = await graph.get(tenant, "/users")
    # denied at once (created a moment ago), then after 3 s (the relationship needs 4), then in
    assert users["value"] and waits == [SETTINGS.initial_wait, SETTINGS.retry_every]
    # every retry came with a newly acquired token
    assert [fresh for t, fresh, _ in h.tokens.calls if t == tenant] == [False, True, True]


async def test_the_policy_can_be_limited_to_tenants_onboarded_moments_ago(h: Harness) -> None:
    async with h.partner_center() as pc:
        ours = await pc.create_customer(new_customer("youngco.onmicrosoft.com"))
        other = await pc.create_customer(new_customer("olderco.onmicrosoft.com"))
    # Only "ours" went through onboarding here, so only it is known to be young.
    h.store.save(
        OnboardingRecord(
            domain="youngco.onmicrosoft.com",
            company_name="Ours",
            region="NA",
            tenant_id=ours.customer.tenant_id,
            created_at=h.clock.now(),
        )
    )
    waits: list[float] = []
    policy = young_tenant_policy(
        SETTINGS,
        on_wait=lambda error, wait: waits.append(wait),
        young=young_tenants(h.store, clock=h.clock),
    )
    async with GraphClient(
        h.tokens,
        graph_url=h.cloud.graph,
        ca_bundle=h.cloud.ca_bundle,
        sleep=h.clock.sleep,
        propagation=policy,
    ) as graph:
        with pytest.raises(PropagatingError):
            await graph.get(other.customer.tenant_id, "/users")
        assert waits == []  # not young by our records: the denial is raised at once
        users = await graph.get(ours.customer.tenant_id, "/users")
    assert users["value"] and waits == [SETTINGS.initial_wait, SETTINGS.retry_every]


def onboard_cli(make_emulator: MakeEmulator, tmp_path: Path) -> tuple[typer.Typer, dict[str, str]]:
    """`onboard` and `customers` as the CLI has them, configured for a fresh emulator."""
    from cspgraph.cli import partner_cmd

    emu = make_emulator(world())
    config = tmp_path / "config.toml"
    config.write_text(
        f'emulator = "{emu.endpoints_file}"\ntoken_cache = "memory"\n'
        'discovery_cache = "memory"\n\n[regions.NA]\npartner_tenant = "partner.com"\n'
        f'client_id = "{CLIENT_ID}"\nclient_secret_env = "ONBOARD_CLI_SECRET"\n'
    )
    app = typer.Typer()
    app.command("onboard")(partner_cmd.onboard)
    app.add_typer(partner_cmd.customers_app, name="customers")
    env = {"ONBOARD_CLI_SECRET": SECRET, "CSPGRAPH_CONFIG": str(config)}
    return app, env


def test_the_onboard_command(make_emulator: MakeEmulator, tmp_path: Path) -> None:
    app, env = onboard_cli(make_emulator, tmp_path)
    runner = CliRunner()
    args = ["onboard", "--domain", "cli.onmicrosoft.com", "--name", "CLI Co", "--json",
            "--emulator-clock", "--initial-wait", "3s", "--retry-every", "2s", "--budget", "1m",
            "--state-dir", str(tmp_path / "state"),
            "--password-file", str(tmp_path / "pw")]  # fmt: skip
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["state"] == "done" and out["created"] and len(out["attempts"]) == 2
    password = (tmp_path / "pw").read_text().strip()
    assert password and password not in result.output  # in the 0600 file, not on a pipe

    listed = runner.invoke(app, ["customers", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    domains = {row["domain"] for row in json.loads(listed.stdout)}
    assert {"cli.onmicrosoft.com", "customer.onmicrosoft.com"} <= domains

    again = [*args[:2], "other.com", *args[3:-1], str(tmp_path / "pw2")]  # a new password file
    taken = runner.invoke(app, again, env=env)
    # bad input: the domain is taken (bad_request; it exited 1 before one exit-code table)
    assert taken.exit_code == 2 and "not a customer of yours" in taken.output


def test_the_new_admins_password_is_kept_when_the_onboarding_stops_before_its_end(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    """The password exists only in the run that created the customer: written at creation, it
    survives a budget stop (and a Ctrl-C) in the waiting that follows."""
    app, env = onboard_cli(make_emulator, tmp_path)
    password_file = tmp_path / "pw"
    args = ["onboard", "--domain", "stopped.onmicrosoft.com", "--name", "Stopped Co", "--json",
            "--emulator-clock", "--initial-wait", "3s", "--retry-every", "2s", "--budget", "1s",
            "--state-dir", str(tmp_path / "state"),
            "--password-file", str(password_file)]  # fmt: skip
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 3, result.output  # the budget ran out while waiting
    password = password_file.read_text().strip()
    assert password and password not in result.output
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600


def test_a_stopped_onboarding_resumes_with_the_same_command_line_off_a_terminal(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    """Past the create no password is made, so the same command (its --password-file now
    exists), or one without --password-file off a terminal (cron), resumes it."""
    app, env = onboard_cli(make_emulator, tmp_path)
    password_file = tmp_path / "pw"
    args = ["onboard", "--domain", "resumed.onmicrosoft.com", "--name", "Resumed Co", "--json",
            "--emulator-clock", "--initial-wait", "3s", "--retry-every", "2s", "--budget", "1s",
            "--state-dir", str(tmp_path / "state"),
            "--password-file", str(password_file)]  # fmt: skip
    assert CliRunner().invoke(app, args, env=env).exit_code == 3  # stopped while waiting
    password = password_file.read_text()
    longer = [*args, "--budget", "1m"]  # the same, with more budget (the last one counts)
    again = CliRunner().invoke(app, longer, env=env)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["state"] == "done"
    assert password_file.read_text() == password  # the new admin's password, untouched
    bare_args = [a for a in longer if a not in ("--password-file", str(password_file))]
    bare = CliRunner().invoke(app, bare_args, env=env)  # no --password-file, not a terminal
    assert bare.exit_code == 0, bare.output


def test_an_existing_password_file_is_refused_before_anything_is_created(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    app, env = onboard_cli(make_emulator, tmp_path)
    important = tmp_path / "important.txt"
    important.write_text("keep me\n")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me too\n")
    (tmp_path / "link").symlink_to(victim)
    for target in (important, tmp_path / "link"):
        result = CliRunner().invoke(
            app,
            [
                "onboard",
                "--domain",
                "careful.onmicrosoft.com",
                "--name",
                "Careful Co",
                "--state-dir",
                str(tmp_path / "state"),
                "--password-file",
                str(target),
            ],
            env=env,
        )
        assert result.exit_code == 2, result.output
        assert "exists; name a new file (nothing is overwritten)" in result.output
    assert important.read_text() == "keep me\n" and victim.read_text() == "keep me too\n"
    listed = CliRunner().invoke(app, ["customers", "list", "--json"], env=env)
    assert "careful.onmicrosoft.com" not in listed.stdout
