"""`cspgraph call` end to end: the CLI as a partner runs it (a configuration written by
`cspgraph config init --from-emulator`), real sockets and TLS to the emulator, and the world's
own answer to compare with."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import DEMO_PARTNERS, demo_world
from cspgraph.cli import config_cmd
from cspgraph.cli.call_cmd import CompactOutput, PrettyOutput, UsageError, build_request
from cspgraph.cli.main import app
from cspgraph.graph.scope import CSP_RULE
from tests.client.conftest import Control

MakeEmulator = Callable[..., Emulator]
Call = Callable[..., Result]

NA = DEMO_PARTNERS["NA"]


def write_config(emu: Emulator, where: Path) -> Path:
    path = where / "cfg" / "config.toml"
    result = CliRunner().invoke(
        config_cmd.app, ["init", "--from-emulator", str(emu.endpoints_file), "--path", str(path)]
    )
    assert result.exit_code == 0, result.output
    return path


def cli(config: Path) -> Call:
    runner = CliRunner()

    def call(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, ["call", *args, "--config", str(config)], input=input)

    return call


def one_line_error(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    return lines[0]


def small_world(permissions: list[str], *, relationship: str = "in_effect") -> dict[str, Any]:
    """One NA partner with its partner-managed app, and customer.com."""
    return {
        "settings": {"propagation_delay": "3m", "token_lifetime": "1h"},
        "tenant": [
            {
                "domain": NA["domain"],
                "region": "NA",
                "kind": "partner",
                "user": [
                    {
                        "upn": "agent@partner.com",
                        "password": "P@ssw0rd-agent",
                        "groups": ["AdminAgents"],
                    },
                ],
                "app": [
                    {
                        "display_name": "CSP app",
                        "client_id": NA["client_id"],
                        "client_secret": NA["client_secret"],
                        "multi_tenant": True,
                        "admin_agents": True,
                        "application_permissions": permissions,
                        "delegated_permissions": ["Directory.AccessAsUser.All"],
                        "redirect_uris": ["http://localhost"],
                    }
                ],
            },
            {
                "domain": "customer.com",
                "region": "NA",
                "kind": "customer",
                "partner": NA["domain"],
                "relationship": relationship,
                "generate": {"users": 12, "groups": 2, "seed": 5},
            },
        ],
    }


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """This module's own demo-world emulator (not the session's): its calls issue tokens, which
    tests sharing the session's emulator may count."""
    state = tmp_path_factory.mktemp("call-cli-emulator")
    with Emulator(lambda: demo_world(customers=4), state_dir=state) as emu:
        yield emu


@pytest.fixture(scope="module")
def demo_config(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(emulator, tmp_path_factory.mktemp("call-cli"))


@pytest.fixture
def call(demo_config: Path) -> Call:
    return cli(demo_config)


def test_get_all_lists_every_user_of_the_customer_as_one_json_array(
    call: Call, emulator: Emulator
) -> None:
    control = Control(emulator)
    tenant = control.get("tenants/customer.com")
    world_ids = {u["id"] for u in control.get("tenants/customer.com/users")["value"]}
    assert len(world_ids) == tenant["counts"]["users"]

    # Small pages, so --all has several to follow.
    result = call("GET", "/v1.0/users", "--customer", "customer.com", "--all", "--top", "5")
    assert result.exit_code == 0, result.stderr
    users = json.loads(result.stdout)  # piped: one compact JSON array
    assert isinstance(users, list)
    ids = [u["id"] for u in users]
    assert len(ids) == len(set(ids)) == tenant["counts"]["users"]
    assert set(ids) == world_ids
    assert result.stdout.count("\n") == 1  # compact: the whole array on one line


def test_get_prints_the_answer_as_compact_json_when_piped(call: Call, emulator: Emulator) -> None:
    tenant = Control(emulator).get("tenants/customer.com")
    result = call(
        "GET", "/organization", "-c", "admin@customer.com", "--select", "id", "--select",
        "displayName",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert [o["id"] for o in answer["value"]] == [tenant["id"]]
    assert set(answer["value"][0]) == {"id", "displayName"}
    # A bare path is v1.0; --beta or a /beta/ path picks beta.
    assert "/v1.0/$metadata" in answer["@odata.context"]
    beta = json.loads(call("GET", "/organization", "-c", "customer.com", "--beta").stdout)
    assert "/beta/$metadata" in beta["@odata.context"]


def test_a_saved_next_link_continues_the_listing(call: Call) -> None:
    first = json.loads(
        call("GET", "/users", "-c", "customer.com", "--top", "3", "--select", "id").stdout
    )
    next_link = first["@odata.nextLink"]
    second = call("GET", next_link, "-c", "customer.com")
    assert second.exit_code == 0, second.stderr
    page = json.loads(second.stdout)
    assert len(page["value"]) == 3
    assert not {u["id"] for u in page["value"]} & {u["id"] for u in first["value"]}


def test_count_prints_a_number(call: Call, emulator: Emulator) -> None:
    tenant = Control(emulator).get("tenants/customer.com")
    result = call("GET", "/users/$count", "-c", "customer.com")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == tenant["counts"]["users"]


def test_a_call_outside_directory_and_intune_is_refused_quoting_the_csp_rule(
    call: Call, emulator: Emulator
) -> None:
    user = Control(emulator).get("tenants/customer.com/users")["value"][0]["id"]
    result = call("GET", f"/v1.0/users/{user}/messages", "--customer", "customer.com")
    assert result.exit_code == 2
    assert result.stdout == ""
    line = one_line_error(result)
    assert line.startswith("error: bad_request: refused GET")
    assert CSP_RULE in line
    assert "--allow-any-resource" in line
    assert "code=CspScopeViolation" in line
    # Refused before anything is sent, discovery included: the tenant is as the user named it.
    assert "tenant=customer.com" in line
    assert "request-id" not in line  # nothing was sent: no id to show, and no "none" either
    assert len(result.stderr.strip().splitlines()) == 1

    # Lifted, the request goes out, and Graph itself refuses a CSP app outside directory data.
    sent = call("GET", f"/v1.0/users/{user}/messages", "-c", "customer.com", "--allow-any-resource")
    assert sent.exit_code != 0
    line = one_line_error(sent)
    assert "status=403" in line
    assert re.search(r"request-id=[0-9a-f-]{36}", line)


def test_a_write_the_app_may_not_make_needs_a_person_and_names_the_missing_permission(
    call: Call, tmp_path: Path
) -> None:
    body = tmp_path / "user.json"
    body.write_text(json.dumps({"displayName": "Nope", "accountEnabled": True}))
    result = call("POST", "/v1.0/users", "-c", "customer.com", "--data", f"@{body}")
    assert result.stdout == ""
    line = one_line_error(result)
    assert "code=Authorization_RequestDenied" in line
    assert "status=403" in line
    assert "Insufficient privileges" in line
    assert re.search(r"request-id=[0-9a-f-]{36}", line)
    # The token carried application permissions, just not this one: no wait brings it, so
    # somebody must grant it (exit 3), and the next line says which and how.
    assert line.startswith("error: needs_person: ")
    assert result.exit_code == 3
    hint = result.stderr.strip().splitlines()[1]
    assert hint.startswith(
        "hint: POST /users needs the application permission User.ReadWrite.All, which the "
        "app-only token does not carry (it carries "
    )
    assert "User.Read.All" in hint and "consent again" in hint


def test_post_patch_get_delete_when_the_app_may_write(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = make_emulator(small_world(["User.ReadWrite.All"]))
    call = cli(write_config(emu, tmp_path))
    new_user = {
        "accountEnabled": True,
        "displayName": "Ada Lovelace",
        "mailNickname": "ada",
        "userPrincipalName": "ada@customer.com",
        "passwordProfile": {"password": "Analytical-Engine-1843"},
    }
    created = call("POST", "/users", "-c", "customer.com", "--data", json.dumps(new_user))
    assert created.exit_code == 0, created.stderr
    user = json.loads(created.stdout)
    assert user["userPrincipalName"] == "ada@customer.com"
    assert "passwordProfile" not in user

    patched = call(
        "PATCH", f"/users/{user['id']}", "-c", "customer.com", "-d", "@-",
        input=json.dumps({"jobTitle": "Mathematician"}),
    )  # fmt: skip
    assert patched.exit_code == 0, patched.stderr
    assert patched.stdout == ""  # 204 No Content: nothing to print
    got = json.loads(call("GET", f"/users/{user['id']}", "-c", "customer.com").stdout)
    assert got["jobTitle"] == "Mathematician"
    assert user["id"] in {u["id"] for u in Control(emu).get("tenants/customer.com/users")["value"]}

    gone = call("DELETE", f"/users/{user['id']}", "-c", "customer.com")
    assert gone.exit_code == 0, gone.stderr
    missing = call("GET", f"/users/{user['id']}", "-c", "customer.com")
    assert missing.exit_code == 2
    assert "code=Request_ResourceNotFound" in one_line_error(missing)


def test_a_customer_whose_relationship_has_not_propagated_exits_4(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = make_emulator(small_world(["User.Read.All"], relationship="new"))
    call = cli(write_config(emu, tmp_path))
    result = call("GET", "/users", "-c", "customer.com")
    assert result.exit_code == 4, result.output
    assert one_line_error(result).startswith("error: propagating: ")
    assert "no application permissions at all" in result.stderr.strip().splitlines()[1]
    emu.advance(180)  # the relationship reaches the customer; a new process gets a new token
    again = call("GET", "/users", "-c", "customer.com", "--top", "1")
    assert again.exit_code == 0, again.stderr


def test_the_agent_must_sign_in_first(call: Call) -> None:
    result = call("GET", "/beta/users", "-c", "customer.com", "--agent")
    assert result.exit_code == 3
    line = one_line_error(result)
    assert line.startswith("error: needs_person: ")
    assert "cspgraph login --customer" in line
    assert "code=NotSignedIn" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["GET", "/v1.0/users", "--beta"], "disagree"),
        (["FETCH", "/users"], "expected one of GET"),
        (["POST", "/users", "--data", "{not json"], "not valid JSON"),
        (["GET", "/users", "--data", "{}"], "--data goes with POST"),
        (["POST", "/users", "--all"], "only go with GET"),
        (["GET", "/users", "--header", "Authorization: Bearer x"], "sends the token itself"),
        (["GET", "https://evil.example.com/v1.0/users"], "refusing to send a Graph token"),
        (["GET", "nosuch.example.com/users"], "CspScopeViolation"),
    ],
)
def test_usage_errors_exit_2_with_one_line(call: Call, args: list[str], message: str) -> None:
    result = call(*args, "--customer", "customer.com")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert message in one_line_error(result)


def test_all_on_a_single_object_says_to_drop_it(call: Call, emulator: Emulator) -> None:
    tenant = Control(emulator).get("tenants/customer.com")
    result = call("GET", f"/organization/{tenant['id']}", "-c", "customer.com", "--all")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "answered with a single object: drop --all" in one_line_error(result)


def test_an_unknown_customer_is_a_bad_request(call: Call) -> None:
    result = call("GET", "/users", "-c", "nosuch.example.com")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "code=AADSTS90002" in line
    assert "tenant=nosuch.example.com" in line


def test_build_request_splits_version_and_query() -> None:
    request = build_request("get", "beta/users?$count=true", select=["id,displayName", "mail"])
    assert (request.method, request.path, request.version) == ("GET", "/users?$count=true", "beta")
    assert request.params == {"$select": "id,displayName,mail"}
    assert build_request("GET", "/v1.0/users/$count").count_path == "/users"
    with pytest.raises(UsageError, match="--top 0"):
        build_request("GET", "/users", top=0)


def test_streamed_arrays_are_valid_json_compact_and_pretty() -> None:
    pages: list[list[Any]] = [
        [{"id": 1, "name": "Zoë"}, {"id": 2}],
        [],
        [{"id": 3, "tags": ["a", "b"]}],
    ]
    expected = [item for page in pages for item in page]

    compact = io.StringIO()
    out = CompactOutput(compact)
    out.begin_array()
    for page in pages:
        out.items(page)
    out.end_array()
    assert json.loads(compact.getvalue()) == expected

    pretty = io.StringIO()
    fancy = PrettyOutput(Console(file=pretty, force_terminal=True, width=60))
    fancy.begin_array()
    for page in pages:
        fancy.items(page)
    fancy.end_array()
    text = re.sub(r"\x1b\[[0-9;]*m", "", pretty.getvalue())  # the colours
    assert json.loads(text) == expected
    assert "\n  {\n" in text  # indented, one property per line

    empty = io.StringIO()
    out = CompactOutput(empty)
    out.begin_array()
    out.end_array()
    assert json.loads(empty.getvalue()) == []
