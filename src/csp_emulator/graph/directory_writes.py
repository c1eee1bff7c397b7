"""Writes to the directory: users, groups and their members, devices, applications (with
``addPassword``), service principals and app role assignments.

Every write goes through :class:`Tenant` methods, so it bumps the tenant's change sequence and
shows up in delta queries. Error messages are Graph's where known; guesses are marked.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
import uuid
from datetime import datetime
from typing import Any

from cryptography import x509

from csp_emulator import wellknown
from csp_emulator.graph import directory, odata, role_grants
from csp_emulator.graph.directory_objects import find
from csp_emulator.graph.errors import (
    GraphError,
    access_denied,
    bad_request,
    invalid_json,
    not_found,
    required_property,
)
from csp_emulator.graph.listing import context_url
from csp_emulator.graph.request import Call, GraphResponse
from csp_emulator.world.consent import grant_app_role
from csp_emulator.world.model import iso
from csp_emulator.world.objects import group_json, user_json
from csp_emulator.world.worldfile import certificate_thumbprints

ALREADY_MEMBER = (
    "One or more added object references already exist for the following modified properties: "
    "'members'."
)
# Graph adds at most 20 members in one PATCH with members@odata.bind (wire-facts §7).
MAX_MEMBER_BINDS = 20
MEMBER_KINDS = ("users", "groups", "devices", "servicePrincipals")


def json_body(call: Call) -> dict[str, Any]:
    body = call.request.body
    if not isinstance(body, dict):
        raise invalid_json()
    return body


def _public_changes(body: dict[str, Any], *, immutable: tuple[str, ...]) -> dict[str, Any]:
    """Body properties that may be stored: no private keys, no annotations, no identity keys."""
    for name in immutable:
        if name in body:
            raise bad_request(f"Property '{name}' is read-only and cannot be set.")
    return {k: v for k, v in body.items() if not k.startswith(("_", "@")) and "@" not in k}


def created(call: Call, fragment: str, item: dict[str, Any]) -> GraphResponse:
    response = directory.entity(call, fragment, item)
    response.status = 201
    return response


def no_content() -> GraphResponse:
    return GraphResponse(status=204)


# -- users ----------------------------------------------------------------------------------------


def _check_upn(call: Call, upn: Any, *, current_id: str | None = None) -> str:
    if not isinstance(upn, str) or upn.count("@") != 1 or not all(upn.split("@")):
        raise bad_request(
            "Invalid value specified for property 'userPrincipalName' of resource 'User'."
        )
    if upn.split("@")[1].lower() not in (d.lower() for d in call.tenant.domains):
        raise bad_request(
            "The domain portion of the userPrincipalName property is invalid. You must use one of "
            "the verified domain names in your organization."
        )
    existing = call.tenant.user_by_upn(upn)
    if existing is not None and existing["id"] != current_id:
        raise bad_request(
            "Another object with the same value for property userPrincipalName already exists."
        )
    return upn


def create_user(call: Call) -> GraphResponse:
    body = json_body(call)
    for name in ("accountEnabled", "displayName", "mailNickname", "userPrincipalName",
                 "passwordProfile"):  # fmt: skip
        if body.get(name) in (None, ""):
            raise required_property(name, "User")
    profile = body["passwordProfile"]
    if not isinstance(profile, dict) or not profile.get("password"):
        raise required_property("passwordProfile.password", "User")
    upn = _check_upn(call, body["userPrincipalName"])
    user = user_json(
        call.tenant,
        upn,
        display_name=str(body["displayName"]),
        password=str(profile["password"]),
        account_enabled=bool(body["accountEnabled"]),
        created=call.now,
        object_id=str(uuid.uuid4()),
    )
    user.update(_public_changes(body, immutable=("id",)))
    user.pop("passwordProfile", None)
    call.tenant.add("users", user)
    return created(call, "users", odata.project(user, None, "users"))


def user_patch_operation(call: Call) -> str:
    """A PATCH that only resets the password is open to Helpdesk Administrators too."""
    body = call.request.body
    if isinstance(body, dict) and set(body) == {"passwordProfile"}:
        return "users.resetPassword"
    return "users.write"


def update_user(call: Call) -> GraphResponse:
    user = directory.find_user(call, call.params[0])
    body = json_body(call)
    changes = _public_changes(body, immutable=("id",))
    profile = changes.pop("passwordProfile", None)
    if profile is not None:
        if not isinstance(profile, dict) or not profile.get("password"):
            raise bad_request(
                "Invalid value specified for property 'passwordProfile' of resource 'User'."
            )
        changes["_password"] = str(profile["password"])
    if "userPrincipalName" in changes:
        _check_upn(call, changes["userPrincipalName"], current_id=user["id"])
    call.tenant.update("users", user["id"], changes)
    return no_content()


def delete_user(call: Call) -> GraphResponse:
    user = directory.find_user(call, call.params[0])
    # Users are soft-deleted first: delta reports them with reason "changed".
    call.tenant.remove("users", user["id"], reason="changed")
    return no_content()


# -- groups and members ---------------------------------------------------------------------------


def _member_id_from_reference(value: Any) -> str:
    """The id at the end of an ``@odata.id`` such as https://graph.microsoft.com/v1.0/
    directoryObjects/{id} (any Graph origin, any directory collection)."""
    if not isinstance(value, str) or "/" not in value.rstrip("/"):
        raise bad_request(f"Invalid object identifier '{value}'.")
    tail = value.rstrip("/").rsplit("/", 1)[1]
    if tail.startswith("directoryObjects(") or "('" in tail:
        tail = tail.split("('", 1)[1].rstrip("')")
    return tail


def _add_member(call: Call, group_id: str, member_id: str) -> None:
    found = find(call.tenant, member_id)
    if found is None or found[0] not in MEMBER_KINDS:
        raise not_found(member_id)
    kind = found[0]
    caller = call.caller
    if not caller.delegated:
        # Adding a device or a service principal needs that type's write permission as well.
        extra = {
            "devices": {"Device.ReadWrite.All", "Directory.ReadWrite.All"},
            "servicePrincipals": {"Application.ReadWrite.All", "Directory.ReadWrite.All"},
        }.get(kind)
        if extra is not None and extra.isdisjoint(caller.roles):
            raise access_denied()
    if not call.tenant.add_member(group_id, member_id):
        raise bad_request(ALREADY_MEMBER)


def _bind_members(call: Call, group_id: str, binds: Any) -> None:
    if not isinstance(binds, list):
        raise bad_request("Invalid value specified for property 'members@odata.bind'.")
    if len(binds) > MAX_MEMBER_BINDS:
        raise bad_request(
            f"The number of members to add exceeds the limit of {MAX_MEMBER_BINDS} per request."
        )
    for reference in binds:
        _add_member(call, group_id, _member_id_from_reference(reference))


def create_group(call: Call) -> GraphResponse:
    body = json_body(call)
    for name in ("displayName", "mailEnabled", "mailNickname", "securityEnabled"):
        if body.get(name) is None or body.get(name) == "":
            raise required_property(name, "Group")
    group = group_json(
        call.tenant,
        str(body["displayName"]),
        security=bool(body["securityEnabled"]),
        object_id=str(uuid.uuid4()),
    )
    group.update(_public_changes(body, immutable=("id",)))
    group["createdDateTime"] = iso(call.now)
    call.tenant.add("groups", group)
    if "members@odata.bind" in body:
        _bind_members(call, group["id"], body["members@odata.bind"])
    return created(call, "groups", odata.project(group, None, "groups"))


def group_patch_operation(call: Call) -> str:
    body = call.request.body
    if isinstance(body, dict) and set(body) == {"members@odata.bind"}:
        return "groupMembers.write"
    return "groups.write"


def update_group(call: Call) -> GraphResponse:
    group = directory.get_object(call, "groups", call.params[0])
    body = json_body(call)
    changes = _public_changes(body, immutable=("id",))
    if changes:
        call.tenant.update("groups", group["id"], changes)
    if "members@odata.bind" in body:
        _bind_members(call, group["id"], body["members@odata.bind"])
    return no_content()


def delete_group(call: Call) -> GraphResponse:
    group = directory.get_object(call, "groups", call.params[0])
    # Microsoft 365 groups are soft-deleted (restorable); security groups are gone for good.
    unified = "Unified" in (group.get("groupTypes") or [])
    call.tenant.remove("groups", group["id"], reason="changed" if unified else "deleted")
    return no_content()


def add_member_ref(call: Call) -> GraphResponse:
    group = directory.get_object(call, "groups", call.params[0])
    body = json_body(call)
    if "@odata.id" not in body:
        raise bad_request("Invalid request body: '@odata.id' is required.")
    _add_member(call, group["id"], _member_id_from_reference(body["@odata.id"]))
    return no_content()


def remove_member_ref(call: Call) -> GraphResponse:
    group = directory.get_object(call, "groups", call.params[0])
    member_id = call.params[1]
    if not call.tenant.remove_member(group["id"], member_id):
        raise not_found(member_id)
    return no_content()


# -- devices --------------------------------------------------------------------------------------


def update_device(call: Call) -> GraphResponse:
    device = directory.get_object(call, "devices", call.params[0])
    changes = _public_changes(json_body(call), immutable=("id", "deviceId"))
    call.tenant.update("devices", device["id"], changes)
    return no_content()


def delete_device(call: Call) -> GraphResponse:
    device = directory.get_object(call, "devices", call.params[0])
    call.tenant.remove("devices", device["id"], reason="deleted")
    return no_content()


# -- applications ---------------------------------------------------------------------------------


def create_application(call: Call) -> GraphResponse:
    body = json_body(call)
    if not body.get("displayName"):
        raise required_property("displayName", "Application")
    changes = _public_changes(body, immutable=("id", "appId"))
    app: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "appId": str(uuid.uuid4()),
        "displayName": str(body["displayName"]),
        "signInAudience": "AzureADMyOrg",
        "createdDateTime": iso(call.now),
        "isFallbackPublicClient": False,
        "web": {"redirectUris": []},
        "publicClient": {"redirectUris": []},
        "requiredResourceAccess": [],
        "passwordCredentials": [],
        "keyCredentials": [],
        "_secrets": [],
        "_certificates": [],
    }
    changes.pop("passwordCredentials", None)  # secrets are only ever made by addPassword
    changes.pop("keyCredentials", None)
    app.update(changes)
    call.tenant.add("applications", app)
    return created(call, "applications", odata.project(app, None, "applications"))


def update_application(call: Call) -> GraphResponse:
    app = directory.find_by_key(call, "applications", call.params[0])
    changes = _public_changes(json_body(call), immutable=("id", "appId"))
    if "passwordCredentials" in changes:
        # Secrets are made by the service only (their text is generated): addPassword.
        raise bad_request("Property 'passwordCredentials' can only be changed with addPassword.")
    if "keyCredentials" in changes:
        public, private = key_credentials(app, changes.pop("keyCredentials"))
        changes["keyCredentials"] = public
        changes["_certificates"] = private
    call.tenant.update("applications", app["id"], changes)
    return no_content()


def key_credentials(
    app: dict[str, Any], entries: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``PATCH keyCredentials`` replaces the app's certificates with ``entries``: each one either
    carries ``key`` (the base64 DER certificate, how a certificate is uploaded) or names a
    certificate the app already has by ``keyId``. Returns (public entries, private records the
    token endpoint checks client assertions against)."""
    invalid = bad_request(
        "Invalid value specified for property 'keyCredentials' of resource 'Application'."
    )
    if not isinstance(entries, list):
        raise invalid
    known_public = {c.get("keyId"): c for c in app.get("keyCredentials", [])}
    known_private = {c.get("keyId"): c for c in app.get("_certificates", [])}
    public: list[dict[str, Any]] = []
    private: list[dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise invalid
        key_id = str(entry.get("keyId") or "").lower()
        if not entry.get("key"):
            if key_id not in known_public or key_id not in known_private:
                raise invalid
            public.append(known_public[key_id])
            private.append(known_private[key_id])
            continue
        try:
            der = base64.b64decode(str(entry["key"]), validate=True)
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            raise invalid from None
        x5t, x5t_s256 = certificate_thumbprints(der)
        key_id = key_id or str(uuid.uuid4())
        public.append(
            {
                "keyId": key_id,
                "type": entry.get("type") or "AsymmetricX509Cert",
                "usage": entry.get("usage") or "Verify",
                "displayName": entry.get("displayName")
                or f"CN={certificate.subject.rfc4514_string()}",
                "customKeyIdentifier": hashlib.sha1(der).hexdigest().upper(),  # noqa: S324
                "startDateTime": iso(certificate.not_valid_before_utc.timestamp()),
                "endDateTime": iso(certificate.not_valid_after_utc.timestamp()),
                "key": None,
            }
        )
        private.append({"keyId": key_id, "x5t": x5t, "x5t#S256": x5t_s256, "der": der})
    return public, private


def delete_application(call: Call) -> GraphResponse:
    app = directory.find_by_key(call, "applications", call.params[0])
    call.tenant.remove("applications", app["id"], reason="changed")
    return no_content()


_SECRET_ALPHABET = string.ascii_letters + string.digits + "~._-"


def new_secret_text() -> str:
    """A client secret shaped like Entra's: 40 characters, ``~`` as the fourth-to-sixth mark."""
    head = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(3))
    tail = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(34))
    return f"{head}8Q~{tail}"


def _timestamp(value: Any, default: float) -> float:
    if value is None:
        return default
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise bad_request(f"Invalid value '{value}' for property 'endDateTime'.") from None


def add_password(call: Call) -> GraphResponse:
    """``POST /applications/{id}/addPassword``: the secret text is shown this once, and kept in
    the app's private ``_secrets`` so the token endpoint accepts it."""
    app = directory.find_by_key(call, "applications", call.params[0])
    body = call.request.body if isinstance(call.request.body, dict) else {}
    credential = body.get("passwordCredential") or {}
    if not isinstance(credential, dict):
        raise invalid_json()
    start = _timestamp(credential.get("startDateTime"), call.now)
    end = _timestamp(credential.get("endDateTime"), call.now + 2 * 365 * 86400)
    secret = new_secret_text()
    key_id = str(uuid.uuid4())
    public = {
        "customKeyIdentifier": None,
        "displayName": credential.get("displayName"),
        "endDateTime": iso(end),
        "hint": secret[:3],
        "keyId": key_id,
        "secretText": None,
        "startDateTime": iso(start),
    }
    call.tenant.update(
        "applications",
        app["id"],
        {
            "passwordCredentials": [*app.get("passwordCredentials", []), public],
            "_secrets": [
                *app.get("_secrets", []),
                {"keyId": key_id, "secretText": secret, "end": end},
            ],
        },
    )
    answer = {
        "@odata.context": context_url(call, "microsoft.graph.passwordCredential"),
        **public,
        "secretText": secret,
    }
    return GraphResponse(body=answer)


def remove_password(call: Call) -> GraphResponse:
    app = directory.find_by_key(call, "applications", call.params[0])
    key_id = str(json_body(call).get("keyId", "")).lower()
    kept = [c for c in app.get("passwordCredentials", []) if c.get("keyId") != key_id]
    if len(kept) == len(app.get("passwordCredentials", [])):
        # Message guessed.
        raise bad_request(f"No password credential found with keyId '{key_id}'.")
    call.tenant.update(
        "applications",
        app["id"],
        {
            "passwordCredentials": kept,
            "_secrets": [s for s in app.get("_secrets", []) if s.get("keyId") != key_id],
        },
    )
    return no_content()


# -- service principals and app role assignments --------------------------------------------------


def create_service_principal(call: Call) -> GraphResponse:
    body = json_body(call)
    app_id = str(body.get("appId") or "").lower()
    if not app_id:
        raise required_property("appId", "ServicePrincipal")
    registered = call.world.application(app_id)
    home_id = registered[0].id if registered else None
    if registered is None or (
        registered[1].get("signInAudience") == "AzureADMyOrg" and home_id != call.tenant.id
    ):
        raise bad_request(
            f"The appId '{app_id}' of the service principal does not reference a valid "
            "application object."
        )
    if call.tenant.service_principal_by_app_id(app_id) is not None:
        # Status and code guessed; the wording is the directory's for duplicate keys.
        raise GraphError(
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            "Another object with the same value for property servicePrincipalNames already exists.",
        )
    assert home_id is not None
    sp = call.tenant.ensure_service_principal(registered[1], home_id)
    extra = _public_changes(body, immutable=("id",))
    extra.pop("appId", None)
    if home_id != call.tenant.id:
        # Another tenant's app: the token service sees it consent_delay later (world/consent.py).
        extra["_effective_at"] = call.now + call.world.settings.consent_delay
    if extra:
        call.tenant.update("servicePrincipals", sp["id"], extra)
    return created(call, "servicePrincipals", odata.project(sp, None, "servicePrincipals"))


def delete_service_principal(call: Call) -> GraphResponse:
    sp = directory.find_by_key(call, "servicePrincipals", call.params[0])
    tenant = call.tenant
    for assignment in list(tenant.objects["appRoleAssignments"].values()):
        if sp["id"] in (assignment.get("principalId"), assignment.get("resourceId")):
            tenant.remove("appRoleAssignments", assignment["id"], reason="deleted")
    tenant.remove("servicePrincipals", sp["id"], reason="changed")
    return no_content()


def _grant(call: Call, *, principal_side: bool) -> GraphResponse:
    """POST …/appRoleAssignments (this SP is the principal) or …/appRoleAssignedTo (this SP is
    the resource), as CIPP does to grant Graph permissions in a customer (wire-facts §4.4)."""
    sp = directory.find_by_key(call, "servicePrincipals", call.params[0])
    body = json_body(call)
    for name in ("principalId", "resourceId", "appRoleId"):
        if not body.get(name):
            raise required_property(name, "AppRoleAssignment")
    principal_id = str(body["principalId"]).lower()
    resource_id = str(body["resourceId"]).lower()
    app_role_id = str(body["appRoleId"]).lower()
    if (principal_id if principal_side else resource_id) != sp["id"]:
        side = "principalId" if principal_side else "resourceId"
        raise bad_request(f"The {side} must be the service principal in the request URL.")
    tenant = call.tenant
    principal = find(tenant, principal_id)
    if principal is None or principal[0] not in ("servicePrincipals", "users", "groups"):
        raise not_found(principal_id)
    resource_sp = tenant.get("servicePrincipals", resource_id)
    if resource_sp is None:
        raise not_found(resource_id)
    if (
        call.caller.delegated
        and principal[0] == "servicePrincipals"
        and str(resource_sp.get("appId", "")).lower() == wellknown.GRAPH_APP_ID
        and not role_grants.permits(call.caller.role_templates, role_grants.GRAPH_APP_ROLES_GRANT)
    ):
        # An app may be given Microsoft Graph's application permissions by a Privileged Role
        # Administrator (or Global Administrator) only: role_grants.GRAPH_APP_ROLES_GRANT.
        raise access_denied()
    default_role = "00000000-0000-0000-0000-000000000000"
    known = {str(r.get("id", "")).lower() for r in resource_sp.get("appRoles", [])}
    if app_role_id not in known and app_role_id != default_role:
        raise bad_request(
            f"Permission being assigned was not found on application '{resource_sp['appId']}'."
        )
    before = len(tenant.objects["appRoleAssignments"])
    assignment = grant_app_role(tenant, principal[1], resource_sp, app_role_id, call.now)
    if len(tenant.objects["appRoleAssignments"]) == before:
        raise bad_request("Permission being assigned already exists on the object.")
    # A grant reaches the token service consent_delay later (world/consent.py), and makes the
    # principal a consented app rather than one DAP's pre-consent made (identity/csp_rules.py).
    principal[1].pop("_dap_preconsent", None)
    changes: dict[str, Any] = {"_effective_at": call.now + call.world.settings.consent_delay}
    if principal[0] != "servicePrincipals":
        changes["principalType"] = "User" if principal[0] == "users" else "Group"
    assignment = tenant.update("appRoleAssignments", assignment["id"], changes)
    navigation = "appRoleAssignments" if principal_side else "appRoleAssignedTo"
    return created(
        call,
        f"servicePrincipals('{sp['id']}')/{navigation}",
        odata.project(assignment, None, "appRoleAssignments"),
    )


def add_app_role_assignment(call: Call) -> GraphResponse:
    return _grant(call, principal_side=True)


def add_app_role_assigned_to(call: Call) -> GraphResponse:
    return _grant(call, principal_side=False)


def delete_app_role_assignment(call: Call) -> GraphResponse:
    sp = directory.find_by_key(call, "servicePrincipals", call.params[0])
    assignment = call.tenant.get("appRoleAssignments", call.params[1].lower())
    if assignment is None or sp["id"] not in (
        assignment.get("principalId"),
        assignment.get("resourceId"),
    ):
        raise not_found(call.params[1])
    call.tenant.remove("appRoleAssignments", assignment["id"], reason="deleted")
    return no_content()
