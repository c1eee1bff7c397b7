"""The emulator's listeners, its local CA and endpoints file, and the control API, over HTTPS."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from csp_emulator.server import Emulator
from csp_emulator.world.worldfile import demo_world, load_world_file
from tests.conftest import EXAMPLE_WORLD, MakeEmulator, tls


def control(emu: Emulator) -> httpx.Client:
    return httpx.Client(base_url=emu.endpoints.control + "/_emulator", verify=tls(emu))


def test_endpoints_file_names_one_https_origin_per_host(emulator: Emulator) -> None:
    data = json.loads(emulator.endpoints_file.read_text())
    assert set(data) == {"authority_host", "graph", "partner_center", "control", "ca_bundle"}
    origins = [data[k] for k in ("authority_host", "graph", "partner_center", "control")]
    assert all(o.startswith("https://127.0.0.1:") for o in origins)
    assert len(set(origins)) == 4
    assert Path(data["ca_bundle"]).is_absolute() and Path(data["ca_bundle"]).exists()


def test_tls_is_trusted_only_through_the_local_ca(emulator: Emulator) -> None:
    url = emulator.endpoints.control + "/_emulator/health"
    assert httpx.get(url, verify=tls(emulator)).json()["status"] == "ok"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(url, verify=ssl.create_default_context())
    # `localhost` is in the certificate too
    local = url.replace("127.0.0.1", "localhost")
    assert httpx.get(local, verify=tls(emulator)).status_code == 200


def test_restart_with_the_same_state_dir_keeps_trust_and_signing_key(tmp_path: Path) -> None:
    with Emulator(demo_world, state_dir=tmp_path) as first:
        ca = Path(first.endpoints.ca_bundle).read_bytes()
        kid = first.ctx.keys.kid
    with Emulator(demo_world, state_dir=tmp_path) as second:
        assert Path(second.endpoints.ca_bundle).read_bytes() == ca
        assert second.ctx.keys.kid == kid
    assert oct((tmp_path / "signing-key.pem").stat().st_mode & 0o777) == "0o600"


def test_world_view_lists_tenants_with_regions_and_relationships(emulator: Emulator) -> None:
    with control(emulator) as c:
        world = c.get("/world").json()
    by_domain = {t["domain"]: t for t in world["tenants"]}
    assert by_domain["partner.com"]["kind"] == "partner"
    customer = by_domain["customer.com"]
    assert customer["region"] == "NA"
    assert customer["partners"][0]["in_effect"] is True
    assert customer["counts"]["users"] > 0


def test_clock_advances_and_never_goes_back(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(load_world_file_factory())
    with control(emu) as c:
        before = c.get("/clock").json()["epoch"]
        after = c.post("/clock", json={"seconds": "3m"}).json()
        assert after["offset"] == 180
        assert after["epoch"] >= before + 180
        assert c.post("/clock", json={"seconds": -5}).status_code == 400


def test_settings_change_and_bad_keys_are_named(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(load_world_file_factory())
    with control(emu) as c:
        changed = c.put(
            "/settings",
            json={"propagation_delay": "5s", "page_size": 10, "throttling": {"enabled": False}},
        ).json()
        assert changed["propagation_delay"] == 5
        assert changed["page_size"] == 10
        assert changed["throttling"]["enabled"] is False
        bad = c.put("/settings", json={"propagation_dealy": "5s"})
        assert bad.status_code == 400 and "propagation_dealy" in bad.json()["error"]
        assert c.put("/settings", json={"token_lifetime": "2m"}).status_code == 400


def test_relationship_created_now_takes_the_propagation_delay(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(load_world_file_factory())
    with control(emu) as c:
        c.put("/settings", json={"propagation_delay": "30s"})
        made = c.post("/tenants", json={})  # the collection of tenants is not writable
        assert made.status_code in (404, 405)
        # customer.com already has partner.com; end it, then create it anew
        assert (
            c.request(
                "DELETE",
                "/relationships",
                json={"partner": "partner.com", "customer": "customer.com"},
            ).status_code
            == 204
        )
        rel = c.post("/relationships", json={"partner": "partner.com", "customer": "customer.com"})
        assert rel.status_code == 201
        assert rel.json()["effective_at"] - rel.json()["created_at"] == 30
        tenant = c.get("/tenants/customer.com").json()
        assert tenant["partners"][0]["in_effect"] is False
        c.post("/clock", json={"seconds": 31})
        assert c.get("/tenants/customer.com").json()["partners"][0]["in_effect"] is True
        dup = c.post("/relationships", json={"partner": "partner.com", "customer": "customer.com"})
        assert dup.status_code == 409


def test_objects_change_behind_graphs_back(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(load_world_file_factory())
    tenant = emu.world.tenant("customer.com")
    assert tenant is not None
    seq_before = tenant.seq
    with control(emu) as c:
        made = c.post(
            "/tenants/customer.com/users",
            json={
                "userPrincipalName": "new.hire@customer.com",
                "password": "x",
                "displayName": "New Hire",
            },
        )
        assert made.status_code == 201
        body: dict[str, Any] = made.json()
        assert body["displayName"] == "New Hire"
        assert "_password" not in body  # private bookkeeping never leaves the emulator
        device = next(iter(tenant.objects["managedDevices"]))
        patched = c.patch(
            f"/tenants/customer.com/managedDevices/{device}",
            json={"complianceState": "noncompliant"},
        )
        assert patched.json()["complianceState"] == "noncompliant"
        assert c.delete(f"/tenants/customer.com/users/{body['id']}").status_code == 204
        assert c.get(f"/tenants/customer.com/users/{body['id']}").status_code == 404
        assert c.get("/tenants/nowhere.com/users").status_code == 404
        assert c.get("/tenants/customer.com/mailboxes").status_code == 404
    assert tenant.seq == seq_before + 3
    assert body["id"] in tenant.tombstones["users"]


def test_faults_are_listed_added_and_removed(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(load_world_file_factory())
    with control(emu) as c:
        made = c.post("/faults", json={"host": "graph", "kind": "503", "rate": 0.5, "count": 3})
        assert made.status_code == 201
        assert [f["kind"] for f in c.get("/faults").json()["value"]] == ["503"]
        assert c.post("/faults", json={"kind": "503", "colour": "red"}).status_code == 400
        assert c.delete(f"/faults/{made.json()['id']}").status_code == 204
        assert c.get("/faults").json()["value"] == []


def test_reset_restores_the_world_from_its_source(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(load_world_file_factory())
    with control(emu) as c:
        c.post("/clock", json={"seconds": 60})
        c.post("/tenants/customer.com/users", json={"userPrincipalName": "x@customer.com"})
        assert c.get("/tenants/customer.com").json()["counts"]["users"] == 27
        c.post("/reset")
        assert c.get("/tenants/customer.com").json()["counts"]["users"] == 26


def test_issued_tokens_list_starts_empty(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(load_world_file_factory())
    with control(emu) as c:
        assert c.get("/tokens").json() == {"value": [], "count": 0}


def load_world_file_factory() -> Any:
    return lambda: load_world_file(EXAMPLE_WORLD)
