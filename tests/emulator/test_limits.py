"""Graph's throttling model: RU costs, budgets per scope, windows on an injected clock."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from csp_emulator.context import EmulatorContext, Endpoints
from csp_emulator.identity.tokens import SigningKeys
from csp_emulator.limits import (
    Throttle,
    resource_cost,
    tenant_ru_budget,
    throttled_response_body,
)
from csp_emulator.world.model import Tenant, ThrottleSettings, World
from tests.conftest import MakeEmulator

APP = "6731de76-14a6-49ae-97bc-6eba6914391e"
OTHER_APP = "0f4d3c2b-8a91-4f6e-b7d5-2c1e9a8b7f60"


class FakeClock:
    def __init__(self, start: float = 1_000.0) -> None:  # a multiple of every window length
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def make_tenant(users: int = 10, name: str = "t") -> Tenant:
    tenant = Tenant(id=f"{name}-id", display_name=name, domains=[f"{name}.onmicrosoft.com"])
    tenant.objects["users"] = {str(i): {"id": str(i)} for i in range(users)}
    return tenant


def make_throttle(scale: float = 1.0, enabled: bool = True) -> tuple[Throttle, FakeClock]:
    clock = FakeClock()
    return Throttle(ThrottleSettings(enabled=enabled, scale=scale), clock.now), clock


def spend(throttle: Throttle, tenant: Tenant, cost: int, times: int, app: str = APP) -> None:
    for i in range(times):
        verdict = throttle.charge(app, tenant, "identity", cost, False)
        assert verdict.allowed, f"request {i + 1} of {times} was refused: {verdict.headers}"


# -- costs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "kind", "select", "top", "expand", "expected"),
    [
        ("GET", "users", False, None, False, 2),
        ("GET", "users", True, None, False, 1),
        ("GET", "users", True, 10, False, 1),  # never below 1
        ("GET", "users", False, 5, False, 1),
        ("GET", "users", False, 20, False, 2),  # $top < 20 only
        ("GET", "users", False, None, True, 3),
        ("GET", "applications", False, None, False, 2),
        ("GET", "memberOf", False, None, False, 2),
        ("GET", "members", False, None, False, 3),
        ("GET", "subscribedSkus", False, None, False, 3),
        ("POST", "getByIds", False, None, False, 3),  # a read sent as a POST
        ("GET", "transitiveMembers", False, None, False, 5),
        ("GET", "transitiveMembers", True, 5, False, 3),
        ("GET", "transitiveMembers", False, None, True, 6),
        ("GET", "other", False, None, False, 1),
        ("GET", "other", True, 1, False, 1),
        ("POST", "users", False, None, False, 1),
        ("PATCH", "users", True, None, True, 1),
        ("DELETE", "members", False, None, False, 1),
    ],
)
def test_resource_cost(
    method: str, kind: str, select: bool, top: int | None, expand: bool, expected: int
) -> None:
    assert resource_cost(method, kind, has_select=select, top=top, expand=expand) == expected


def test_unknown_path_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown path kind"):
        resource_cost("GET", "mail", has_select=False, top=None)


@pytest.mark.parametrize(
    ("users", "budget"), [(0, 3_500), (49, 3_500), (50, 5_000), (500, 5_000), (501, 8_000)]
)
def test_tenant_size_bands(users: int, budget: int) -> None:
    assert tenant_ru_budget(users) == budget


# -- per app+tenant budgets -----------------------------------------------------------------------


def test_small_tenant_budget_is_exact_and_refusal_names_the_scope() -> None:
    throttle, _ = make_throttle()
    tenant = make_tenant(users=10)
    spend(throttle, tenant, 2, 1_750)  # 3,500 RU
    verdict = throttle.charge(APP, tenant, "identity", 2, False)
    assert not verdict.allowed
    assert verdict.headers["x-ms-resource-unit"] == "2"
    assert verdict.headers["x-ms-throttle-scope"] == f"Tenant_Application/ReadWrite/{APP}/t-id"
    assert verdict.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert verdict.headers["Retry-After"] == "10.006"  # next window, once 2 RU of 3,500 fade
    assert verdict.retry_after == pytest.approx(10.006)


@pytest.mark.parametrize(("users", "budget"), [(100, 5_000), (600, 8_000)])
def test_medium_and_large_tenant_budgets(users: int, budget: int) -> None:
    throttle, _ = make_throttle(scale=0.1)
    tenant = make_tenant(users=users)
    spend(throttle, tenant, 5, budget // 10 // 5)
    assert not throttle.charge(APP, tenant, "identity", 5, False).allowed
    # Another app in the same tenant has its own budget.
    assert throttle.charge(OTHER_APP, tenant, "identity", 5, False).allowed


def test_window_recovers_exactly_when_retry_after_says() -> None:
    throttle, clock = make_throttle()
    tenant = make_tenant()
    spend(throttle, tenant, 2, 1_750)
    refused = throttle.charge(APP, tenant, "identity", 2, False)
    assert refused.retry_after is not None
    clock.advance(refused.retry_after - 0.001)
    assert not throttle.charge(APP, tenant, "identity", 2, False).allowed
    clock.advance(0.001)
    assert throttle.charge(APP, tenant, "identity", 2, False).allowed


def test_window_scale_shortens_every_window_and_retry_after_with_it() -> None:
    clock = FakeClock()
    throttle = Throttle(ThrottleSettings(scale=0.01, window_scale=0.25), clock.now)
    tenant = make_tenant()
    spend(throttle, tenant, 5, 7)  # 35 RU, all of the tenant's budget, now per 2.5 s
    refused = throttle.charge(APP, tenant, "identity", 5, False)
    assert refused.headers["Retry-After"] == "2.858"  # the next window, once 5 of 35 RU fade
    clock.advance(5)  # two (short) windows on, nothing carries
    spend(throttle, tenant, 5, 7)


def test_usage_fades_over_the_next_window_and_is_gone_after_it() -> None:
    throttle, clock = make_throttle(scale=0.01)  # 35 RU per 10 s
    tenant = make_tenant()
    spend(throttle, tenant, 5, 7)  # all 35 RU at the start of a window
    clock.advance(15)  # half-way through the next window: half of 35 still counts
    spend(throttle, tenant, 1, 17)
    assert not throttle.charge(APP, tenant, "identity", 1, False).allowed
    clock.advance(10)  # half-way through the window after: only the 17 RU carry, half of them
    spend(throttle, tenant, 1, 26)
    assert not throttle.charge(APP, tenant, "identity", 1, False).allowed
    clock.advance(20)  # two windows on, nothing carries
    spend(throttle, tenant, 1, 35)


def test_refusal_inside_a_window_waits_for_the_previous_share_to_fade() -> None:
    throttle, clock = make_throttle(scale=0.01)  # 35 RU per 10 s
    tenant = make_tenant()
    spend(throttle, tenant, 5, 7)
    clock.advance(10)  # a new window carrying all 35 RU, fading linearly over 10 s
    verdict = throttle.charge(APP, tenant, "identity", 5, False)
    assert not verdict.allowed
    assert verdict.headers["Retry-After"] == "1.429"  # 5 of 35 RU fade in 10/7 s


def test_limit_percentage_is_sent_only_above_80_percent() -> None:
    throttle, _ = make_throttle(scale=0.01)  # 35 RU
    tenant = make_tenant()
    first = throttle.charge(APP, tenant, "identity", 5, False)
    assert "x-ms-throttle-limit-percentage" not in first.headers
    spend(throttle, tenant, 5, 4)  # 25 RU
    near = throttle.charge(APP, tenant, "identity", 5, False)  # 30 of 35: 86 %
    assert near.allowed
    assert near.headers["x-ms-throttle-limit-percentage"] == "0.9"
    over = throttle.charge(APP, tenant, "identity", 5, False)  # 35 of 35 still fits
    assert over.headers["x-ms-throttle-limit-percentage"] == "1.0"
    refused = throttle.charge(APP, tenant, "identity", 5, False)
    assert not refused.allowed
    assert refused.headers["x-ms-throttle-limit-percentage"] == "1.1"


def test_a_refused_request_consumes_nothing() -> None:
    throttle, _ = make_throttle(scale=0.01)  # 35 RU
    tenant = make_tenant()
    spend(throttle, tenant, 2, 17)  # 34 RU
    assert not throttle.charge(APP, tenant, "identity", 5, False).allowed
    assert throttle.charge(APP, tenant, "identity", 1, False).allowed  # the 5 were not taken
    assert not throttle.charge(APP, tenant, "identity", 1, False).allowed


def test_a_request_dearer_than_a_scaled_budget_needs_an_idle_window() -> None:
    throttle, clock = make_throttle(scale=0.0001)  # 0.35 RU: clamped to 1 RU
    tenant = make_tenant()
    assert throttle.charge(APP, tenant, "identity", 5, False).allowed
    refused = throttle.charge(APP, tenant, "identity", 5, False)
    assert not refused.allowed
    assert refused.retry_after is not None
    clock.advance(refused.retry_after)
    assert throttle.charge(APP, tenant, "identity", 5, False).allowed


# -- settings -------------------------------------------------------------------------------------


def test_scale_multiplies_budgets_and_applies_at_once() -> None:
    throttle, _ = make_throttle(scale=0.01)  # 35 RU
    tenant = make_tenant()
    spend(throttle, tenant, 2, 17)
    assert not throttle.charge(APP, tenant, "identity", 2, False).allowed
    throttle.settings.scale = 0.02  # 70 RU, as the control API would change it
    spend(throttle, tenant, 2, 18)
    assert not throttle.charge(APP, tenant, "identity", 2, False).allowed


def test_disabled_throttling_admits_everything_but_still_reports_cost() -> None:
    throttle, _ = make_throttle(enabled=False)
    tenant = make_tenant()
    for _ in range(5_000):
        verdict = throttle.charge(APP, tenant, "identity", 5, True)
        assert verdict.allowed
    assert verdict.headers == {"x-ms-resource-unit": "5"}
    assert throttle.charge(APP, tenant, "intune", 1, False).headers == {}


def test_unknown_family_is_refused() -> None:
    throttle, _ = make_throttle()
    with pytest.raises(ValueError, match="unknown throttling family"):
        throttle.charge(APP, make_tenant(), "mail", 1, False)


# -- per app, across tenants ----------------------------------------------------------------------


def test_per_app_budget_spans_tenants_and_ignores_refused_requests() -> None:
    # 35 RU per tenant and 1,500 RU per app; 5-RU requests stay under the 1,300-request budget.
    throttle, _ = make_throttle(scale=0.01)
    tenants = [make_tenant(name=f"t{i}") for i in range(50)]
    spend(throttle, tenants[0], 5, 7)
    for _ in range(1_000):  # refused in tenant 0: none of it may reach the app-wide budget
        assert not throttle.charge(APP, tenants[0], "identity", 5, False).allowed
    remaining = (1_500 - 35) // 5
    for tenant in tenants[1:]:
        take = min(7, remaining)
        spend(throttle, tenant, 5, take)
        remaining -= take
        if not remaining:
            break
    fresh = make_tenant(name="fresh")
    refused = throttle.charge(APP, fresh, "identity", 5, False)
    assert not refused.allowed
    assert refused.headers["x-ms-throttle-scope"] == f"Application/ReadWrite/{APP}/fresh-id"
    assert throttle.charge(OTHER_APP, fresh, "identity", 1, False).allowed


def test_graph_wide_request_budget_spans_families() -> None:
    throttle, _ = make_throttle(scale=0.001)  # 130 requests per app per 10 s
    for i in range(65):  # Intune at this scale: 2 per app+tenant, 4 per tenant
        tenant = make_tenant(name=f"t{i}")
        for _ in range(2):
            assert throttle.charge(APP, tenant, "intune", 1, False).allowed
    refused = throttle.charge(APP, make_tenant(name="fresh"), "identity", 1, False)
    assert not refused.allowed
    assert refused.headers["x-ms-throttle-scope"].startswith("Application/ReadWrite/")


# -- writes ---------------------------------------------------------------------------------------


def test_writes_have_their_own_budget_per_app_and_tenant() -> None:
    throttle, clock = make_throttle(scale=0.01)  # 30 writes per 150 s; 35 RU per 10 s
    tenant = make_tenant()
    for _ in range(30):
        assert throttle.charge(APP, tenant, "identity", 1, True).allowed
    refused = throttle.charge(APP, tenant, "identity", 1, True)
    assert not refused.allowed
    assert refused.headers["x-ms-throttle-scope"] == f"Tenant_Application/Write/{APP}/t-id"
    assert refused.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    # 150-s windows: the clock is 2/3 into one, so the 30 writes start fading in 50 s and one
    # write's worth (1/30 of a window) has faded 5 s later.
    assert refused.retry_after == pytest.approx(55, abs=0.002)
    assert throttle.charge(APP, tenant, "identity", 1, False).allowed  # reads still fit
    clock.advance(refused.retry_after)
    assert throttle.charge(APP, tenant, "identity", 1, True).allowed


def test_per_tenant_write_budget_spans_apps() -> None:
    throttle, _ = make_throttle(scale=0.01)  # 180 writes per tenant per 5 min
    tenant = make_tenant()
    apps = [f"00000000-0000-0000-0000-{i:012d}" for i in range(7)]
    for app in apps[:6]:
        for _ in range(30):
            assert throttle.charge(app, tenant, "identity", 1, True).allowed
    refused = throttle.charge(apps[6], tenant, "identity", 1, True)
    assert not refused.allowed
    assert refused.headers["x-ms-throttle-scope"] == f"Tenant/Write/{apps[6]}/t-id"


# -- Intune ---------------------------------------------------------------------------------------


def test_intune_counts_requests_per_app_and_tenant_and_per_tenant() -> None:
    throttle, _ = make_throttle(scale=0.01)  # 20 per app+tenant, 40 per tenant, per 20 s
    tenant = make_tenant()
    for _ in range(20):
        verdict = throttle.charge(APP, tenant, "intune", 99, False)  # RU do not count here
        assert verdict.allowed
        assert "x-ms-resource-unit" not in verdict.headers
    refused = throttle.charge(APP, tenant, "intune", 1, False)
    assert not refused.allowed
    assert "Retry-After" in refused.headers
    assert "x-ms-throttle-scope" not in refused.headers
    for _ in range(20):
        assert throttle.charge(OTHER_APP, tenant, "intune", 1, False).allowed
    third = "00000000-0000-0000-0000-000000000003"
    assert not throttle.charge(third, tenant, "intune", 1, False).allowed
    # Directory budgets are separate from Intune's.
    assert throttle.charge(third, tenant, "identity", 1, False).allowed


def test_intune_writes() -> None:
    throttle, _ = make_throttle(scale=0.01)  # 2 writes per app+tenant per 20 s
    tenant = make_tenant()
    assert throttle.charge(APP, tenant, "intune", 1, True).allowed
    assert throttle.charge(APP, tenant, "intune", 1, True).allowed
    assert not throttle.charge(APP, tenant, "intune", 1, True).allowed
    assert throttle.charge(APP, tenant, "intune", 1, False).allowed


# -- wiring ---------------------------------------------------------------------------------------


def test_one_throttle_per_context_dropped_on_reset(tmp_path: Path) -> None:
    endpoints = Endpoints("https://a", "https://g", "https://p", "https://c", "ca.pem")
    ctx = EmulatorContext(World(), SigningKeys(tmp_path), endpoints, world_factory=World)
    throttle = ctx.state.graph.throttle
    assert throttle.settings is ctx.world.settings.throttling
    ctx.world.clock.advance(60)
    assert throttle.now() == pytest.approx(ctx.world.clock.now(), abs=1)
    ctx.reset()
    assert ctx.state.graph.throttle is not throttle
    assert ctx.state.graph.throttle.settings is ctx.world.settings.throttling


def test_throttled_body_is_graphs() -> None:
    body = throttled_response_body("rid", "crid", "2020-08-18T12:51:51")
    assert body == {
        "error": {
            "code": "TooManyRequests",
            "message": "Please retry again later.",
            "innerError": {
                "code": "429",
                "date": "2020-08-18T12:51:51",
                "message": "Please retry after",
                "request-id": "rid",
                "status": "429",
                "client-request-id": "crid",
            },
        }
    }


# -- through Graph, over HTTPS --------------------------------------------------------------------


def test_graph_answers_429_from_this_model(make_emulator: MakeEmulator) -> None:
    app, secret = "6731de76-14a6-49ae-97bc-6eba6914391e", "s3cret"
    world = {
        "settings": {"throttling": {"scale": 0.001}},  # a small tenant's budget: 3.5 RU
        "tenant": [
            {
                "domain": "partner.com",
                "kind": "partner",
                "app": [
                    {
                        "display_name": "CSP app",
                        "client_id": app,
                        "client_secret": secret,
                        "admin_agents": True,
                        "application_permissions": ["User.Read.All"],
                    }
                ],
            },
            {"domain": "customer.com", "partner": "partner.com"},
        ],
    }
    emu = make_emulator(world)
    context = ssl.create_default_context(cafile=emu.endpoints.ca_bundle)
    with httpx.Client(verify=context, timeout=10) as http:
        token = http.post(
            f"{emu.endpoints.authority_host}/customer.com/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": app,
                "client_secret": secret,
                "scope": "https://graph.microsoft.com/.default",
            },
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "client-request-id": "crid"}
        first = http.get(emu.endpoints.graph + "/v1.0/users", headers=headers)
        second = http.get(emu.endpoints.graph + "/v1.0/users", headers=headers)
    assert first.status_code == 200, first.text
    assert first.headers["x-ms-resource-unit"] == "2"
    assert second.status_code == 429
    tenant = emu.world.tenant("customer.com")
    assert tenant is not None
    assert (
        second.headers["x-ms-throttle-scope"] == f"Tenant_Application/ReadWrite/{app}/{tenant.id}"
    )
    assert second.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert float(second.headers["retry-after"]) > 0
    error = second.json()["error"]
    assert error["code"] == "TooManyRequests"
    assert error["innerError"]["client-request-id"] == "crid"
