"""Intune behind Graph: managed devices and device compliance policies.

Intune is a separate service: its items carry ``@odata.type``, its lists send ``@odata.count``
unasked and page with skip tokens like ``LastDeviceName='…',LastDeviceId='…'``, and its errors use
its own codes, with the service's JSON error text as the message.

A tenant without an Intune licence answers 400 ``BadRequest`` "Request not applicable to target
tenant." — the message is captured (CIPP, and a Graph SDK issue for a licence-gated endpoint
answering exactly this with code BadRequest); the status is inferred from that code.
"""

from __future__ import annotations

import orjson

from csp_emulator.graph import directory, odata
from csp_emulator.graph.errors import GraphError
from csp_emulator.graph.listing import collection_fragment
from csp_emulator.graph.request import Call, GraphResponse

NOT_APPLICABLE = "Request not applicable to target tenant."


def _licensed(call: Call) -> None:
    if not call.tenant.intune_licensed:
        raise GraphError(400, "BadRequest", NOT_APPLICABLE)


def intune_not_found(call: Call, path: str) -> GraphError:
    """Intune's 404: code ResourceNotFound, the message the service's own JSON error text."""
    inner = {
        "_version": 3,
        "Message": (
            "An error has occurred - Operation ID (for customer support): "
            "00000000-0000-0000-0000-000000000000 - Activity ID: "
            f"{call.request.request_id} - Url: "
            f"https://fef.msub01.manage.microsoft.com/DeviceFE/StatelessDeviceFEService/{path}"
            "?api-version=2023-07-04"
        ),
        "CustomApiErrorPhrase": "",
        "RetryAfter": None,
        "ErrorSourceService": "",
        "HttpHeaders": "{}",
    }
    return GraphError(404, "ResourceNotFound", orjson.dumps(inner).decode())


def list_managed_devices(call: Call) -> GraphResponse:
    _licensed(call)
    return directory.collection(
        call, "managedDevices", intune=True, context="deviceManagement/managedDevices"
    )


def get_managed_device(call: Call) -> GraphResponse:
    _licensed(call)
    device_id = call.params[0]
    device = call.tenant.get("managedDevices", device_id)
    if device is None:
        raise intune_not_found(call, f"deviceManagement/managedDevices('{device_id}')")
    select = directory.select_of(call, "managedDevices")
    return directory.entity(
        call,
        collection_fragment("deviceManagement/managedDevices", select),
        odata.project(device, select, "managedDevices"),
    )


def list_compliance_policies(call: Call) -> GraphResponse:
    _licensed(call)
    return directory.collection(
        call,
        "deviceCompliancePolicies",
        intune=True,
        context="deviceManagement/deviceCompliancePolicies",
    )


def get_compliance_policy(call: Call) -> GraphResponse:
    _licensed(call)
    policy_id = call.params[0]
    policy = call.tenant.get("deviceCompliancePolicies", policy_id)
    if policy is None:
        raise intune_not_found(call, f"deviceManagement/deviceCompliancePolicies('{policy_id}')")
    select = directory.select_of(call, "deviceCompliancePolicies")
    return directory.entity(
        call,
        collection_fragment("deviceManagement/deviceCompliancePolicies", select),
        odata.project(policy, select, "deviceCompliancePolicies"),
    )
