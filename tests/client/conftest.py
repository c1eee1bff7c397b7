"""Client tests against the emulator: configurations built from its endpoints file, a provider
that is closed after each test, and helpers that ask the emulator's control API what it saw."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import DEMO_PARTNERS
from cspgraph.config import Config, config_from_data
from cspgraph.identity import TokenProvider

SECRET_ENV = {f"CSPGRAPH_SECRET_{r}": p["client_secret"] for r, p in DEMO_PARTNERS.items()}
NA_CLIENT = DEMO_PARTNERS["NA"]["client_id"]
EU_CLIENT = DEMO_PARTNERS["EU"]["client_id"]
AGENT = {"NA": "agent@partner.com", "EU": "agent@partner-eu.com"}
AGENT_PASSWORD = "P@ssw0rd-agent"


def emulator_config(
    emu: Emulator, tmp_path: Path, regions: tuple[str, ...] = ("NA", "EU"), **extra: Any
) -> Config:
    """A configuration for the emulator's demo world: hosts and CA from its endpoints file,
    secrets from (test-local) environment variables, caches in ``tmp_path``."""
    data: dict[str, Any] = {
        "emulator": str(emu.endpoints_file),
        "token_cache": str(tmp_path / "tokens.json"),
        "discovery_cache": "memory",
        "regions": {
            r: {
                "partner_tenant": DEMO_PARTNERS[r]["domain"],
                "client_id": DEMO_PARTNERS[r]["client_id"],
                "client_secret_env": f"CSPGRAPH_SECRET_{r}",
            }
            for r in regions
        },
        **extra,
    }
    return config_from_data(data, base_dir=tmp_path, env=SECRET_ENV)


@dataclass
class Control:
    """The emulator's control API, over its TLS."""

    emu: Emulator

    def get(self, path: str, **params: str) -> Any:
        e = self.emu.endpoints
        with httpx.Client(verify=ssl.create_default_context(cafile=e.ca_bundle)) as client:
            response = client.get(f"{e.control}/_emulator/{path}", params=params)
            response.raise_for_status()
            return response.json()

    def send(self, method: str, path: str, body: dict[str, Any]) -> None:
        e = self.emu.endpoints
        with httpx.Client(verify=ssl.create_default_context(cafile=e.ca_bundle)) as client:
            response = client.request(method, f"{e.control}/_emulator/{path}", json=body)
            response.raise_for_status()

    def tokens(self, **params: str) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = self.get("tokens", **params)["value"]
        return value

    def customers(self, region: str | None = None) -> list[dict[str, Any]]:
        return [
            t
            for t in self.get("world")["tenants"]
            if t["kind"] == "customer" and (region is None or t["region"] == region)
        ]


@pytest.fixture
def control(emulator: Emulator) -> Control:
    return Control(emulator)


WireLog = list[tuple[str, str]]


def record_requests(session: requests.Session) -> WireLog:
    """Every request the session sends, as (method, url), seen after it went on the wire."""
    seen: WireLog = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        seen.append((str(response.request.method), str(response.request.url)))

    session.hooks["response"].append(hook)
    return seen


@pytest.fixture
async def make_provider() -> AsyncIterator[Callable[..., TokenProvider]]:
    """TokenProviders closed on the test's event loop afterwards (their aiohttp session
    belongs to it)."""
    made: list[TokenProvider] = []

    def make(config: Config, **kwargs: Any) -> TokenProvider:
        provider = TokenProvider(config, **kwargs)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


@pytest.fixture
def provider(
    emulator: Emulator, tmp_path: Path, make_provider: Callable[..., TokenProvider]
) -> TokenProvider:
    return make_provider(emulator_config(emulator, tmp_path))
