"""Graph's ``/tenantRelationships``: GDAP relationships, their access assignments, requests and
operations, and the partner's delegated-admin customers (v1.0 and beta alike).

Served in the **partner** tenant (the token's tenant). Who may call, beyond the permissions
authz.py checks (``DelegatedAdminRelationship.Read.All`` / ``.ReadWrite.All``):

* an app-only caller needs the "Partner Customer Delegated Administration" service principal
  (appId 2832473f-…) in the partner tenant (wire-facts §5.1), else 403 (*unverified* answer);
* the caller (the user, or the app's service principal) must be in the partner's
  ``AdminAgents``. Otherwise the list calls answer **200 with an empty list** — Microsoft's
  behaviour "by design" (microsoft-graph-docs issue 8921) — and every other call 403
  (*unverified*).

Shapes follow the Graph docs' examples: ``@odata.etag`` on every relationship and assignment,
``Location`` on creation, ``202`` + ``Location`` (an operation) + ``Retry-After: 10`` for an
assignment's role change. Error codes are the GDAP service's camel-case ones seen in the wild
(``conflict`` "The resource already exists.", ``badRequest`` "The passed in
delegatedAdminRelationshipId is invalid."); the other messages are the emulator's (*unverified*).
"""

from __future__ import annotations

import json
from typing import Any

from csp_emulator import roles, wellknown
from csp_emulator.graph.directory import entity, select_of, static_collection
from csp_emulator.graph.errors import GraphError, access_denied, invalid_json
from csp_emulator.graph.listing import collection_fragment
from csp_emulator.graph.odata import project
from csp_emulator.graph.request import Call, GraphResponse
from csp_emulator.world import gdap
from csp_emulator.world.model import Tenant

ROOT = "tenantRelationships/delegatedAdminRelationships"
RELATIONSHIPS = "delegatedAdminRelationships"
ASSIGNMENTS = "delegatedAdminAccessAssignments"
REQUESTS = "delegatedAdminRelationshipRequests"
OPERATIONS = "delegatedAdminRelationshipOperations"
CUSTOMERS = "delegatedAdminCustomers"
DETAILS = "delegatedAdminServiceManagementDetails"

# Writable on create; in `created` every one of them, once active only autoExtendDuration.
_CREATE_KEYS = ("displayName", "duration", "customer", "accessDetails", "autoExtendDuration")
_READ_ONLY_KEYS = frozenset(
    {"id", "status", "createdDateTime", "lastModifiedDateTime", "activatedDateTime",
     "endDateTime", "accessAssignments", "operations", "requests"}
)  # fmt: skip
RETRY_AFTER = "10"


# -- errors ---------------------------------------------------------------------------------------


def bad_request(message: str) -> GraphError:
    return GraphError(400, "badRequest", message)


def conflict() -> GraphError:
    return GraphError(409, "conflict", "The resource already exists.")


def not_found(kind: str, object_id: str) -> GraphError:
    # Code and wording unverified: the service's camel-case family, Graph's usual sentence.
    return GraphError(404, "notFound", f"The {kind} '{object_id}' was not found.")


# -- who calls ------------------------------------------------------------------------------------


def _partner(call: Call) -> Tenant:
    tenant = call.tenant
    if tenant.kind != "partner":
        # Only a partner tenant has delegated admin relationships (answer unverified).
        raise access_denied()
    if not call.caller.delegated and (
        tenant.service_principal_by_app_id(wellknown.PARTNER_DELEGATED_ADMIN_APP_ID) is None
    ):
        raise GraphError(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation. [cspgraph emulator: app-only "
            "calls to the GDAP APIs need the 'Partner Customer Delegated Administration' service "
            f"principal (appId {wellknown.PARTNER_DELEGATED_ADMIN_APP_ID}) in the partner tenant.]",
        )
    return tenant


def in_admin_agents(tenant: Tenant, object_id: str | None) -> bool:
    group = tenant.group_by_name("AdminAgents")
    return bool(object_id) and group is not None and object_id in group.get("_members", ())


def _allowed(call: Call) -> bool:
    return in_admin_agents(_partner(call), call.caller.object_id)


def _require_agent(call: Call) -> Tenant:
    tenant = _partner(call)
    if not in_admin_agents(tenant, call.caller.object_id):
        raise access_denied()
    return tenant


# -- wire shapes ----------------------------------------------------------------------------------


def _unified_roles(role_ids: list[str]) -> dict[str, Any]:
    return {"unifiedRoles": [{"roleDefinitionId": r} for r in role_ids]}


def relationship_json(rel: gdap.Relationship, now: float) -> dict[str, Any]:
    customer = (
        {"tenantId": rel.customer_id, "displayName": rel.customer_name} if rel.customer_id else None
    )
    return {
        "@odata.type": "#microsoft.graph.delegatedAdminRelationship",
        "@odata.etag": rel.etag(now),
        "id": rel.id,
        "displayName": rel.display_name,
        "duration": rel.duration,
        "status": rel.status(now),
        "autoExtendDuration": rel.auto_extend,
        "createdDateTime": gdap.timestamp(rel.created_at),
        "lastModifiedDateTime": gdap.timestamp(rel.modified_at),
        # The docs' sample shows "" before activation; null parses in every SDK (a choice).
        "activatedDateTime": gdap.timestamp(rel.activated_at)
        if rel.activated_at is not None and now >= rel.activated_at
        else None,
        "endDateTime": gdap.timestamp(rel.end()),
        "customer": customer,
        "accessDetails": _unified_roles(rel.roles),
    }


def assignment_json(assignment: gdap.AccessAssignment, now: float) -> dict[str, Any]:
    status = assignment.status(now)
    return {
        "@odata.type": "#microsoft.graph.delegatedAdminAccessAssignment",
        "@odata.etag": gdap.etag(assignment.id, assignment.version, status),
        "id": assignment.id,
        "status": status,
        "createdDateTime": gdap.timestamp(assignment.created_at),
        "lastModifiedDateTime": gdap.timestamp(assignment.modified_at),
        "accessContainer": {
            "accessContainerId": assignment.group_id,
            "accessContainerType": "securityGroup",
        },
        "accessDetails": _unified_roles(assignment.roles),
    }


def request_status(rel: gdap.Relationship, request: gdap.RelationshipRequest, now: float) -> str:
    status = rel.status(now)
    if request.action == "terminate":
        return "succeeded" if status == "terminated" else "pending"
    if status in ("approvalPending", "created"):
        return "pending"
    if (status == "expired" and rel.approved_at is None) or rel.declined_at is not None:
        return "failed"
    return "succeeded"


def request_json(
    rel: gdap.Relationship, request: gdap.RelationshipRequest, now: float, *, created: bool = False
) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.delegatedAdminRelationshipRequest",
        "id": request.id,
        "action": request.action,
        "status": "created" if created else request_status(rel, request, now),
        "createdDateTime": gdap.timestamp(request.created_at),
        "lastModifiedDateTime": gdap.timestamp(request.created_at),
    }


def operation_json(operation: gdap.Operation, now: float) -> dict[str, Any]:
    status = operation.status(now)
    return {
        "@odata.type": "#microsoft.graph.delegatedAdminRelationshipOperation",
        "@odata.etag": gdap.etag(operation.id, 1, status),
        "id": operation.id,
        "operationType": operation.operation_type,
        "data": operation.data,
        "status": status,
        "createdDateTime": gdap.timestamp(operation.created_at),
        "lastModifiedDateTime": gdap.timestamp(min(now, operation.done_at)),
    }


def _one(call: Call, fragment: str, resource: str, item: dict[str, Any]) -> GraphResponse:
    select = select_of(call, resource)
    return entity(call, collection_fragment(fragment, select), project(item, select, resource))


def _location(call: Call, path: str) -> str:
    return f"{call.ctx.endpoints.graph}/{call.request.version}/{path}"


def _created(
    call: Call, fragment: str, resource: str, item: dict[str, Any], path: str
) -> GraphResponse:
    response = entity(call, fragment, project(item, None, resource))
    response.status = 201
    response.headers["Location"] = _location(call, path)
    return response


# -- request bodies -------------------------------------------------------------------------------


def _body(call: Call) -> dict[str, Any]:
    body = call.request.body
    if not isinstance(body, dict):
        raise invalid_json()
    return {k: v for k, v in body.items() if not k.startswith("@") and "@odata." not in k}


def _check_keys(body: dict[str, Any], allowed: tuple[str, ...], type_name: str) -> None:
    for key in body:
        if key not in allowed and key not in _READ_ONLY_KEYS:
            raise bad_request(
                f"The property '{key}' does not exist on type 'microsoft.graph.{type_name}'. "
                "Make sure to only use property names that are defined by the type."
            )


def _role_list(value: Any, *, within: list[str] | None = None) -> list[str]:
    """Role template ids from ``accessDetails``: known GDAP roles, and for an assignment only
    roles of its relationship."""
    entries = value.get("unifiedRoles") if isinstance(value, dict) else None
    if not isinstance(entries, list) or not entries:
        raise bad_request("accessDetails.unifiedRoles must list at least one roleDefinitionId.")
    out: list[str] = []
    for entry in entries:
        role = entry.get("roleDefinitionId") if isinstance(entry, dict) else None
        template = str(role).lower() if isinstance(role, str) else ""
        if template not in roles.GDAP_ROLES:
            raise bad_request(f"The role definition id '{role}' is not a valid GDAP role.")
        if within is not None and template not in within:
            raise bad_request(
                f"The role definition id '{role}' is not part of the delegated admin "
                "relationship's access details."
            )
        if template not in out:
            out.append(template)
    return out


def _duration(value: Any) -> str:
    try:
        seconds = gdap.parse_iso_duration(value)
    except ValueError:
        # What msgraph-sdk (Kiota) sends for a timedelta, "730 days, 0:00:00", lands here too.
        raise bad_request(
            f"The duration '{value}' is not a valid ISO 8601 duration such as 'P730D'."
        ) from None
    if not gdap.MIN_DURATION <= seconds <= gdap.MAX_DURATION:
        raise bad_request("The duration must be between P1D and P2Y (inclusive).")
    return str(value)


def _auto_extend(value: Any, role_ids: list[str]) -> str:
    if value not in gdap.AUTO_EXTEND_VALUES:
        raise bad_request("autoExtendDuration must be one of PT0S, P0D or P180D.")
    if value == "P180D" and roles.GLOBAL_ADMINISTRATOR in role_ids:
        raise bad_request(
            "Auto-extension is not supported for relationships that include the Global "
            "Administrator role."
        )
    return str(value)


def _display_name(call: Call, value: Any, current: gdap.Relationship | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_request("displayName is required.")
    if len(value) > gdap.MAX_DISPLAY_NAME:
        raise bad_request(f"displayName can be at most {gdap.MAX_DISPLAY_NAME} characters long.")
    for other in call.world.gdap.of_partner(call.tenant.id, call.now):
        if other is not current and other.display_name.lower() == value.lower():
            raise conflict()
    return value


def _customer(call: Call, value: Any) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    tenant_id = value.get("tenantId") if isinstance(value, dict) else None
    if not isinstance(tenant_id, str) or not gdap.valid_guid(tenant_id):
        raise bad_request("customer.tenantId must be a tenant id (a GUID).")
    known = call.world.tenants.get(tenant_id.lower())
    name = value.get("displayName") or (known.display_name if known else None)
    return tenant_id.lower(), name


def _if_match(call: Call, current: str) -> None:
    sent = call.request.headers.get("if-match")
    if sent is None or not sent.strip():
        raise bad_request("The If-Match header is required; send the object's @odata.etag.")
    if sent.strip() not in ("*", current):
        raise GraphError(
            412,
            "preconditionFailed",
            "The etag in the If-Match header does not match the object's current etag.",
        )


# -- relationships --------------------------------------------------------------------------------


def _relationship(call: Call) -> gdap.Relationship:
    _require_agent(call)
    rel_id = call.params[0]
    if not gdap.valid_relationship_id(rel_id):
        raise bad_request("The passed in delegatedAdminRelationshipId is invalid.")
    rel = call.world.gdap.relationships.get(rel_id.lower())
    if rel is None or rel.partner_id != call.tenant.id:
        raise not_found("delegatedAdminRelationship", rel_id)
    rel.settle(call.now)
    return rel


def list_relationships(call: Call) -> GraphResponse:
    items: list[dict[str, Any]] = []
    if _allowed(call):
        items = [
            relationship_json(r, call.now)
            for r in call.world.gdap.of_partner(call.tenant.id, call.now)
        ]
    return static_collection(call, ROOT, RELATIONSHIPS, items)


def get_relationship(call: Call) -> GraphResponse:
    rel = _relationship(call)
    return _one(call, f"{ROOT}/$entity", RELATIONSHIPS, relationship_json(rel, call.now))


def create_relationship(call: Call) -> GraphResponse:
    _require_agent(call)
    body = _body(call)
    _check_keys(body, _CREATE_KEYS, "delegatedAdminRelationship")
    for key in ("displayName", "duration", "accessDetails"):
        if body.get(key) in (None, ""):
            raise bad_request(f"{key} is required.")
    role_ids = _role_list(body["accessDetails"])
    customer_id, customer_name = _customer(call, body.get("customer"))
    rel = gdap.Relationship(
        id=gdap.new_relationship_id(),
        partner_id=call.tenant.id,
        display_name=_display_name(call, body["displayName"]),
        duration=_duration(body["duration"]),
        roles=role_ids,
        created_at=call.now,
        customer_id=customer_id,
        customer_name=customer_name,
        auto_extend=_auto_extend(body.get("autoExtendDuration", "PT0S"), role_ids),
    )
    call.world.gdap.add(rel)
    return _created(
        call, f"{ROOT}/$entity", RELATIONSHIPS, relationship_json(rel, call.now),
        f"{ROOT}/{rel.id}",
    )  # fmt: skip


def update_relationship(call: Call) -> GraphResponse:
    rel = _relationship(call)
    _if_match(call, rel.etag(call.now))
    body = _body(call)
    _check_keys(body, _CREATE_KEYS, "delegatedAdminRelationship")
    status = rel.status(call.now)
    changes = {k: v for k, v in body.items() if k in _CREATE_KEYS}
    # Only autoExtendDuration may change once the relationship is under way (partners do this on
    # active relationships; Graph docs: "created or active").
    if status != "created" and (
        set(changes) - {"autoExtendDuration"} or status not in gdap.ACCESS_STATUSES
    ):
        raise bad_request(
            f"The relationship is in status '{status}': only a relationship in status "
            "'created' can be changed, and an active one only in autoExtendDuration."
        )
    role_ids = _role_list(changes["accessDetails"]) if "accessDetails" in changes else rel.roles
    if "displayName" in changes:
        rel.display_name = _display_name(call, changes["displayName"], rel)
    if "duration" in changes:
        rel.duration = _duration(changes["duration"])
    if "customer" in changes:
        rel.customer_id, rel.customer_name = _customer(call, changes["customer"])
    if "autoExtendDuration" in changes or "accessDetails" in changes:
        rel.auto_extend = _auto_extend(changes.get("autoExtendDuration", rel.auto_extend), role_ids)
    rel.roles = role_ids
    rel.touch(call.now)
    return _one(call, f"{ROOT}/$entity", RELATIONSHIPS, relationship_json(rel, call.now))


def delete_relationship(call: Call) -> GraphResponse:
    rel = _relationship(call)
    _if_match(call, rel.etag(call.now))
    status = rel.status(call.now)
    if status != "created":
        raise bad_request(
            f"The relationship is in status '{status}': only a relationship in status 'created' "
            "can be deleted; terminate it instead."
        )
    del call.world.gdap.relationships[rel.id]
    return GraphResponse(status=204)


# -- requests -------------------------------------------------------------------------------------


def list_requests(call: Call) -> GraphResponse:
    rel = _relationship(call)
    items = [request_json(rel, r, call.now) for r in rel.requests.values()]
    return static_collection(call, f"{ROOT}('{rel.id}')/requests", REQUESTS, items)


def get_request(call: Call) -> GraphResponse:
    rel = _relationship(call)
    found = rel.requests.get(call.params[1].lower())
    if found is None:
        raise not_found("delegatedAdminRelationshipRequest", call.params[1])
    return _one(call, "requests/$entity", REQUESTS, request_json(rel, found, call.now))


def create_request(call: Call) -> GraphResponse:
    rel = _relationship(call)
    body = _body(call)
    action = body.get("action")
    status = rel.status(call.now)
    delay = call.world.settings.propagation_delay
    if action == "lockForApproval":
        if status != "created":
            raise bad_request(
                f"The relationship is in status '{status}': only a relationship in status "
                "'created' can be locked for approval."
            )
        rel.lock_for_approval(call.now)
    elif action == "terminate":
        if status not in ("approvalPending", "approved", "activating", *gdap.ACCESS_STATUSES):
            raise bad_request(f"The relationship is in status '{status}' and cannot be terminated.")
        rel.terminate(call.now, delay)
    else:
        # approve and reject are the customer's actions, in the customer's admin portal.
        raise bad_request(
            f"The action '{action}' is not valid here; expected 'lockForApproval' or 'terminate'."
        )
    request = gdap.RelationshipRequest(gdap.new_object_id(), str(action), call.now)
    rel.requests[request.id] = request
    return _created(
        call, "requests/$entity", REQUESTS, request_json(rel, request, call.now, created=True),
        f"{ROOT}/{rel.id}/requests/{request.id}",
    )  # fmt: skip


# -- access assignments ---------------------------------------------------------------------------


def _assignment(call: Call, rel: gdap.Relationship) -> gdap.AccessAssignment:
    found = rel.assignments.get(call.params[1].lower())
    if found is None:
        raise not_found("delegatedAdminAccessAssignment", call.params[1])
    return found


def list_assignments(call: Call) -> GraphResponse:
    rel = _relationship(call)
    items = [assignment_json(a, call.now) for a in rel.assignments.values()]
    return static_collection(call, f"{ROOT}('{rel.id}')/accessAssignments", ASSIGNMENTS, items)


def get_assignment(call: Call) -> GraphResponse:
    rel = _relationship(call)
    found = _assignment(call, rel)
    return _one(call, "accessAssignments/$entity", ASSIGNMENTS, assignment_json(found, call.now))


def create_assignment(call: Call) -> GraphResponse:
    rel = _relationship(call)
    status = rel.status(call.now)
    if status not in gdap.ACCESS_STATUSES:
        raise bad_request(
            f"The relationship is in status '{status}': access can be assigned only in an "
            "active relationship."
        )
    body = _body(call)
    _check_keys(body, ("accessContainer", "accessDetails"), "delegatedAdminAccessAssignment")
    container = body.get("accessContainer")
    group_id = container.get("accessContainerId") if isinstance(container, dict) else None
    kind = container.get("accessContainerType", "securityGroup") if container else None
    if not isinstance(group_id, str) or kind != "securityGroup":
        raise bad_request(
            "accessContainer needs accessContainerId (a security group of the partner tenant) "
            "and accessContainerType 'securityGroup'."
        )
    group = call.tenant.get("groups", group_id.lower())
    if group is None or group.get("securityEnabled") is False:
        raise bad_request(f"The access container '{group_id}' does not exist.")
    role_ids = _role_list(body.get("accessDetails"), within=rel.roles)
    if any(a.group_id == group["id"] for a in rel.assignments.values()):
        raise conflict()
    assignment = gdap.AccessAssignment(
        id=gdap.new_object_id(),
        group_id=group["id"],
        roles=role_ids,
        created_at=call.now,
        modified_at=call.now,
        active_at=call.now + call.world.settings.assignment_delay,
    )
    rel.assignments[assignment.id] = assignment
    return _created(
        call, "accessAssignments/$entity", ASSIGNMENTS, assignment_json(assignment, call.now),
        f"{ROOT}/{rel.id}/accessAssignments/{assignment.id}",
    )  # fmt: skip


def update_assignment(call: Call) -> GraphResponse:
    rel = _relationship(call)
    assignment = _assignment(call, rel)
    now = call.now
    _if_match(call, assignment_json(assignment, now)["@odata.etag"])
    body = _body(call)
    _check_keys(body, ("accessDetails",), "delegatedAdminAccessAssignment")
    if assignment.status(now) == "deleting":
        raise bad_request("The access assignment is being deleted.")
    role_ids = _role_list(body.get("accessDetails"), within=rel.roles)
    current = assignment.next_roles if assignment.next_roles is not None else assignment.roles
    if sorted(role_ids) == sorted(current):
        # "If the values … are identical to the values in the existing object, the API returns
        # a 200 OK response code with the original object" (Graph docs).
        return _one(
            call, "accessAssignments/$entity", ASSIGNMENTS, assignment_json(assignment, now)
        )
    done = now + call.world.settings.assignment_delay
    assignment.next_roles, assignment.next_roles_at = role_ids, done
    assignment.version += 1
    operation = gdap.Operation(
        id=gdap.new_object_id(),
        operation_type="delegatedAdminAccessAssignmentUpdate",
        data=json.dumps({"id": assignment.id, "accessDetails": _unified_roles(role_ids)}),
        created_at=now,
        done_at=done,
    )
    rel.operations[operation.id] = operation
    return GraphResponse(
        status=202,
        body={},
        headers={
            "Location": _location(call, f"{ROOT}/{rel.id}/operations/{operation.id}"),
            "Retry-After": RETRY_AFTER,
        },
    )


def delete_assignment(call: Call) -> GraphResponse:
    rel = _relationship(call)
    assignment = _assignment(call, rel)
    _if_match(call, assignment_json(assignment, call.now)["@odata.etag"])
    if assignment.deleting_at is None:
        assignment.deleting_at = call.now
        assignment.deleted_at = call.now + call.world.settings.assignment_delay
        assignment.version += 1
    return GraphResponse(status=204)


# -- operations -----------------------------------------------------------------------------------


def list_operations(call: Call) -> GraphResponse:
    rel = _relationship(call)
    items = [operation_json(o, call.now) for o in rel.operations.values()]
    return static_collection(call, f"{ROOT}('{rel.id}')/operations", OPERATIONS, items)


def get_operation(call: Call) -> GraphResponse:
    rel = _relationship(call)
    found = rel.operations.get(call.params[1].lower())
    if found is None:
        raise not_found("delegatedAdminRelationshipOperation", call.params[1])
    return _one(call, "operations/$entity", OPERATIONS, operation_json(found, call.now))


# -- customers ------------------------------------------------------------------------------------

# Where a partner manages a customer's services (*unverified*: the links Partner Center shows
# under "Service management"; the emulator lists three).
_SERVICES = (
    ("Microsoft 365 admin center", "https://admin.microsoft.com/Partner/BeginClientSession.aspx"
     "?CTID={tid}&CSDEST=o365admincenter"),
    ("Microsoft Entra admin center", "https://entra.microsoft.com/{tid}"),
    ("Microsoft Intune admin center", "https://intune.microsoft.com/{tid}"),
)  # fmt: skip


def customer_json(tenant_id: str, display_name: str) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.delegatedAdminCustomer",
        "id": tenant_id,
        "tenantId": tenant_id,
        "displayName": display_name,
    }


def _customers(call: Call) -> dict[str, dict[str, Any]]:
    world = call.world
    out: dict[str, dict[str, Any]] = {}
    for tenant_id in world.gdap.customers_of(call.tenant.id, call.now):
        tenant = world.tenants.get(tenant_id)
        out[tenant_id] = customer_json(tenant_id, tenant.display_name if tenant else tenant_id)
    return out


def list_customers(call: Call) -> GraphResponse:
    items = list(_customers(call).values()) if _allowed(call) else []
    return static_collection(call, "tenantRelationships/delegatedAdminCustomers", CUSTOMERS, items)


def _customer_of(call: Call) -> dict[str, Any]:
    _require_agent(call)
    found = _customers(call).get(call.params[0].lower())
    if found is None:
        raise not_found("delegatedAdminCustomer", call.params[0])
    return found


def get_customer(call: Call) -> GraphResponse:
    customer = _customer_of(call)
    return _one(call, "tenantRelationships/delegatedAdminCustomers/$entity", CUSTOMERS, customer)


def list_service_details(call: Call) -> GraphResponse:
    customer = _customer_of(call)
    tid = customer["tenantId"]
    items = [
        {
            "@odata.type": "#microsoft.graph.delegatedAdminServiceManagementDetail",
            "id": gdap.new_object_id(tid, name),
            "serviceName": name,
            "serviceManagementUrl": url.format(tid=tid),
        }
        for name, url in _SERVICES
    ]
    return static_collection(
        call, f"tenantRelationships/delegatedAdminCustomers('{tid}')/serviceManagementDetails",
        DETAILS, items,
    )  # fmt: skip
