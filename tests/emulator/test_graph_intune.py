"""Intune through Graph: managed devices and compliance policies, Intune's paging and errors, and
the answer of a tenant without an Intune licence."""

from __future__ import annotations

import json
from urllib.parse import unquote

from csp_emulator.server import Emulator
from tests.conftest import MakeEmulator
from tests.emulator.graph_tokens import (
    CUSTOMER_DOMAIN,
    all_pages,
    app_token,
    graph_client,
    graph_world,
    tenant_of,
)

MANAGED_DEVICES = "/v1.0/deviceManagement/managedDevices"


def test_managed_devices_list_with_type_count_and_intune_skiptokens(emulator: Emulator) -> None:
    tenant = tenant_of(emulator, CUSTOMER_DOMAIN)
    with graph_client(emulator, app_token(emulator)) as graph:
        pages = all_pages(graph, MANAGED_DEVICES + "?$top=2")
    devices = [d for page in pages for d in page["value"]]
    assert sorted(d["id"] for d in devices) == sorted(tenant.objects["managedDevices"])
    assert {d["@odata.type"] for d in devices} == {"#microsoft.graph.managedDevice"}
    first = pages[0]
    assert first["@odata.context"] == (
        "https://graph.microsoft.com/v1.0/$metadata#deviceManagement/managedDevices"
    )
    assert first["@odata.count"] == len(devices)  # sent unasked, first page only
    assert all("@odata.count" not in page for page in pages[1:])
    token = unquote(first["@odata.nextLink"].split("$skiptoken=", 1)[1])
    assert token.startswith("LastDeviceName='") and f"LastDeviceId='{devices[1]['id']}'" in token


def test_managed_device_by_id_filter_and_select(emulator: Emulator) -> None:
    tenant = tenant_of(emulator, CUSTOMER_DOMAIN)
    device = next(iter(tenant.objects["managedDevices"].values()))
    with graph_client(emulator, app_token(emulator)) as graph:
        one = graph.get(f"{MANAGED_DEVICES}/{device['id']}").json()
        compliant = graph.get(
            MANAGED_DEVICES,
            params={"$filter": "complianceState eq 'compliant'", "$select": "deviceName"},
        ).json()
    assert one["deviceName"] == device["deviceName"]
    assert one["@odata.context"].endswith("#deviceManagement/managedDevices/$entity")
    expected = {
        d["deviceName"]
        for d in tenant.objects["managedDevices"].values()
        if d["complianceState"] == "compliant"
    }
    assert {d["deviceName"] for d in compliant["value"]} == expected


def test_missing_managed_device_answers_in_intune_codes(emulator: Emulator) -> None:
    with graph_client(emulator, app_token(emulator)) as graph:
        response = graph.get(f"{MANAGED_DEVICES}/00000000-0000-0000-0000-000000000bad")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "ResourceNotFound"
    assert json.loads(error["message"])["_version"] == 3  # Intune's own error text, as JSON


def test_compliance_policies_need_their_own_permission(emulator: Emulator) -> None:
    tenant = tenant_of(emulator, CUSTOMER_DOMAIN)
    with graph_client(emulator, app_token(emulator)) as graph:
        refused = graph.get("/v1.0/deviceManagement/deviceCompliancePolicies")
    assert refused.status_code == 403
    token = app_token(emulator, roles=["DeviceManagementConfiguration.Read.All"])
    with graph_client(emulator, token) as graph:
        policies = graph.get("/v1.0/deviceManagement/deviceCompliancePolicies").json()
    assert {p["id"] for p in policies["value"]} == set(tenant.objects["deviceCompliancePolicies"])
    assert all(p["@odata.type"].endswith("CompliancePolicy") for p in policies["value"])


def test_a_tenant_without_intune_answers_not_applicable(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(graph_world())
    with graph_client(emu, app_token(emu, "nointune.com")) as graph:
        response = graph.get(MANAGED_DEVICES)
        directory = graph.get("/v1.0/users")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (
        "BadRequest",
        "Request not applicable to target tenant.",
    )
    assert directory.status_code == 200  # the directory is still there
