"""Partner agents signing in at a customer's authority (auth code + PKCE, loopback redirect),
v2 and v1, driven by a script that fills the emulator's sign-in form; then the agent's refresh
token serving other customers without another sign-in."""

from __future__ import annotations

import json
import logging
import ssl
import stat
import threading
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt
import pytest
from typer.testing import CliRunner

from csp_emulator.server import Emulator
from cspgraph.config import Config
from cspgraph.http.errors import TransientError
from cspgraph.identity import (
    NotSignedInError,
    PendingSignIn,
    RegionNotConfiguredError,
    SignInError,
    TokenProvider,
)
from tests.client.conftest import (
    AGENT,
    AGENT_PASSWORD,
    NA_CLIENT,
    SECRET_ENV,
    Control,
    emulator_config,
    record_requests,
)

MakeEmulator = Callable[..., Emulator]
MakeProvider = Callable[..., TokenProvider]


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.error = ""
        self._in_error = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action", "")
        elif tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")
        elif a.get("id") == "error":
            self._in_error = True

    def handle_data(self, data: str) -> None:
        if self._in_error:
            self.error += data
            self._in_error = False


def fill_sign_in(
    emu: Emulator, auth_url: str, username: str, password: str, codes: list[str] | None = None
) -> httpx.Response:
    """What a person's browser does: open the URL, fill the form and submit, then (form_post)
    submit the answer page's form to the app's loopback listener."""
    context = ssl.create_default_context(cafile=emu.endpoints.ca_bundle)
    with httpx.Client(verify=context, trust_env=False, follow_redirects=True) as browser:
        page = browser.get(auth_url)
        assert page.status_code == 200, page.text
        form = _Form()
        form.feed(page.text)
        assert form.action, page.text
        answer = browser.post(
            urljoin(str(page.url), form.action),
            data={**form.fields, "username": username, "password": password},
        )
        form = _Form()
        form.feed(answer.text)
        assert not form.error, form.error
        if form.action.startswith("http://localhost"):  # response_mode=form_post
            if codes is not None:
                codes.append(form.fields["code"])
            answer = browser.post(form.action, data=form.fields)
        return answer


def sign_in(
    emu: Emulator, provider: TokenProvider, customer: str, *, v1: bool = False, region: str = "NA"
) -> Any:
    with provider.agent().begin_sign_in(customer, v1=v1) as pending:
        landed = fill_sign_in(emu, pending.auth_url, AGENT[region], AGENT_PASSWORD)
        assert landed.status_code == 200
        assert "Signed in" in landed.text
        assert str(landed.url).startswith(pending.redirect_uri)
        return pending.wait(timeout=30)


def read_json(path: Path | None) -> Any:
    assert path is not None
    return json.loads(path.read_text())


def claims(token: str) -> dict[str, Any]:
    value: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return value


@pytest.fixture
def emu(make_emulator: MakeEmulator) -> Emulator:
    return make_emulator()


@pytest.fixture
def config(emu: Emulator, tmp_path: Path) -> Config:
    return emulator_config(emu, tmp_path)


async def test_v2_sign_in_then_the_refresh_token_serves_another_customer(
    emu: Emulator, config: Config, tmp_path: Path, make_provider: MakeProvider
) -> None:
    control = Control(emu)
    provider = make_provider(config)
    first = next(t for t in control.customers("NA") if t["domain"] == "customer.com")
    second = control.customers("NA")[1]
    result = sign_in(emu, provider, "customer.com")
    assert result.account.username == AGENT["NA"]
    assert (result.tenant_id, result.region, result.protocol) == (first["id"], "NA", "v2")
    partner_id = next(
        t["id"] for t in control.get("world")["tenants"] if t["domain"] == "partner.com"
    )
    assert result.account.home_tenant_id == partner_id
    cache_file = tmp_path / "tokens.json"
    assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600

    agent = provider.agent()
    token = claims(await agent.get_token("customer.com"))
    assert (token["idtyp"], token["tid"], token["appid"]) == ("user", first["id"], NA_CLIENT)
    assert token["idp"] == f"https://sts.windows.net/{partner_id}/"  # a partner agent
    # Another customer: no sign-in, the agent's refresh token is redeemed there.
    other = claims(await agent.get_token(second["domain"]))
    assert other["tid"] == second["id"]
    assert [t["grant"] for t in control.tokens(tenant=second["id"])] == ["refresh_token"]
    assert [t["grant"] for t in control.tokens(tenant=first["id"])] == ["authorization_code"]

    # A new process with the same cache file is signed in too.
    again = make_provider(emulator_config(emu, tmp_path))
    third = control.customers("NA")[2]
    assert claims(again.agent().get_token_sync(third["id"]))["tid"] == third["id"]
    assert [a.username for a in again.agent().accounts()] == [AGENT["NA"]]


async def test_v1_sign_in_uses_resource_and_its_refresh_token_serves_another_customer(
    emu: Emulator, config: Config, make_provider: MakeProvider
) -> None:
    control = Control(emu)
    provider = make_provider(config)
    wire = record_requests(provider.session)
    first = next(t for t in control.customers("NA") if t["domain"] == "customer.com")
    second = control.customers("NA")[3]
    with provider.agent().begin_sign_in("customer.com", v1=True) as pending:
        url = urlsplit(pending.auth_url)
        assert url.path == "/customer.com/oauth2/authorize"  # as the CSP description shows
        query = parse_qs(url.query)
        assert query["resource"] == ["https://graph.microsoft.com"]
        assert query["code_challenge_method"] == ["S256"]
        fill_sign_in(emu, pending.auth_url, AGENT["NA"], AGENT_PASSWORD)
        result = pending.wait(timeout=30)
    assert (result.protocol, result.tenant_id, result.account.username) == (
        "v1",
        first["id"],
        AGENT["NA"],
    )
    assert ("POST", f"{provider.cloud.login}/customer.com/oauth2/token") in wire
    agent = provider.agent()
    token = claims(await agent.get_token(first["id"]))
    assert (token["aud"], token["tid"], token["ver"]) == (
        "https://graph.microsoft.com",
        first["id"],
        "1.0",
    )
    assert len(control.tokens(tenant=first["id"])) == 1  # served from the cache
    other = claims(await agent.get_token(second["domain"]))
    assert other["tid"] == second["id"]
    assert [t["grant"] for t in control.tokens(tenant=second["id"])] == ["refresh_token"]


async def test_an_authorization_code_meeting_a_503_is_never_redeemed_twice(
    emu: Emulator, config: Config, make_provider: MakeProvider
) -> None:
    # App-only token requests are retried after a 503; a code is single-use, so its redemption
    # is not: one 503 fails the sign-in, and the code is never sent a second time.
    control = Control(emu)
    customer = next(t for t in control.customers("NA") if t["domain"] == "customer.com")
    provider = make_provider(config)
    token_path = f"/{customer['id']}/oauth2/v2.0/token"
    control.send("POST", "faults", {"host": "login", "kind": "503", "count": 1,
                                    "path_prefix": token_path})  # fmt: skip
    with pytest.raises(TransientError):
        sign_in(emu, provider, "customer.com")
    assert control.get("faults")["value"] == []  # the one 503 was met
    assert control.tokens(tenant=customer["id"]) == []  # and nothing redeemed the code after it


async def test_fresh_evicts_only_that_customers_agent_token(
    emu: Emulator, config: Config, make_provider: MakeProvider
) -> None:
    control = Control(emu)
    provider = make_provider(config)
    sign_in(emu, provider, "customer.com")
    agent = provider.agent()
    other = control.customers("NA")[1]["id"]
    a1, b1 = await agent.get_token("customer.com"), await agent.get_token(other)
    a2 = await agent.get_token("customer.com", fresh=True)
    assert claims(a2)["uti"] != claims(a1)["uti"]
    assert await agent.get_token(other) == b1
    assert len(control.tokens(tenant=other)) == 1


async def test_without_a_sign_in_the_agent_is_told_to_log_in(
    config: Config, make_provider: MakeProvider
) -> None:
    agent = make_provider(config).agent()
    with pytest.raises(NotSignedInError, match=r"cspgraph login --customer customer\.com"):
        await agent.get_token("customer.com")


async def test_a_customer_of_an_unconfigured_region_is_refused_before_sign_in(
    emu: Emulator, tmp_path: Path, make_provider: MakeProvider
) -> None:
    provider = make_provider(emulator_config(emu, tmp_path, regions=("NA",)))
    wire = record_requests(provider.session)
    eu = Control(emu).customers("EU")[0]
    with pytest.raises(RegionNotConfiguredError, match=r"add a \[regions\.EU\] section"):
        provider.agent().begin_sign_in(eu["domain"])
    assert not any("authorize" in url or "/oauth2/" in url for _, url in wire)


async def test_an_answer_for_another_sign_in_is_refused(
    config: Config, make_provider: MakeProvider
) -> None:
    provider = make_provider(config)
    with provider.agent().begin_sign_in("customer.com") as pending:
        assert isinstance(pending, PendingSignIn)
        with pytest.raises(SignInError, match="state mismatch"):
            pending.complete({"code": "stolen", "state": "someone-elses"})
    with provider.agent().begin_sign_in("customer.com") as pending:
        state = parse_qs(urlsplit(pending.auth_url).query)["state"][0]
        refused = {"error": "access_denied", "error_description": "AADSTS65004: declined"}
        with pytest.raises(Exception, match="AADSTS65004") as info:
            pending.complete({**refused, "state": state})
        assert getattr(info.value, "code", None) == "AADSTS65004"


def test_an_id_token_not_signed_by_the_authority_is_refused(
    config: Config, make_provider: MakeProvider
) -> None:
    """MSAL 1.38+ no longer validates id_tokens (client-traps §8); the agent provider does."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    provider = make_provider(config)
    route = provider.route_sync("customer.com")
    info = provider.discovery.cached("customer.com")
    assert info is not None and info.jwks_uri
    kid = provider.session.get(info.jwks_uri).json()["keys"][0]["kid"]
    now = int(time.time())
    claims = {
        "aud": NA_CLIENT,
        "iss": info.issuer,
        "tid": route.tenant_id,
        "iat": now,
        "exp": now + 600,
    }
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, impostor, algorithm="RS256", headers={"kid": kid})
    with pytest.raises(SignInError, match="does not validate: Signature verification failed"):
        provider.agent()._validate_id_token(forged, route, nonce=None)


def test_the_loopback_listener_ignores_strays_and_times_out_cleanly(
    config: Config, make_provider: MakeProvider
) -> None:
    provider = make_provider(config)
    with provider.agent().begin_sign_in("customer.com") as pending:
        with httpx.Client(trust_env=False) as client:
            assert client.get(f"{pending.redirect_uri}/favicon.ico").status_code == 404
            stray = client.get(pending.redirect_uri, params={"code": "x", "state": "wrong"})
            assert stray.status_code == 404
        with pytest.raises(SignInError, match="no sign-in came back"):
            pending.wait(timeout=0.05)


async def test_no_secret_token_or_code_is_logged_during_sign_in(
    emu: Emulator, config: Config, make_provider: MakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = make_provider(config)
    with provider.agent().begin_sign_in("customer.com") as pending:
        codes: list[str] = []
        fill_sign_in(emu, pending.auth_url, AGENT["NA"], AGENT_PASSWORD, codes)
        pending.wait(timeout=30)
    (code,) = codes
    sign_in(emu, provider, "customer.com", v1=True)
    tokens = [
        await provider.agent().get_token(t) for t in ("customer.com", "northwind.onmicrosoft.com")
    ]
    cache = read_json(config.token_cache_path)
    refresh_tokens = [rt["secret"] for rt in cache["RefreshToken"].values()]
    text = caplog.text
    assert "msal" in {r.name.split(".")[0] for r in caplog.records}
    for secret in [*SECRET_ENV.values(), AGENT_PASSWORD, code, *tokens, *refresh_tokens]:
        assert secret not in text


def cli_config(emu: Emulator, tmp_path: Path) -> Path:
    """`cspgraph config init --from-emulator`'s configuration for ``emu``, as a person has it."""
    from cspgraph.cli import config_cmd

    config_path = tmp_path / "cfg" / "config.toml"
    init = CliRunner().invoke(
        config_cmd.app,
        ["init", "--from-emulator", str(emu.endpoints_file), "--path", str(config_path)],
    )
    assert init.exit_code == 0, init.output
    return config_path


def test_cspgraph_login_whoami_and_token_agent(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cspgraph.cli.main import app

    runner = CliRunner()
    config_path = cli_config(emu, tmp_path)
    # The "browser": fills the sign-in form from another thread, as a person would.
    threads: list[threading.Thread] = []

    def browser(url: str) -> bool:
        thread = threading.Thread(
            target=fill_sign_in, args=(emu, url, AGENT["NA"], AGENT_PASSWORD), daemon=True
        )
        thread.start()
        threads.append(thread)
        return True

    monkeypatch.setattr("webbrowser.open", browser)
    login = runner.invoke(
        app,
        ["login", "--customer", "customer.com", "--timeout", "30", "--config", str(config_path)],
    )
    assert login.exit_code == 0, login.output
    signed_in = json.loads(login.stdout)  # piped: JSON, as every command (docs/cli.md)
    assert (signed_in["username"], signed_in["region"]) == (AGENT["NA"], "NA")
    for thread in threads:
        thread.join(timeout=10)
    whoami = runner.invoke(app, ["whoami", "--config", str(config_path)])
    assert whoami.exit_code == 0, whoami.output
    payload = json.loads(whoami.output)
    assert [a["username"] for a in payload["agents"]] == [AGENT["NA"]]
    assert set(payload["identities"]) == {"NA", "EU"}
    token = runner.invoke(
        app,
        ["token", "--customer", "adatum.onmicrosoft.com", "--agent", "--config", str(config_path)],
    )
    assert token.exit_code == 0, token.output
    assert json.loads(token.output)["idtyp"] == "user"

    # And out again: a name not signed in is refused; the agent's sign-in leaves the cache.
    cfg = ["--config", str(config_path)]
    stranger = runner.invoke(app, ["logout", "--agent-user", "nobody@partner.com", *cfg])
    assert stranger.exit_code == 2 and f"signed in: {AGENT['NA']}" in stranger.stderr
    out = runner.invoke(app, ["logout", "--agent-user", AGENT["NA"].upper(), *cfg])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == {"signed_out": 1, "still_signed_in": []}
    assert json.loads(runner.invoke(app, ["whoami", *cfg]).stdout)["agents"] == []
    again = runner.invoke(app, ["token", "--customer", "adatum.onmicrosoft.com", "--agent", *cfg])
    assert again.exit_code == 3 and "cspgraph login" in again.stderr


# -- a sign-in meeting a moved clock, or one that fails after the code was redeemed ---------------

SEVEN_MINUTES = 7 * 60


@pytest.mark.parametrize("v1", [False, True], ids=["v2", "v1"])
async def test_a_sign_in_at_an_emulator_whose_clock_moved_ahead_stands_and_reports_the_skew(
    emu: Emulator, config: Config, make_provider: MakeProvider, v1: bool
) -> None:
    emu.advance(SEVEN_MINUTES)  # the id_token's iat is 7 min ahead of this machine's clock
    provider = make_provider(config)
    result = sign_in(emu, provider, "customer.com", v1=v1)
    assert result.clock_skew is not None
    assert SEVEN_MINUTES - 60 < result.clock_skew < SEVEN_MINUTES + 60  # the skew, not a duration
    assert [a.username for a in provider.agent().accounts()] == [AGENT["NA"]]
    other = Control(emu).customers("NA")[1]["id"]
    assert claims(await provider.agent().get_token(other))["idtyp"] == "user"


async def test_a_sign_in_within_the_leeway_reports_no_skew(
    emu: Emulator, config: Config, make_provider: MakeProvider
) -> None:
    emu.advance(60)
    assert sign_in(emu, make_provider(config), "customer.com").clock_skew is None


@pytest.mark.parametrize("v1", [False, True], ids=["v2", "v1"])
async def test_a_sign_in_that_fails_after_the_code_was_redeemed_leaves_no_agent_behind(
    emu: Emulator, config: Config, make_provider: MakeProvider, v1: bool
) -> None:
    # The code is redeemed (MSAL stores what comes back at once), then the id_token's signing
    # keys cannot be fetched: the sign-in fails, and nobody may be signed in after it.
    control = Control(emu)
    customer = next(t for t in control.customers("NA") if t["domain"] == "customer.com")
    keys = f"/{customer['id']}/discovery/"
    control.send("POST", "faults", {"host": "login", "kind": "503", "count": 10,
                                    "path_prefix": keys})  # fmt: skip
    provider = make_provider(config)
    with pytest.raises(TransientError, match="fetching the signing keys"):
        sign_in(emu, provider, "customer.com", v1=v1)
    assert control.tokens(tenant=customer["id"]) != []  # the code was redeemed
    assert provider.agent().accounts() == []
    again = make_provider(config)  # what the next command reads from the cache file
    assert again.agent().accounts() == []
    with pytest.raises(NotSignedInError):
        await again.agent().get_token("customer.com")


def test_cspgraph_login_after_the_emulator_clock_moved_names_the_skew_and_signs_in(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cspgraph.cli.main import app

    runner = CliRunner()
    config_path = cli_config(emu, tmp_path)
    emu.advance(SEVEN_MINUTES)
    monkeypatch.setattr(
        "webbrowser.open",
        lambda url: (
            threading.Thread(
                target=fill_sign_in, args=(emu, url, AGENT["NA"], AGENT_PASSWORD), daemon=True
            ).start()
            or True
        ),
    )
    login = runner.invoke(
        app, ["login", "--customer", "customer.com", "--timeout", "30", "--config",
              str(config_path)],
    )  # fmt: skip
    assert login.exit_code == 0, login.output
    signed_in = json.loads(login.stdout)
    assert signed_in["clock_skew_s"] > SEVEN_MINUTES - 60
    assert signed_in["scopes"] == ["Directory.AccessAsUser.All"]  # what the token holds
    (warning,) = [line for line in login.stderr.splitlines() if "clock skew" in line]
    assert "the emulator's world clock is about 7 min ahead" in warning
    assert "restart the emulator" in warning
    whoami = runner.invoke(app, ["whoami", "--config", str(config_path)])
    assert [a["username"] for a in json.loads(whoami.output)["agents"]] == [AGENT["NA"]]


def test_clock_skew_is_read_from_the_id_tokens_times_in_both_directions() -> None:
    from cspgraph.identity.agent import ID_TOKEN_LEEWAY, clock_skew

    now = 1_800_000_000.0
    assert clock_skew({"iat": now + 600, "exp": now + 4200}, now) == 600
    assert clock_skew({"iat": now - 4200, "exp": now - 600}, now) == -600
    assert clock_skew({"iat": now + ID_TOKEN_LEEWAY, "exp": now + 3600}, now) is None
    assert clock_skew({"iat": "soon", "exp": None}, now) is None  # not times: nothing to judge


def test_the_skew_warning_against_microsoft_says_to_set_this_machines_clock() -> None:
    from cspgraph.cli.auth_cmd import skew_warning

    line = skew_warning(-1800.4, emulator=False)
    assert line.startswith("warning: clock skew of -1800 s: the identity platform's clock is ")
    assert "about 30 min behind this machine's" in line
    assert "set it (NTP" in line and "\n" not in line


# -- a delegated permission added after a sign-in --------------------------------------------------

ADDED = ("Application.Read.All", "c79f8feb-a9db-4090-85f9-90d820caa0eb")  # delegated (Scope)


def add_delegated_permission(control: Control) -> None:
    """What `cspgraph setup --delegated …` does to the partner-managed app's registration."""
    (registration,) = [
        a for a in control.get("tenants/partner.com/applications")["value"]
        if a["appId"] == NA_CLIENT
    ]  # fmt: skip
    access = registration["requiredResourceAccess"]
    graph = next(r for r in access if r["resourceAppId"] == "00000003-0000-0000-c000-000000000000")
    assert ADDED[1] not in {p["id"] for p in graph["resourceAccess"]}
    graph["resourceAccess"].append({"id": ADDED[1], "type": "Scope"})
    control.send("PATCH", f"tenants/partner.com/applications/{registration['id']}",
                 {"requiredResourceAccess": access})  # fmt: skip


@pytest.mark.parametrize("v1", [False, True], ids=["v2", "v1"])
async def test_a_new_sign_in_after_a_delegated_permission_was_added_is_used_everywhere(
    emu: Emulator, config: Config, make_provider: MakeProvider, v1: bool
) -> None:
    control = Control(emu)
    provider = make_provider(config)
    other = control.customers("NA")[1]["id"]
    sign_in(emu, provider, "customer.com", v1=v1)
    agent = provider.agent()
    for tenant in ("customer.com", other):  # tokens cached from before the change
        assert ADDED[0] not in claims(await agent.get_token(tenant))["scp"].split()
    add_delegated_permission(control)
    result = sign_in(emu, provider, "customer.com", v1=v1)
    assert ADDED[0] in result.scopes  # the sign-in says what its token holds
    # No token born before the new sign-in is handed out again, at this customer or another.
    for tenant in ("customer.com", other):
        assert ADDED[0] in claims(await agent.get_token(tenant))["scp"].split(), tenant
