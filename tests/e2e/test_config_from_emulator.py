"""`cspgraph config init --from-emulator` writes a configuration for the world the emulator
serves (issue 15, gap 8): a custom world's partners, not the demo world's; a clear refusal when
the world has nothing to configure or the emulator is gone. Real emulators, real TLS."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from csp_emulator.server import Emulator
from cspgraph.cli.main import app

MakeEmulator = Callable[..., Emulator]

TAILSPIN_APP = "5b0f4c1e-2d3a-4e5f-8a9b-0c1d2e3f4a5b"
TAILSPIN_SECRET = "tailspin-secret-9"
ALPINE_APP = "7c2e9a10-4b3d-4f6e-9a8b-1d2c3e4f5a6b"


def partner(domain: str, region: str, apps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"domain": domain, "region": region, "kind": "partner", "app": apps}


def csp_app(client_id: str, secret: str | None, *, admin_agents: bool = True) -> dict[str, Any]:
    app: dict[str, Any] = {
        "display_name": "CSP app",
        "client_id": client_id,
        "multi_tenant": True,
        "admin_agents": admin_agents,
        "application_permissions": ["User.Read.All", "Organization.Read.All"],
    }
    if secret is not None:
        app["client_secret"] = secret
    return app


def customer(domain: str, of: str) -> dict[str, Any]:
    return {
        "domain": domain,
        "region": "NA",
        "kind": "customer",
        "partner": of,
        "generate": {"users": 3, "seed": 2},
    }


def init(emu_file: Path, config: Path, *more: str) -> Result:
    args = ["config", "init", "--from-emulator", str(emu_file), "--config", str(config), *more]
    return CliRunner().invoke(app, [*args, "--json"])


def test_a_custom_world_is_configured_with_its_own_partner_and_app(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = make_emulator(
        {
            "tenant": [
                partner(
                    "tailspin-partner.com",
                    "NA",
                    [
                        csp_app(ALPINE_APP, "not-this-one", admin_agents=False),
                        csp_app(TAILSPIN_APP, TAILSPIN_SECRET),
                    ],
                ),
                customer("wingtip.com", "tailspin-partner.com"),
            ]
        }
    )
    config = tmp_path / "cfg" / "config.toml"
    result = init(emu.endpoints_file, config)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["regions"] == {
        "NA": {"partner_tenant": "tailspin-partner.com", "client_id": TAILSPIN_APP}
    }
    assert TAILSPIN_SECRET not in result.output
    assert TAILSPIN_SECRET not in config.read_text()
    secret = config.parent / "secrets" / "NA.secret"
    assert secret.read_text() == TAILSPIN_SECRET
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    # The written configuration works: an app-only token for the custom world's customer.
    token = CliRunner().invoke(
        app, ["token", "--customer", "wingtip.com", "--config", str(config), "--json"]
    )
    assert token.exit_code == 0, token.output
    claims = json.loads(token.stdout)
    assert claims["appid"] == TAILSPIN_APP
    assert "User.Read.All" in claims["roles"]


def test_a_world_without_partner_apps_is_refused_and_nothing_is_written(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = make_emulator(
        {
            "tenant": [
                partner(
                    "no-secret.com",
                    "NA",
                    [{"client_id": ALPINE_APP, "display_name": "Internal tool"}],
                )
            ]
        }
    )
    config = tmp_path / "config.toml"
    result = init(emu.endpoints_file, config)
    assert result.exit_code == 2, result.output
    assert "no partner tenant in the served world has a multi-tenant app" in result.stderr
    assert (
        "no-secret.com (NA) left out: its multi-tenant apps have no client secret" in result.stderr
    )
    assert not config.exists()
    assert not (tmp_path / "secrets").exists()


def test_two_partners_in_one_region_need_a_choice_and_partner_makes_it(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = make_emulator(
        {
            "tenant": [
                partner("tailspin-partner.com", "NA", [csp_app(TAILSPIN_APP, TAILSPIN_SECRET)]),
                partner("alpine-partner.com", "NA", [csp_app(ALPINE_APP, "alpine-secret")]),
            ]
        }
    )
    config = tmp_path / "config.toml"
    refused = init(emu.endpoints_file, config)
    assert refused.exit_code == 2, refused.output
    assert "region NA has 2 partner tenants" in refused.stderr
    assert "--partner DOMAIN" in refused.stderr
    chosen = init(emu.endpoints_file, config, "--partner", "alpine-partner.com")
    assert chosen.exit_code == 0, chosen.output
    assert json.loads(chosen.stdout)["regions"]["NA"]["client_id"] == ALPINE_APP
    unknown = init(emu.endpoints_file, tmp_path / "other.toml", "--partner", "nope.com")
    assert unknown.exit_code == 2
    assert "no partner tenant nope.com in the served world" in unknown.stderr


def test_an_emulator_that_stopped_is_named_in_a_clear_error(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu = make_emulator()
    kept = tmp_path / "endpoints.json"
    kept.write_text(emu.endpoints_file.read_text())
    emu.stop()
    config = tmp_path / "config.toml"
    result = init(kept, config)
    assert result.exit_code == 2, result.output
    assert "does not answer" in result.stderr
    assert "Traceback" not in result.output
    assert not config.exists()


def test_the_next_step_names_the_configuration_by_its_absolute_path(
    make_emulator: MakeEmulator, tmp_path: Path, monkeypatch: Any
) -> None:
    # A relative --config would be wrong in any other directory the hint is pasted into.
    emu = make_emulator()
    monkeypatch.chdir(tmp_path)
    result = init(emu.endpoints_file, Path("cfg dir/config.toml"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    absolute = tmp_path / "cfg dir" / "config.toml"
    assert data["written"] == str(absolute)
    assert data["next"].endswith(f"(with CSPGRAPH_CONFIG='{absolute}')")
    assert absolute.is_file()


def test_hints_name_the_command_that_works_in_this_shell(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    # `make demo` runs .venv/bin/cspgraph from a shell whose PATH has no cspgraph: a hint that
    # says `cspgraph …` would fail there, so it names the path it was started by.
    import os
    import subprocess
    import sys

    emu = make_emulator()
    command = Path(sys.executable).parent / "cspgraph"
    checkout = command.parent.parent.parent
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    args = ["config", "init", "--from-emulator", str(emu.endpoints_file), "--config",
            str(tmp_path / "config.toml"), "--json"]  # fmt: skip
    started = subprocess.run(
        [str(command.relative_to(checkout)), *args],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["next"].startswith(".venv/bin/cspgraph customers list")
    on_path = {**env, "PATH": f"{command.parent}:/usr/bin:/bin"}
    (tmp_path / "config.toml").unlink()
    found = subprocess.run(
        ["cspgraph", *args], cwd=tmp_path, env=on_path, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["next"].startswith("cspgraph customers list")
