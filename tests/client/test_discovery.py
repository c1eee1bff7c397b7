"""Discovery and region routing against the emulator, over real TLS."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import demo_world_data
from cspgraph.discovery import (
    RegionNotConfiguredError,
    TenantDiscovery,
    UnknownTenantError,
    WrongCloudError,
)
from cspgraph.http.errors import ErrorClass, TransientError
from cspgraph.http.retry import RetryPolicy
from cspgraph.identity import TokenProvider
from tests.client.conftest import EU_CLIENT, NA_CLIENT, Control, emulator_config, record_requests

MakeEmulator = Callable[..., Emulator]


async def test_a_domain_a_upn_and_the_guid_name_one_tenant(
    provider: TokenProvider, control: Control
) -> None:
    expected = next(t for t in control.customers("NA") if t["domain"] == "customer.com")
    by_domain = await provider.discovery.resolve("customer.com")
    assert by_domain.tenant_id == expected["id"]
    assert by_domain.region == "NA"
    assert by_domain.cloud_instance == "microsoftonline.com"
    assert by_domain.graph_host == provider.cloud.graph.split("://")[1]
    # The UPN's domain and the GUID are answered from the cache.
    sent = provider.discovery.requests_sent
    assert (await provider.discovery.resolve("admin@Customer.com")).tenant_id == expected["id"]
    assert (await provider.discovery.resolve(expected["id"].upper())).tenant_id == expected["id"]
    assert provider.discovery.requests_sent == sent == 1


async def test_concurrent_asks_for_one_customer_share_one_request(
    provider: TokenProvider, control: Control
) -> None:
    eu = control.customers("EU")[0]
    results = await asyncio.gather(*(provider.discovery.resolve(eu["domain"]) for _ in range(200)))
    assert {r.tenant_id for r in results} == {eu["id"]}
    assert provider.discovery.requests_sent == 1


async def test_sync_and_async_routes_agree(provider: TokenProvider, control: Control) -> None:
    eu = control.customers("EU")[0]
    route = await provider.route(eu["domain"])
    assert (route.tenant_id, route.region, route.identity.client_id) == (eu["id"], "EU", EU_CLIENT)
    again = provider.route_sync(f"someone@{eu['domain']}")
    assert (again.tenant_id, again.identity.client_id) == (eu["id"], EU_CLIENT)
    na = provider.route_sync("customer.com")
    assert (na.region, na.identity.client_id, na.identity.partner_tenant) == (
        "NA",
        NA_CLIENT,
        "partner.com",
    )
    assert na.authority == f"{provider.cloud.login}/{na.tenant_id}"


async def test_an_unknown_tenant_is_a_clear_bad_request(provider: TokenProvider) -> None:
    with pytest.raises(UnknownTenantError) as info:
        await provider.route("no-such-customer.example")
    error = info.value
    assert error.code == "AADSTS90002"
    assert error.error_class is ErrorClass.BAD_REQUEST
    assert error.status == 400
    assert "no tenant 'no-such-customer.example' in the global cloud" in str(error)
    with pytest.raises(UnknownTenantError):
        provider.route_sync("user@no-such-customer.example")


async def test_a_customer_of_an_unconfigured_region_is_refused_before_any_token_request(
    emulator: Emulator,
    control: Control,
    tmp_path: Path,
    make_provider: Callable[..., TokenProvider],
) -> None:
    provider = make_provider(emulator_config(emulator, tmp_path, regions=("NA",)))
    wire = record_requests(provider.session)
    eu = control.customers("EU")[1]
    # The session's emulator is shared by this worker's tests: what it issued before stays.
    issued_before = control.tokens(tenant=eu["id"])
    with pytest.raises(RegionNotConfiguredError) as info:
        await provider.get_token(eu["domain"])
    message = str(info.value)
    assert "is in region EU, and no partner identity serves EU (configured: NA)" in message
    assert "add a [regions.EU] section with partner_tenant, client_id and a credential" in message
    assert info.value.error_class is ErrorClass.NEEDS_PERSON
    assert info.value.tenant == eu["id"]
    with pytest.raises(RegionNotConfiguredError):
        provider.get_token_sync(eu["id"])
    # Nothing but discovery went out (no token POST), and the emulator issued nothing there.
    assert all(method == "GET" for method, _ in wire)
    assert provider.app_tokens.token_requests == 0
    assert control.tokens(tenant=eu["id"]) == issued_before


async def test_a_customer_in_another_national_cloud_is_refused(
    make_emulator: MakeEmulator,
    tmp_path: Path,
    make_provider: Callable[..., TokenProvider],
) -> None:
    world = demo_world_data(customers=2)
    world["tenant"].append(
        {"domain": "agency.gov", "cloud": "usgov", "region": "NA", "partner": "partner.com"}
    )
    emu = make_emulator(world)
    provider = make_provider(emulator_config(emu, tmp_path))
    with pytest.raises(WrongCloudError, match="is in the usgov cloud, and this configuration"):
        await provider.route("agency.gov")


async def test_a_failing_login_host_is_retried_then_transient_and_not_remembered(
    make_emulator: MakeEmulator,
    tmp_path: Path,
    make_provider: Callable[..., TokenProvider],
) -> None:
    emu = make_emulator()
    retry = RetryPolicy(max_retries=2, backoff_base=0.01)
    provider = make_provider(emulator_config(emu, tmp_path), retry=retry)
    # As many 503s as the first try and its two retries.
    fault = {"host": "login", "kind": "503", "count": 3, "path_prefix": "/customer.com/"}
    Control(emu).send("POST", "faults", fault)
    with pytest.raises(TransientError) as info:
        await provider.route("customer.com")
    assert info.value.retryable and info.value.status == 503
    assert provider.discovery.requests_sent == 3
    assert (await provider.route("customer.com")).region == "NA"  # spent: not remembered
    # One 503 alone is retried and never seen.
    Control(emu).send("POST", "faults", {**fault, "count": 1})
    provider.discovery.forget("customer.com")
    assert (await provider.route("customer.com")).region == "NA"


async def test_the_disk_cache_survives_a_restart_and_expires(
    emulator: Emulator, tmp_path: Path
) -> None:
    cloud = emulator_config(emulator, tmp_path).cloud()
    path = tmp_path / "discovery.json"
    first = TenantDiscovery(cloud, cache_path=path)
    info = await first.resolve("customer.com")
    await first.aclose()
    assert path.stat().st_mode & 0o777 == 0o600
    second = TenantDiscovery(cloud, cache_path=path)
    assert (await second.resolve("customer.com")) == info
    assert second.requests_sent == 0
    await second.aclose()
    expired = TenantDiscovery(cloud, cache_path=path, ttl=0)
    assert (await expired.resolve("customer.com")).tenant_id == info.tenant_id
    assert expired.requests_sent == 1
    await expired.aclose()
    # Another cloud's (or emulator's) cache file is ignored, not trusted.
    other = TenantDiscovery(cloud.with_hosts(login="https://127.0.0.1:1"), cache_path=path)
    assert other.cached("customer.com") is None
    await other.aclose()
