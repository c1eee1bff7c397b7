"""The CSP scope table: what a partner-managed app may call, and the permission each call needs."""

from __future__ import annotations

import pytest

from cspgraph.graph.scope import (
    APPLICATION_ROLE_IDS,
    CSP_RULE,
    SYNC_OPERATIONS,
    Family,
    check,
    permission_for,
    required_permissions,
    resolve,
)
from cspgraph.http.errors import CspScopeError, ErrorClass


@pytest.mark.parametrize(
    ("method", "path", "family"),
    [
        ("GET", "/users", Family.IDENTITY),
        ("GET", "/users/delta", Family.IDENTITY),
        ("GET", "/users/microsoft.graph.delta()", Family.IDENTITY),
        ("GET", "/users/$count", Family.IDENTITY),
        ("GET", "/users/u1/memberOf", Family.IDENTITY),
        ("GET", "/users/u1/licenseDetails", Family.IDENTITY),
        ("GET", "/users/u1/managedDevices", Family.INTUNE),
        ("GET", "/groups/g1/members/microsoft.graph.user", Family.IDENTITY),
        ("POST", "/groups/g1/members/$ref", Family.IDENTITY),
        ("GET", "/devices", Family.IDENTITY),
        ("GET", "/organization", Family.IDENTITY),
        ("GET", "/domains/contoso.com", Family.IDENTITY),
        ("GET", "/directoryRoles", Family.IDENTITY),
        ("POST", "/directoryObjects/getByIds", Family.IDENTITY),
        ("GET", "/applications", Family.IDENTITY),
        ("POST", "/servicePrincipals/sp/appRoleAssignedTo", Family.IDENTITY),
        ("GET", "/contracts", Family.IDENTITY),
        ("GET", "/subscribedSkus", Family.IDENTITY),
        ("GET", "/me", Family.IDENTITY),
        ("GET", "/me/memberOf", Family.IDENTITY),
        ("GET", "/deviceManagement/managedDevices", Family.INTUNE),
        ("GET", "/deviceManagement/deviceCompliancePolicies", Family.INTUNE),
        ("POST", "/$batch", Family.OTHER),
        ("GET", "https://graph.microsoft.com/v1.0/users?$skiptoken=abc", Family.IDENTITY),
        ("GET", "/beta/users/u1", Family.IDENTITY),
        ("GET", "/Users/u1/MemberOf", Family.IDENTITY),  # Graph paths ignore case
        ("GET", "/DEVICEMANAGEMENT/managedDevices", Family.INTUNE),
    ],
)
def test_directory_and_intune_calls_are_in_scope(method: str, path: str, family: Family) -> None:
    operation = check(method, path)
    assert operation.family is family


@pytest.mark.parametrize(
    "path",
    [
        "/users/u1/messages",
        "/Users/u1/Messages",
        "/users/u1/mailFolders/inbox/messages",
        "/users/u1/drive",
        "/users/u1/calendar/events",
        "/me/mailFolders",
        "/me/drive/root/children",
        "/groups/g1/drive",
        "/groups/g1/conversations",
        "/sites",
        "/sites/root",
        "/drives/d1",
        "/teams",
        "/teams/t1/channels",
        "/chats",
        "/security/alerts",
        "/",
    ],
)
def test_everything_else_is_refused_quoting_the_rule(path: str) -> None:
    with pytest.raises(CspScopeError) as caught:
        check("GET", path)
    error = caught.value
    assert CSP_RULE in str(error)
    assert error.error_class is ErrorClass.BAD_REQUEST
    assert error.code == "CspScopeViolation"
    assert not resolve("GET", path).in_scope


def test_the_refusal_leaves_the_query_out() -> None:
    with pytest.raises(CspScopeError) as caught:
        check("GET", "/users/u1/messages?$filter=subject eq 'salary review'")
    assert "salary" not in str(caught.value)


@pytest.mark.parametrize(
    ("method", "path", "application", "delegated"),
    [
        ("GET", "/users", "User.Read.All", "User.Read.All"),
        ("PATCH", "/users/u1", "User.ReadWrite.All", "User.ReadWrite.All"),
        ("GET", "/groups", "GroupMember.Read.All", "GroupMember.Read.All"),
        ("GET", "/groups/g/members", "GroupMember.Read.All", "GroupMember.Read.All"),
        (
            "POST",
            "/groups/g/members/$ref",
            "GroupMember.ReadWrite.All",
            "GroupMember.ReadWrite.All",
        ),
        ("POST", "/groups", "Group.ReadWrite.All", "Group.ReadWrite.All"),
        ("GET", "/devices", "Device.Read.All", "Device.Read.All"),
        ("GET", "/organization", "Organization.Read.All", "Organization.Read.All"),
        ("GET", "/domains", "Domain.Read.All", "Domain.Read.All"),
        (
            "GET",
            "/directoryRoles",
            "RoleManagement.Read.Directory",
            "RoleManagement.Read.Directory",
        ),
        ("GET", "/servicePrincipals", "Application.Read.All", "Application.Read.All"),
        (
            "POST",
            "/servicePrincipals/sp/appRoleAssignedTo",
            "AppRoleAssignment.ReadWrite.All",
            "AppRoleAssignment.ReadWrite.All",
        ),
        ("POST", "/directoryObjects/getByIds", "Directory.Read.All", "Directory.Read.All"),
        (
            "GET",
            "/deviceManagement/managedDevices",
            "DeviceManagementManagedDevices.Read.All",
            "DeviceManagementManagedDevices.Read.All",
        ),
        (
            "POST",
            "/deviceManagement/managedDevices/d/syncDevice",
            "DeviceManagementManagedDevices.ReadWrite.All",
            "DeviceManagementManagedDevices.ReadWrite.All",
        ),
    ],
)
def test_least_privileged_permission_per_operation(
    method: str, path: str, application: str, delegated: str
) -> None:
    assert permission_for(method, path) == application
    assert permission_for(method, path, delegated=True) == delegated


def test_me_needs_a_signed_in_user() -> None:
    assert permission_for("GET", "/me", delegated=True) == "User.Read"
    with pytest.raises(ValueError, match="no application permission"):
        permission_for("GET", "/me")


def test_the_sync_needs_exactly_six_read_permissions() -> None:
    # The five inventory reads, and who holds Global Administrator (the report's admins).
    assert required_permissions(SYNC_OPERATIONS) == {
        "User.Read.All",
        "GroupMember.Read.All",
        "Device.Read.All",
        "Organization.Read.All",
        "DeviceManagementManagedDevices.Read.All",
        "RoleManagement.Read.Directory",
    }
    assert all(name in APPLICATION_ROLE_IDS for name in required_permissions(SYNC_OPERATIONS))


def test_implied_permissions_are_not_asked_for_twice() -> None:
    assert required_permissions(
        [("GET", "/users"), ("PATCH", "/users/u"), ("GET", "/groups"), ("POST", "/groups")]
    ) == {"User.ReadWrite.All", "Group.ReadWrite.All"}
    assert required_permissions(
        [("GET", "/users"), ("GET", "/devices"), ("POST", "/directoryObjects/getByIds")]
    ) == {"Directory.Read.All"}
    assert required_permissions([("GET", "/me"), ("GET", "/users")], delegated=True) == {
        "User.Read.All"
    }


def test_operations_outside_the_scope_have_no_permission() -> None:
    with pytest.raises(CspScopeError):
        required_permissions([("GET", "/users"), ("GET", "/sites")])


def test_reads_by_post_are_not_writes() -> None:
    assert not resolve("POST", "/directoryObjects/getByIds").is_write
    assert not resolve("POST", "/users/u/getMemberGroups").is_write
    assert resolve("POST", "/users").is_write
    assert resolve("DELETE", "/groups/g/members/u/$ref").is_write


def test_shapes_drop_ids_and_keep_the_navigation() -> None:
    assert resolve("GET", "/groups/5a9f/transitiveMembers?$select=id").shape == (
        "groups/{id}/transitiveMembers"
    )
    assert resolve("GET", "/users('ann@contoso.com')").shape == "users/{id}"
    assert resolve("GET", "/users/ann@contoso.com").shape == "users/{id}"
    assert resolve("GET", "/GROUPS/g/TransitiveMembers").shape == "groups/{id}/transitiveMembers"
    assert resolve("GET", "/deviceManagement/managedDevices/d1").shape == (
        "deviceManagement/managedDevices"
    )
