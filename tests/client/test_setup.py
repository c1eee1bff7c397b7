"""Setting up the partner-managed app against the emulator over real HTTPS: from a partner tenant
with nothing but an administrator to an app in AdminAgents that reads a customer's users."""

from __future__ import annotations

import asyncio
import json
import logging
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msal
import pytest
import requests
import typer
from typer.testing import CliRunner

from csp_emulator.server import Emulator
from cspgraph.config import load_config
from cspgraph.graph import scope
from cspgraph.graph.client import GraphClient
from cspgraph.graph.scope import CSP_RULE
from cspgraph.http import token_claims
from cspgraph.http.errors import CspScopeError, NeedsPersonError
from cspgraph.http.sessions import requests_session
from cspgraph.partner.auth import AdminSignIn, DeviceCodePrompt
from cspgraph.partner.setup import (
    SetupOptions,
    SetupReport,
    StepStatus,
    plan_permissions,
    setup_partner_app,
)
from tests.client.partner_helpers import emulator_cloud, sign_in_browser, write_config
from tests.conftest import MakeEmulator, tls

ADMIN, ADMIN_PASSWORD = "admin@partner.com", "P@ss-admin"
STEPS = ["application", "permissions", "credential", "service principal", "admin consent",
         "AdminAgents", "configuration"]  # fmt: skip
# What the app will do in customers: the directory and Intune reads of the sync job. (Not
# `--for sync` itself: that set grows with the job, and the emulator's Graph must publish every
# delegated permission in it; test_least_privilege_for_the_sync_job covers the set.)
OPERATIONS = [
    "GET /organization",
    "GET /users",
    "GET /groups/{id}/members",
    "GET /devices",
    "GET /deviceManagement/managedDevices",
]

EMPTY_PARTNER = {
    "settings": {"propagation_delay": "3m"},
    "tenant": [
        {
            "domain": "partner.com",
            "kind": "partner",
            "region": "NA",
            "user": [
                {"upn": ADMIN, "password": ADMIN_PASSWORD, "roles": ["Global Administrator"]},
                {"upn": "sales@partner.com", "password": "P@ss-sales"},
            ],
        },
        {"domain": "customer.com", "partner": "partner.com", "generate": {"users": 6, "seed": 3}},
    ],
}


class Admin:
    """A signed-in partner administrator and a Graph client acting as them."""

    def __init__(self, emu: Emulator, user: str = ADMIN, password: str = ADMIN_PASSWORD) -> None:
        self.emu = emu
        self.cloud = emulator_cloud(emu)
        self.session = requests_session(self.cloud.ca_bundle)
        self.sign_in = AdminSignIn(self.cloud, "partner.com", session=self.session)
        self.user, self.password = user, password

    async def login(self) -> None:
        browser = sign_in_browser(self.emu, self.user, self.password)
        account = await asyncio.to_thread(self.sign_in.sign_in_interactive, open_browser=browser)
        assert account.username == self.user

    async def setup(self, config: Path, **options: Any) -> SetupReport:
        options.setdefault("permissions", plan_permissions(operations=OPERATIONS))
        async with GraphClient(
            self.sign_in, graph_url=self.cloud.graph, ca_bundle=self.cloud.ca_bundle
        ) as graph:
            return await setup_partner_app(
                graph,
                "partner.com",
                region="NA",
                config_path=config,
                options=SetupOptions(**options),
            )


@pytest.fixture
async def admin(make_emulator: MakeEmulator) -> AsyncIterator[Admin]:
    admin = Admin(make_emulator(EMPTY_PARTNER))
    await admin.login()
    yield admin
    admin.session.close()


def statuses(report: SetupReport) -> dict[str, StepStatus]:
    return {step.name: step.status for step in report.steps}


async def app_token(emu: Emulator, config: Path, tenant: str = "customer.com") -> str:
    """A new app-only token of the app set-up configured, for ``tenant``, from MSAL."""
    identity = load_config(config).identities["NA"]
    session = requests.Session()
    session.verify, session.trust_env = emu.endpoints.ca_bundle, False
    app = msal.ConfidentialClientApplication(
        identity.client_id,
        client_credential=identity.credential().for_msal(),
        authority=f"{emu.endpoints.authority_host}/{tenant}",
        instance_discovery=False,
        http_client=session,
    )
    result = await asyncio.to_thread(
        app.acquire_token_for_client, ["https://graph.microsoft.com/.default"]
    )
    assert "access_token" in result, result
    return str(result["access_token"])


async def customer_users(emu: Emulator, config: Path) -> list[dict[str, Any]]:
    """What the new app sees in the customer: an app-only token, then GET /v1.0/users."""
    token = await app_token(emu, config)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls(emu))) as http,
        http.get(
            f"{emu.endpoints.graph}/v1.0/users",
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        body = await response.json()
    users: list[dict[str, Any]] = body["value"]
    return users


async def test_from_an_empty_partner_tenant_to_a_working_app(
    admin: Admin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emu = admin.emu
    config = write_config(tmp_path / "config.toml", emu)

    first = await admin.setup(config)
    assert [s.name for s in first.steps] == STEPS
    assert set(statuses(first).values()) == {StepStatus.CHANGED}, first.steps
    client_id = first.client_id
    assert client_id is not None and first.service_principal_id is not None

    partner = emu.world.tenant("partner.com")
    assert partner is not None
    app = partner.application_by_app_id(client_id)
    assert app is not None and app["signInAudience"] == "AzureADMultipleOrgs"
    assert "http://localhost" in app["web"]["redirectUris"]
    admin_agents = partner.group_by_name("AdminAgents")
    assert admin_agents is not None and first.service_principal_id in admin_agents["_members"]
    # least privilege for those operations: five application and five delegated permissions
    assert first.permissions.application == (
        "Device.Read.All",
        "DeviceManagementManagedDevices.Read.All",
        "GroupMember.Read.All",
        "Organization.Read.All",
        "User.Read.All",
    )
    assert first.permissions.delegated == first.permissions.application
    granted = [a["type"] for e in app["requiredResourceAccess"] for a in e["resourceAccess"]]
    assert sorted(granted) == ["Role"] * 5 + ["Scope"] * 5

    # the configuration gained the region; the certificate's PEM (private key and certificate)
    # sits in a file only its owner reads
    data = tomllib.loads(config.read_text())
    assert data["emulator"] == str(emu.endpoints_file)  # other settings are kept
    assert data["regions"]["NA"] == {
        "partner_tenant": "partner.com",
        "client_id": client_id,
        "certificate_file": "na-app.pem",
    }
    pem = tmp_path / "na-app.pem"
    assert pem.stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" in pem.read_text() and "CERTIFICATE" in pem.read_text()
    assert [c["type"] for c in app["keyCredentials"]] == ["AsymmetricX509Cert"]
    assert load_config(config).identities["NA"].credential().kind == "certificate"

    second = await admin.setup(config)
    assert set(statuses(second).values()) == {StepStatus.ALREADY_DONE}, second.steps
    assert not second.changed and second.client_id == client_id
    assert [a["appId"] for a in partner.objects["applications"].values()] == [client_id]

    users = await customer_users(emu, config)
    customer = emu.world.tenant("customer.com")
    assert customer is not None and len(users) == len(customer.objects["users"])

    # neither the private key nor the administrator's token was ever logged
    key_line = pem.read_text().splitlines()[1]
    admin_token = admin.sign_in.get_token_sync("partner.com")
    assert key_line not in caplog.text and admin_token not in caplog.text
    assert "setup application: changed" in caplog.text  # (logging did happen)


async def test_a_client_secret_in_a_private_file(
    admin: Admin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = write_config(tmp_path / "config.toml", admin.emu)
    first = await admin.setup(config, credential="secret")
    assert statuses(first)["credential"] is StepStatus.CHANGED
    assert tomllib.loads(config.read_text())["regions"]["NA"]["client_secret_file"] == (
        "na-app.secret"
    )
    secret_file = tmp_path / "na-app.secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    secret = secret_file.read_text().strip()
    assert secret not in json.dumps(first.as_dict()) and secret not in caplog.text
    second = await admin.setup(config, credential="secret")
    assert statuses(second)["credential"] is StepStatus.ALREADY_DONE
    assert len(await customer_users(admin.emu, config)) > 0


async def test_a_client_secret_shown_once_for_an_environment_variable(
    admin: Admin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "config.toml", admin.emu)
    shown: list[tuple[str, str]] = []
    async with GraphClient(
        admin.sign_in, graph_url=admin.cloud.graph, ca_bundle=admin.cloud.ca_bundle
    ) as graph:

        async def run() -> SetupReport:
            return await setup_partner_app(
                graph,
                "partner.com",
                region="NA",
                config_path=config,
                options=SetupOptions(
                    permissions=plan_permissions(operations=OPERATIONS),
                    credential="secret",
                    secret_storage="env",
                    secret_env="CSPGRAPH_SECRET_NA",
                ),
                show_secret=lambda name, value: shown.append((name, value)),
            )

        first = await run()
        assert len(shown) == 1 and shown[0][0] == "CSPGRAPH_SECRET_NA"
        region = tomllib.loads(config.read_text())["regions"]["NA"]
        assert region["client_secret_env"] == "CSPGRAPH_SECRET_NA"
        assert statuses(first)["credential"] is StepStatus.CHANGED
        monkeypatch.setenv("CSPGRAPH_SECRET_NA", shown[0][1])
        second = await run()
    assert statuses(second)["credential"] is StepStatus.ALREADY_DONE and len(shown) == 1
    assert len(await customer_users(admin.emu, config)) > 0


async def test_a_lost_certificate_is_replaced_and_the_others_kept(
    admin: Admin, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config.toml", admin.emu)
    first = await admin.setup(config)
    (tmp_path / "na-app.pem").unlink()
    second = await admin.setup(config)
    assert statuses(second)["credential"] is StepStatus.CHANGED
    assert "created and uploaded" in second.steps[2].detail
    partner = admin.emu.world.tenant("partner.com")
    assert partner is not None and first.client_id is not None
    app = partner.application_by_app_id(first.client_id)
    assert app is not None and len(app["keyCredentials"]) == 2
    assert len(await customer_users(admin.emu, config)) > 0


async def test_a_dry_run_changes_nothing(admin: Admin, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.toml", admin.emu)
    before = config.read_text()
    partner = admin.emu.world.tenant("partner.com")
    assert partner is not None
    apps = len(partner.objects["applications"])

    report = await admin.setup(config, dry_run=True)
    assert [s.name for s in report.steps] == STEPS
    assert set(statuses(report).values()) == {StepStatus.WOULD_CHANGE}
    assert len(partner.objects["applications"]) == apps and config.read_text() == before
    assert not (tmp_path / "na-app.pem").exists()

    await admin.setup(config)
    again = await admin.setup(config, dry_run=True)
    assert set(statuses(again).values()) == {StepStatus.ALREADY_DONE}


async def test_drift_is_put_right_and_only_drift(admin: Admin, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.toml", admin.emu)
    first = await admin.setup(config)
    partner = admin.emu.world.tenant("partner.com")
    assert partner is not None and first.application_id and first.service_principal_id
    group = partner.group_by_name("AdminAgents")
    assert group is not None

    def drift() -> None:
        # someone widened the app's permissions and took it out of AdminAgents
        app = partner.objects["applications"][first.application_id]
        graph = app["requiredResourceAccess"][0]["resourceAccess"]
        graph.append({"id": "810c84a8-4a9e-49e6-bf7d-12d183f40d01", "type": "Role"})  # Mail.Read
        partner.remove_member(group["id"], first.service_principal_id)

    admin.emu.call(drift)
    report = await admin.setup(config)
    assert statuses(report) == {
        "application": StepStatus.ALREADY_DONE,
        "permissions": StepStatus.CHANGED,
        "credential": StepStatus.ALREADY_DONE,
        "service principal": StepStatus.ALREADY_DONE,
        "admin consent": StepStatus.ALREADY_DONE,
        "AdminAgents": StepStatus.CHANGED,
        "configuration": StepStatus.ALREADY_DONE,
    }
    assert "removed Mail.Read (application)" in report.steps[1].detail
    assert first.service_principal_id in group["_members"]


async def test_the_app_holds_exactly_its_application_permissions_in_the_partner_tenant_too(
    admin: Admin, tmp_path: Path
) -> None:
    """requiredResourceAccess only asks: in its own tenant the app's token carries what is
    granted there (customers get it through DAP's pre-consent), so set-up grants it, and
    revokes what the plan dropped."""
    config = write_config(tmp_path / "config.toml", admin.emu)
    wide = plan_permissions(
        operations=OPERATIONS, permissions=["DelegatedAdminRelationship.Read.All"],
        delegated=["User.Read.All"],
    )  # fmt: skip
    first = await admin.setup(config, permissions=wide)
    assert statuses(first)["admin consent"] is StepStatus.CHANGED
    at_home = token_claims.roles(await app_token(admin.emu, config, "partner.com"))
    assert sorted(at_home or ()) == sorted(wide.application)
    assert "DelegatedAdminRelationship.Read.All" in wide.application  # the GDAP list's

    narrow = plan_permissions(operations=["GET /users"])
    second = await admin.setup(config, permissions=narrow)
    consent = next(s for s in second.steps if s.name == "admin consent")
    assert consent.status is StepStatus.CHANGED
    assert "revoked" in consent.detail and "DelegatedAdminRelationship.Read.All" in consent.detail
    at_home = token_claims.roles(await app_token(admin.emu, config, "partner.com"))
    assert at_home == ["User.Read.All"]
    third = await admin.setup(config, permissions=narrow)
    assert statuses(third)["admin consent"] is StepStatus.ALREADY_DONE


async def test_permissions_outside_directory_and_intune_are_refused(
    admin: Admin, tmp_path: Path
) -> None:
    with pytest.raises(CspScopeError) as refused:
        plan_permissions(permissions=["User.Read.All", "Mail.Read"])
    assert CSP_RULE in str(refused.value) and "Mail.Read" in str(refused.value)
    with pytest.raises(CspScopeError):
        plan_permissions(permissions=["User.Read.All"], delegated=["Files.Read.All"])
    # the library refuses it too, before anything is changed
    config = write_config(tmp_path / "config.toml", admin.emu)
    bad = plan_permissions(permissions=["User.Read.All"])
    bad = type(bad)(application=("Mail.Read",), delegated=(), why="test")
    with pytest.raises(CspScopeError):
        await admin.setup(config, permissions=bad)
    partner = admin.emu.world.tenant("partner.com")
    assert partner is not None
    names = {a["displayName"] for a in partner.objects["applications"].values()}
    assert "cspgraph partner-managed app" not in names


def test_least_privilege_for_the_sync_job() -> None:
    plan = plan_permissions(preset="sync")
    job = scope.SYNC_OPERATIONS + scope.PARTNER_SYNC_OPERATIONS
    assert plan.application == tuple(sorted(scope.required_permissions(job)))
    assert plan.delegated == tuple(sorted(scope.required_permissions(job, delegated=True)))
    # the GDAP relationships, read app-only in the partner tenant (setup grants it there)
    assert "DelegatedAdminRelationship.Read.All" in plan.application
    for needed in ("User.Read.All", "GroupMember.Read.All", "Device.Read.All",
                   "Organization.Read.All", "DeviceManagementManagedDevices.Read.All"):  # fmt: skip
        assert needed in plan.application
    # nothing wider than needed: no Directory.*, no write permission
    assert not any(p.startswith("Directory.") or "Write" in p for p in plan.application)
    # a wider permission that another one implies is not asked for twice
    both = plan_permissions(operations=["GET /users", "PATCH /users/{id}"])
    assert both.application == ("User.ReadWrite.All",)
    # /me has no application permission: the delegated side still gets it
    me = plan_permissions(operations=["GET /me", "GET /users"])
    assert me.application == ("User.Read.All",) and me.delegated == ("User.Read.All",)


async def test_an_administrator_without_rights_is_told_what_is_needed(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    sales = Admin(make_emulator(EMPTY_PARTNER), "sales@partner.com", "P@ss-sales")
    await sales.login()
    try:
        with pytest.raises(NeedsPersonError) as refused:
            await sales.setup(write_config(tmp_path / "config.toml", sales.emu))
    finally:
        sales.session.close()
    assert "Global Administrator" in str(refused.value) and refused.value.status == 403


async def test_device_code_sign_in(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(EMPTY_PARTNER)
    cloud = emulator_cloud(emu)
    shown: list[DeviceCodePrompt] = []

    def person_signs_in_elsewhere(prompt: DeviceCodePrompt) -> None:
        shown.append(prompt)
        with requests.Session() as browser:
            browser.verify, browser.trust_env = emu.endpoints.ca_bundle, False
            page = browser.post(
                f"{emu.endpoints.authority_host}/devicelogin",
                data={
                    "user_code": prompt.user_code,
                    "username": ADMIN,
                    "password": ADMIN_PASSWORD,
                    "action": "continue",
                },
            )
        assert 'id="done"' in page.text

    with requests_session(cloud.ca_bundle) as session:
        sign_in = AdminSignIn(cloud, "partner.com", session=session)
        account = await asyncio.to_thread(sign_in.sign_in_device_code, person_signs_in_elsewhere)
        token = await sign_in.get_token("partner.com")
        fresh = await sign_in.get_token("partner.com", fresh=True)
    assert account.username == ADMIN and shown[0].user_code and shown[0].verification_uri
    assert token and fresh and token != fresh


def test_the_setup_command(
    make_emulator: MakeEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cspgraph.cli import partner_cmd

    emu = make_emulator(EMPTY_PARTNER)
    config = write_config(tmp_path / "config.toml", emu)
    monkeypatch.setattr("webbrowser.open", sign_in_browser(emu, ADMIN, ADMIN_PASSWORD))
    app = typer.Typer()
    app.command("setup")(partner_cmd.setup)
    app.command("other")(lambda: None)  # a second command keeps "setup" a named subcommand
    runner = CliRunner()
    base = ["setup", "--region", "NA", "--tenant", "partner.com", "--config", str(config)]

    refused = runner.invoke(app, [*base, "--permissions", "Mail.Read"])
    assert refused.exit_code == 2  # the CSP scope rule is bad input, as in `call` (was 1)
    assert "Calling Microsoft Graph from a CSP application is only supported for directory " \
        "resources (such as user, group, device, organization) and Intune resources." in \
        " ".join(refused.output.split())  # fmt: skip

    ops = [arg for op in OPERATIONS for arg in ("--operation", op)]
    done = runner.invoke(app, [*base, *ops, "--secret", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["changed"] and report["client_id"]
    assert all(step["status"] == "changed" for step in report["steps"])
    again = runner.invoke(app, [*base, *ops, "--secret", "--json"])
    assert again.exit_code == 0, again.output
    assert not json.loads(again.stdout)["changed"]
