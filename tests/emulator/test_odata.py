"""The emulated Graph's OData layer: $filter, $select/projection, $orderby, $search, $top."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csp_emulator.graph.odata import (
    DEFAULT_USER_PROPERTIES,
    check_top,
    compile_filter,
    compile_orderby,
    compile_search,
    parse_select,
    project,
    search_requires_eventual,
)
from csp_emulator.graph.odata_schema import ADVANCED_ONLY_PROPERTIES, ODataError

SKU_E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"
SKU_E5 = "06ebc4ee-1bb5-47dd-8120-11324bc54e06"

USERS: list[dict[str, Any]] = [
    {
        "id": "u1",
        "displayName": "Adele Vance",
        "givenName": "Adele",
        "userPrincipalName": "adele.vance@contoso.com",
        "mail": "AdeleV@contoso.com",
        "accountEnabled": True,
        "userType": "Member",
        "department": "Sales",
        "jobTitle": "Manager",
        "companyName": "Contoso",
        "createdDateTime": "2023-01-15T08:00:00Z",
        "businessPhones": ["+1 425 555 0100"],
        "assignedLicenses": [{"skuId": SKU_E3, "disabledPlans": []}],
        "proxyAddresses": ["SMTP:AdeleV@contoso.com", "smtp:adele@contoso.onmicrosoft.com"],
        "employeeOrgData": {"costCenter": "CC-1", "division": "West"},
        "_password": "secret-1",
    },
    {
        "id": "u2",
        "displayName": "Ben O'Brien",
        "givenName": "Ben",
        "userPrincipalName": "ben.obrien@contoso.com",
        "mail": None,
        "accountEnabled": False,
        "userType": "Guest",
        "department": "Engineering",
        "createdDateTime": "2024-06-01T12:30:00+02:00",
        "businessPhones": [],
        "assignedLicenses": [{"skuId": SKU_E5}, {"skuId": SKU_E3}],
        "proxyAddresses": ["X500:/o=Exchange"],
        "_password": "secret-2",
    },
    {
        "id": "u3",
        "displayName": "SfBMailUser",
        "userPrincipalName": "sfb@contoso.com",
        "mail": "sfb@fabrikam.com",
        "accountEnabled": True,
        "userType": "Member",
        "department": "sales",
        "createdDateTime": "2024-12-31T23:59:59Z",
        "businessPhones": [],
        "assignedLicenses": [],
        "proxyAddresses": [],
    },
]

MANAGED_DEVICES: list[dict[str, Any]] = [
    {
        "@odata.type": "#microsoft.graph.managedDevice",
        "id": "m1",
        "deviceName": "CONTOSO-WIN-0001",
        "operatingSystem": "Windows",
        "complianceState": "compliant",
        "freeStorageSpaceInBytes": 64 * 1024**3,
        "lastSyncDateTime": "2024-03-01T10:00:00Z",
    },
    {
        "@odata.type": "#microsoft.graph.managedDevice",
        "id": "m2",
        "deviceName": "CONTOSO-IOS-0002",
        "operatingSystem": "iOS",
        "complianceState": "noncompliant",
        "freeStorageSpaceInBytes": 8 * 1024**3,
        "lastSyncDateTime": "2024-01-01T00:00:00Z",
    },
    {
        "@odata.type": "#microsoft.graph.managedDevice",
        "id": "m3",
        "deviceName": "MD-00003",
        "operatingSystem": "Android",
        "complianceState": "inGracePeriod",
        "freeStorageSpaceInBytes": 100.5,
    },
]


def matching(
    text: str,
    *,
    resource: str = "users",
    advanced: bool = False,
    objects: list[dict[str, Any]] | None = None,
) -> list[str]:
    predicate = compile_filter(text, resource=resource, advanced=advanced)
    pool = USERS if objects is None else objects
    return [obj["id"] for obj in pool if predicate(obj)]


def devices(text: str, advanced: bool = False) -> list[str]:
    return matching(text, resource="managedDevices", advanced=advanced, objects=MANAGED_DEVICES)


def odata_error(call: Any, *args: Any, **kwargs: Any) -> ODataError:
    with pytest.raises(ODataError) as caught:
        call(*args, **kwargs)
    return caught.value


# ---------------------------------------------------------------------------------------------
# $filter: operators and literals


def test_eq_on_strings_ignores_case() -> None:
    assert matching("displayName eq 'adele vance'") == ["u1"]
    assert matching("department eq 'SALES'") == ["u1", "u3"]


def test_string_literal_with_doubled_quote() -> None:
    assert matching("displayName eq 'Ben O''Brien'") == ["u2"]


def test_ne_needs_advanced_mode_and_then_works() -> None:
    assert matching("userType ne 'Member'", advanced=True) == ["u2"]


def test_ordering_operators_on_datetimes_respect_offsets() -> None:
    # u2 was created at 2024-06-01T10:30Z: its +02:00 offset must be honoured.
    assert matching("createdDateTime ge 2024-06-01T10:30:00Z") == ["u2", "u3"]
    assert matching("createdDateTime gt 2024-06-01T10:30:00Z") == ["u3"]
    assert matching("createdDateTime lt 2024-06-01T12:30:00+02:00") == ["u1"]
    assert matching("createdDateTime le 2024-06-01T10:30:00.000Z") == ["u1", "u2"]
    assert matching("createdDateTime eq 2023-01-15T09:00:00+01:00") == ["u1"]


def test_ordering_operators_on_numbers() -> None:
    assert devices(f"freeStorageSpaceInBytes gt {8 * 1024**3}") == ["m1"]
    assert devices(f"freeStorageSpaceInBytes ge {8 * 1024**3}") == ["m1", "m2"]
    assert devices("freeStorageSpaceInBytes lt 100.6") == ["m3"]
    assert devices("freeStorageSpaceInBytes le 100.5") == ["m3"]
    assert devices("freeStorageSpaceInBytes gt -1") == ["m1", "m2", "m3"]
    assert devices("freeStorageSpaceInBytes eq 1.005e2") == ["m3"]


def test_ordering_operators_on_strings_ignore_case() -> None:
    assert matching("displayName ge 'b'") == ["u2", "u3"]
    assert matching("displayName lt 'B'") == ["u1"]


def test_booleans() -> None:
    assert matching("accountEnabled eq true") == ["u1", "u3"]
    assert matching("accountEnabled eq false") == ["u2"]
    assert matching("accountEnabled ne true", advanced=True) == ["u2"]


def test_unquoted_guid_literal_matches_case_insensitively() -> None:
    upper = SKU_E5.upper()
    assert matching(f"assignedLicenses/any(x:x/skuId eq {upper})") == ["u2"]
    assert matching(f"id eq {SKU_E3}") == []


def test_in_operator() -> None:
    assert matching("userType in ('guest', 'Nobody')") == ["u2"]
    assert matching("department in ('Sales')") == ["u1", "u3"]
    assert matching("mail in (null, 'sfb@fabrikam.com')") == ["u2", "u3"]


def test_startswith_and_endswith_ignore_case() -> None:
    assert matching("startswith(displayName,'ADE')") == ["u1"]
    assert matching("startsWith(userPrincipalName, 'b')") == ["u2"]
    assert matching("endswith(mail,'@CONTOSO.com')", advanced=True) == ["u1"]
    assert matching("startswith(mail,'x')") == []


def test_boolean_function_compared_with_true_or_false() -> None:
    assert matching("startswith(displayName,'a') eq true") == ["u1"]
    assert matching("startswith(displayName,'a') eq false") == ["u2", "u3"]


# ---------------------------------------------------------------------------------------------
# $filter: precedence, parentheses, not


def test_and_binds_tighter_than_or() -> None:
    text = "userType eq 'Guest' or department eq 'Sales' and accountEnabled eq false"
    # Read as Guest or (Sales and disabled): only u2. Left-to-right would give [].
    assert matching(text) == ["u2"]


def test_parentheses_override_precedence() -> None:
    text = "(userType eq 'Guest' or department eq 'Sales') and accountEnabled eq true"
    assert matching(text) == ["u1", "u3"]


def test_not_binds_tighter_than_and() -> None:
    assert matching("not accountEnabled eq true and userType eq 'Guest'", advanced=True) == ["u2"]
    assert matching("not (accountEnabled eq true and userType eq 'Member')", advanced=True) == [
        "u2"
    ]
    assert matching("NOT(department eq 'sales')", advanced=True) == ["u2"]
    assert matching("not not department eq 'sales'", advanced=True) == ["u1", "u3"]


def test_long_or_chain() -> None:
    text = " or ".join(f"id eq 'u{i}'" for i in range(50))
    assert matching(text) == ["u1", "u2", "u3"]


# ---------------------------------------------------------------------------------------------
# $filter: lambdas, navigation, $count


def test_any_on_complex_collection() -> None:
    assert matching(f"assignedLicenses/any(x:x/skuId eq {SKU_E3})") == ["u1", "u2"]
    text = f"assignedLicenses/any(x:x/skuId eq {SKU_E3} or x/skuId eq {SKU_E5})"
    assert matching(text) == ["u1", "u2"]


def test_any_with_startswith_on_strings() -> None:
    assert matching("proxyAddresses/any(p:startswith(p,'smtp:'))") == ["u1"]


def test_any_on_primitive_collection() -> None:
    assert matching("businessPhones/any(c:c eq '+1 425 555 0100')") == ["u1"]
    assert matching("proxyAddresses/any(a:a in ('x500:/o=exchange'))") == ["u2"]


def test_any_without_body_means_not_empty() -> None:
    assert matching("assignedLicenses/any()") == ["u1", "u2"]


def test_all_lambda() -> None:
    assert matching("proxyAddresses/all(p:startswith(p,'smtp:'))") == ["u1", "u3"]


def test_navigation_into_complex_property() -> None:
    assert matching("employeeOrgData/costCenter eq 'cc-1'") == ["u1"]
    assert matching("employeeOrgData/division eq null") == ["u2", "u3"]


def test_count_on_collections_in_advanced_mode() -> None:
    assert matching("assignedLicenses/$count eq 0", advanced=True) == ["u3"]
    assert matching("proxyAddresses/$count ge 1", advanced=True) == ["u1", "u2"]


# ---------------------------------------------------------------------------------------------
# $filter: nulls and case


def test_absent_property_compares_as_null() -> None:
    # Only u1 has companyName (advanced-only); givenName is absent on u3.
    assert matching("givenName eq null") == ["u3"]
    assert matching("companyName eq null", advanced=True) == ["u2", "u3"]
    assert matching("companyName ne null", advanced=True) == ["u1"]
    assert matching("jobTitle ne 'Manager'", advanced=True) == ["u2", "u3"]


def test_ordering_against_null_never_matches() -> None:
    assert matching("mail ge null") == []
    assert matching("givenName lt 'zzz'") == ["u1", "u2"]


def test_property_names_and_keywords_ignore_case() -> None:
    assert matching("DISPLAYNAME EQ 'Adele Vance' AND AccountEnabled Eq TRUE") == ["u1"]
    assert matching("UserType In ('GUEST')") == ["u2"]


def test_lenient_resources_accept_unknown_properties_as_null() -> None:
    objects = [{"id": "a", "appId": "X"}, {"id": "b", "AppId": "y"}]
    assert matching("appid eq 'x'", resource="applications", objects=objects) == ["a"]
    assert matching("APPID eq 'Y'", resource="applications", objects=objects) == ["b"]
    assert matching("notThere eq null", resource="applications", objects=objects) == ["a", "b"]


# ---------------------------------------------------------------------------------------------
# $filter: Intune


def test_intune_supports_eq_ne_startswith_and_or_without_advanced_mode() -> None:
    assert devices("complianceState ne 'compliant'") == ["m2", "m3"]
    assert devices("startswith(deviceName,'contoso') and operatingSystem eq 'iOS'") == ["m2"]
    assert devices("operatingSystem eq 'Windows' or operatingSystem eq 'Android'") == ["m1", "m3"]
    assert devices("lastSyncDateTime le 2024-02-01T00:00:00Z") == ["m2"]


@pytest.mark.parametrize(
    "text",
    [
        "not (operatingSystem eq 'iOS')",
        "endswith(deviceName,'0001')",
        "deviceActionResults/any(a:a/actionName eq 'wipe')",
        "deviceActionResults/$count eq 0",
    ],
)
def test_intune_rejects_forms_it_does_not_support(text: str) -> None:
    for advanced in (False, True):
        error = odata_error(compile_filter, text, resource="managedDevices", advanced=advanced)
        assert (error.status, error.code) == (400, "BadRequest")
        assert error.message.startswith("Invalid filter clause: ")


# ---------------------------------------------------------------------------------------------
# $filter: errors


def syntax(text: str, position: int) -> str:
    return f"Invalid filter clause: Syntax error at position {position} in '{text}'."


def no_property(name: str, entity: str = "user") -> str:
    return f"Could not find a property named '{name}' on type 'microsoft.graph.{entity}'."


def incompatible(left: str, right: str, operator: str) -> str:
    return (
        "Invalid filter clause: A binary operator with incompatible types was detected. "
        f"Found operand types '{left}' and '{right}' for operator kind '{operator}'."
    )


def advanced_property(name: str) -> str:
    return (
        f"Unsupported or invalid query filter clause specified for property '{name}' "
        "of resource 'User'."
    )


NO_SIGNATURE = (
    "Invalid filter clause: No function signature for the function with name 'startswith' "
    "matches the specified arguments. The function signatures considered are: "
    "startswith(Edm.String Nullable=true, Edm.String Nullable=true)."
)
NOT_PROPERTY_AND_LITERAL = (
    "Invalid filter clause: A comparison needs a property on one side and a literal on the other."
)
BAD = "BadRequest"
UNSUPPORTED = "Request_UnsupportedQuery"
DEEP = "(" * 70 + "id eq 'x'" + ")" * 70

FILTER_SYNTAX_ERRORS = [
    ("displayName eq", 14),
    ("", 0),
    ("displayName eq 'x' and", 22),
    ("(displayName eq 'x'", 19),
    ("displayName eq 'x')", 18),
    ("accountEnabled", 14),  # a bare property is not a condition
    ("displayName eq 'x' displayName", 19),
    ("userType in ()", 13),
    ("createdDateTime ge 2024-01-01", 23),  # date-only literals are not DateTimeOffsets
    ("createdDateTime ge 2024-13-01T00:00:00Z", 19),
    ("assignedLicenses/any(x x/skuId eq 1)", 23),
    ("assignedLicenses/", 17),
]

FILTER_ERRORS = [
    ("displayName eq 'x", BAD, "Invalid filter clause: There is an unterminated string "
     "literal at position 15 in 'displayName eq 'x'."),
    ("displayName eq #", BAD, "Invalid filter clause: Syntax error: character '#' is not "
     "valid at position 15 in 'displayName eq #'."),
    (DEEP, BAD, "Invalid filter clause: The filter is nested more than 64 levels deep."),
    # unknown functions and properties
    ("contains(displayName,'a')", "Request_BadRequest", "An unknown function with name "
     "'contains' was found. This may also be a key lookup on a navigation property, which is "
     "not allowed."),
    ("foo eq 'x'", BAD, no_property("foo")),
    ("_password eq 'secret-1'", BAD, no_property("_password")),
    ("assignedLicenses/any() or bogus/any(y:y eq 'a')", BAD, no_property("bogus")),
    # types
    ("accountEnabled eq 'true'", BAD, incompatible("Edm.Boolean", "Edm.String", "Equal")),
    ("displayName ge 5", BAD, incompatible("Edm.String", "Edm.Int32", "GreaterThanOrEqual")),
    ("createdDateTime lt '2024-01-01T00:00:00Z'", BAD,
     incompatible("Edm.DateTimeOffset", "Edm.String", "LessThan")),
    ("proxyAddresses eq 'smtp:a@b.c'", BAD, "Invalid filter clause: The property "
     "'proxyAddresses' is not a single value; use any(), as in "
     "proxyAddresses/any(x:x eq 'value')."),
    ("displayName/any(x:x eq 'a')", BAD, "Invalid filter clause: The 'any' operator needs a "
     "collection; 'displayName' is not one."),
    ("startswith(accountEnabled,'t')", BAD, NO_SIGNATURE),
    ("startswith('abc',displayName)", BAD, NO_SIGNATURE),
    ("displayName eq givenName", BAD, NOT_PROPERTY_AND_LITERAL),
    ("'a' eq 'a'", BAD, NOT_PROPERTY_AND_LITERAL),
    ("assignedLicenses/any(x:accountEnabled eq true)", BAD, "Invalid filter clause: Only the "
     "range variable 'x' can be used inside a lambda."),
    # advanced-only forms without ConsistencyLevel: eventual + $count=true
    ("userType ne 'Guest'", UNSUPPORTED, "Filter operator 'NotEqualsMatch' is not supported."),
    ("not(userType eq 'Guest')", UNSUPPORTED, "Filter operator 'Not' is not supported."),
    ("endswith(mail,'@contoso.com')", UNSUPPORTED, "Unsupported Query."),
    ("assignedLicenses/$count eq 0", UNSUPPORTED, "Unsupported Query."),
    ("companyName eq 'Contoso'", UNSUPPORTED, advanced_property("companyName")),
    ("startswith(mobilePhone,'+1')", UNSUPPORTED, advanced_property("mobilePhone")),
    ("onPremisesSyncEnabled eq true", UNSUPPORTED, advanced_property("onPremisesSyncEnabled")),
    ("assignedLicenses/any(x:x/skuId ne 1)", UNSUPPORTED,
     "Filter operator 'NotEqualsMatch' is not supported."),
    # unknown properties win over advanced-only rules, as Graph parses before it plans
    ("userType ne 'x' and foo eq 1", BAD, no_property("foo")),
]  # fmt: skip


@pytest.mark.parametrize(("text", "position"), FILTER_SYNTAX_ERRORS)
def test_filter_syntax_errors(text: str, position: int) -> None:
    error = odata_error(compile_filter, text, resource="users", advanced=True)
    assert (error.status, error.code, error.message) == (400, BAD, syntax(text, position))


@pytest.mark.parametrize(("text", "code", "message"), FILTER_ERRORS)
def test_filter_errors(text: str, code: str, message: str) -> None:
    error = odata_error(compile_filter, text, resource="users", advanced=False)
    assert (error.status, error.code, error.message) == (400, code, message)


def test_every_advanced_only_form_is_accepted_in_advanced_mode() -> None:
    for text, code, _ in FILTER_ERRORS:
        if code == "Request_UnsupportedQuery":
            compile_filter(text, resource="users", advanced=True)


def test_advanced_only_properties_cover_the_documented_user_properties() -> None:
    users = ADVANCED_ONLY_PROPERTIES["users"]
    for name in ("companyName", "mobilePhone", "officeLocation", "postalCode", "employeeType"):
        assert name in users
    assert "onPremisesSamAccountName" in users
    assert "displayName" not in users


def test_groups_and_devices_name_their_own_type() -> None:
    error = odata_error(compile_filter, "nope eq 1", resource="groups", advanced=False)
    assert (
        error.message == "Could not find a property named 'nope' on type 'microsoft.graph.group'."
    )
    error = odata_error(compile_filter, "nope eq 1", resource="devices", advanced=True)
    assert error.message.endswith("on type 'microsoft.graph.device'.")


def test_private_keys_are_never_filterable_even_on_lenient_resources() -> None:
    error = odata_error(compile_filter, "_seq eq 1", resource="domains", advanced=True)
    assert (
        error.message == "Could not find a property named '_seq' on type 'microsoft.graph.domain'."
    )


# ---------------------------------------------------------------------------------------------
# $select and project()


def test_project_users_without_select_gives_the_default_set_and_no_private_keys() -> None:
    out = project(USERS[0], None, "users")
    assert list(out) == list(DEFAULT_USER_PROPERTIES)
    assert out["displayName"] == "Adele Vance"
    assert out["mobilePhone"] is None  # absent, emitted as null like Graph
    assert "_password" not in out and "accountEnabled" not in out


def test_project_other_resources_without_select_drops_only_private_keys() -> None:
    group = {"id": "g", "displayName": "Sales", "_members": ["u1"], "_seq": 3, "mailEnabled": False}
    assert project(group, None, "groups") == {
        "id": "g",
        "displayName": "Sales",
        "mailEnabled": False,
    }


def test_project_keeps_odata_type() -> None:
    out = project(
        MANAGED_DEVICES[0], parse_select("deviceName", "managedDevices"), "managedDevices"
    )
    assert out == {
        "@odata.type": "#microsoft.graph.managedDevice",
        "deviceName": "CONTOSO-WIN-0001",
    }


def test_select_canonicalises_names_and_project_emits_them() -> None:
    select = parse_select("DisplayName, accountenabled,displayName,officeLocation", "users")
    assert select == ["displayName", "accountEnabled", "officeLocation"]
    out = project(USERS[0], select, "users")
    assert out == {
        "displayName": "Adele Vance",
        "accountEnabled": True,
        "officeLocation": None,
    }


def test_select_on_lenient_resources_matches_keys_case_insensitively() -> None:
    select = parse_select("APPID,missing", "applications")
    assert select == ["APPID", "missing"]
    out = project({"id": "a", "appId": "X", "_secret": "s"}, select, "applications")
    assert out == {"appId": "X", "missing": None}


def test_select_star_and_empty() -> None:
    assert parse_select(None, "users") is None
    assert parse_select("", "users") is None
    star = parse_select("*", "users")
    assert star == ["*"]
    out = project(USERS[2], star, "users")
    assert "_password" not in out and out["accountEnabled"] is True


SELECT_FAILED = "Parsing OData Select and Expand failed: "


@pytest.mark.parametrize(
    ("text", "resource", "message"),
    [
        ("displayName,foo", "users", no_property("foo")),
        ("_password", "users", no_property("_password")),
        ("members", "groups", no_property("members", "group")),
        ("_seq", "domains", no_property("_seq", "domain")),
        ("@odata.type", "users", "Term '@odata.type' is not valid in a $select or $expand "
         "expression."),
        ("id,,displayName", "users", "Term '' is not valid in a $select or $expand expression."),
        ("manager/displayName", "users", "Term 'manager/displayName' is not valid in a $select "
         "or $expand expression."),
    ],
)  # fmt: skip
def test_select_errors(text: str, resource: str, message: str) -> None:
    error = odata_error(parse_select, text, resource)
    assert (error.status, error.code, error.message) == (400, BAD, SELECT_FAILED + message)


# ---------------------------------------------------------------------------------------------
# $orderby


def order(
    text: str, objects: list[dict[str, Any]], resource: str = "users", **kw: Any
) -> list[str]:
    options = {"advanced": False, "has_filter": False} | kw
    return [o["id"] for o in compile_orderby(text, resource=resource, **options)(objects)]


def test_orderby_ascending_descending_and_case_insensitive() -> None:
    objects = [
        {"id": "1", "displayName": "bravo"},
        {"id": "2", "displayName": "Alpha"},
        {"id": "3", "displayName": "charlie"},
    ]
    assert order("displayName", objects) == ["2", "1", "3"]
    assert order("DisplayName ASC", objects) == ["2", "1", "3"]
    assert order("displayName desc", objects) == ["3", "1", "2"]


def test_orderby_multiple_keys_and_nulls_first() -> None:
    objects = [
        {"id": "1", "deviceName": "b", "operatingSystem": "iOS"},
        {"id": "2", "deviceName": "a", "operatingSystem": "Windows"},
        {"id": "3", "deviceName": "c", "operatingSystem": "iOS"},
        {"id": "4", "deviceName": "d"},
    ]
    text = "operatingSystem asc, deviceName desc"
    assert order(text, objects, "managedDevices") == ["4", "3", "1", "2"]


def test_orderby_returns_a_new_list() -> None:
    objects = [{"id": "2", "displayName": "b"}, {"id": "1", "displayName": "a"}]
    sort = compile_orderby("displayName", resource="users", advanced=False, has_filter=False)
    assert [o["id"] for o in sort(objects)] == ["1", "2"]
    assert [o["id"] for o in objects] == ["2", "1"]


def test_orderby_rules() -> None:
    users = [{"id": "1", "createdDateTime": "2024-01-01T00:00:00Z"}]
    # $filter + $orderby works in advanced mode; createdDateTime sorts only there.
    assert order("userPrincipalName", users, has_filter=True, advanced=True) == ["1"]
    assert order("createdDateTime desc", users, advanced=True) == ["1"]
    # Intune and lenient resources sort on anything, filtered or not.
    assert order("complianceState", MANAGED_DEVICES, "managedDevices", has_filter=True) == [
        "m1",
        "m3",
        "m2",
    ]


@pytest.mark.parametrize(
    ("text", "resource", "options", "code", "message"),
    [
        ("displayName", "users", {"has_filter": True}, UNSUPPORTED,
         "Sorting not supported for current query."),
        ("createdDateTime", "users", {}, UNSUPPORTED,
         "Unsupported sort property 'createdDateTime' for 'User'."),
        ("mail", "users", {"advanced": True}, UNSUPPORTED,
         "Unsupported sort property 'mail' for 'User'."),
        ("userPrincipalName", "groups", {}, BAD, no_property("userPrincipalName", "group")),
        ("displayName", "directoryRoles", {}, UNSUPPORTED,
         "Unsupported sort property 'displayName' for 'DirectoryRole'."),
        ("_seq", "domains", {}, BAD, no_property("_seq", "domain")),
        ("displayName sideways", "users", {}, BAD,
         "Syntax error at position 0 in 'displayName sideways'."),
        ("displayName,", "users", {}, BAD, "Syntax error at position 12 in 'displayName,'."),
    ],
)  # fmt: skip
def test_orderby_errors(
    text: str, resource: str, options: dict[str, bool], code: str, message: str
) -> None:
    kwargs = {"advanced": False, "has_filter": False} | options
    error = odata_error(compile_orderby, text, resource=resource, **kwargs)
    assert (error.status, error.code, error.message) == (400, code, message)


# ---------------------------------------------------------------------------------------------
# $search


def searched(text: str, resource: str = "users") -> list[str]:
    predicate = compile_search(text, resource=resource)
    return [u["id"] for u in USERS if predicate(u)]


def test_search_display_name_matches_word_prefixes() -> None:
    assert searched('"displayName:van"') == ["u1"]
    assert searched('"displayName:brien"') == ["u2"]  # O'Brien splits at the apostrophe
    assert searched('"displayName:user"') == ["u3"]  # SfBMailUser splits at the camel case
    assert searched('"displayName:mail user"') == ["u3"]
    assert searched('"displayName:ance"') == []


def test_search_other_properties_match_by_prefix() -> None:
    assert searched('"mail:sfb@"') == ["u3"]
    assert searched('"userPrincipalName:BEN.O"') == ["u2"]
    assert searched('"proxyAddresses:smtp:adele@"') == ["u1"]
    assert searched('"mail:fabrikam"') == []


def test_search_and_or() -> None:
    assert searched('"displayName:adele" OR "displayName:ben"') == ["u1", "u2"]
    assert searched('"department:sales" AND "mail:sfb"') == ["u3"]
    assert searched('"department:sales" "mail:sfb"') == ["u3"]
    # AND binds tighter than OR.
    assert searched('"displayName:ben" OR "department:sales" AND "mail:adelev"') == ["u1", "u2"]
    assert searched('"displayName:ben" or "displayName:adele"') == ["u1", "u2"]


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("displayName:aname", BAD, "Syntax error: character ':' is not valid at position 11 "
         "in 'displayName:aname'."),
        ('"displayName:x', BAD, "Syntax error at position 0 in '\"displayName:x'."),
        ('"displayName:x" OR', BAD, "Syntax error at position 18 in '\"displayName:x\" OR'."),
        ('OR "displayName:x"', BAD, "Syntax error at position 0 in 'OR \"displayName:x\"'."),
        ("", BAD, "Syntax error at position 0 in ''."),
        ("adele", UNSUPPORTED, "Invalid search clause 'adele': expected \"property:value\"."),
        ('"displayName:"', UNSUPPORTED,
         "Invalid search clause 'displayName:': expected \"property:value\"."),
        ('"nope:x"', BAD, no_property("nope")),
        ('"accountEnabled:true"', UNSUPPORTED, "Unsupported or invalid query search clause "
         "specified for property 'accountEnabled' of resource 'User'."),
    ],
)  # fmt: skip
def test_search_errors(text: str, code: str, message: str) -> None:
    error = odata_error(compile_search, text, resource="users")
    assert (error.status, error.code, error.message) == (400, code, message)


def test_search_requires_eventual_error() -> None:
    error = search_requires_eventual()
    assert (error.status, error.code) == (400, "Request_UnsupportedQuery")
    assert "ConsistencyLevel: eventual" in error.message


# ---------------------------------------------------------------------------------------------
# $top


@pytest.mark.parametrize(
    ("value", "resource", "expected"),
    [
        ("1", "users", 1),
        ("999", "users", 999),
        ("999", "servicePrincipals", 999),
        ("1000", "managedDevices", 1000),
        ("007", "groups", 7),
    ],
)
def test_top_in_range(value: str, resource: str, expected: int) -> None:
    assert check_top(value, resource) == expected


def page_size(value: str, maximum: int = 999) -> str:
    return f"Invalid page size specified: '{value}'. Must be between 1 and {maximum} inclusive."


def not_an_integer(value: str) -> str:
    return (
        f"Invalid value '{value}' for $top query option found. "
        "The $top query option requires a non-negative integer value."
    )


@pytest.mark.parametrize(
    ("value", "resource", "code", "message"),
    [
        ("1000", "users", UNSUPPORTED, page_size("1000")),
        ("0", "groups", UNSUPPORTED, page_size("0")),
        ("-5", "devices", UNSUPPORTED, page_size("-5")),
        ("1001", "managedDevices", BAD, page_size("1001", 1000)),
        ("ten", "users", BAD, not_an_integer("ten")),
        (" 5", "users", BAD, not_an_integer(" 5")),
        ("5", "directoryRoles", UNSUPPORTED,
         "The query specified in the URI is not valid. Query option 'Top' is not allowed."),
    ],
)  # fmt: skip
def test_top_errors(value: str, resource: str, code: str, message: str) -> None:
    error = odata_error(check_top, value, resource)
    assert (error.status, error.code, error.message) == (400, code, message)


# ---------------------------------------------------------------------------------------------
# Properties: generated filters agree with a plain Python reading; junk only ever gives ODataError

PROPS = ("a", "b", "c")
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.text(alphabet="aAbB' ", max_size=3),
)
objects = st.dictionaries(st.sampled_from(PROPS), scalars).map(lambda d: {"id": "x", **d})
leaves = st.tuples(
    st.sampled_from(PROPS), st.sampled_from(("eq", "ne", "gt", "ge", "lt", "le")), scalars
)
trees = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.tuples(st.sampled_from(("and", "or")), st.lists(kids, min_size=2, max_size=3)),
        st.tuples(st.just("not"), kids),
    ),
    max_leaves=8,
)


def render_literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


PRECEDENCE = {"or": 1, "and": 2, "not": 3}


def render(tree: Any, wrap: bool = False) -> str:
    """Text with only the parentheses precedence needs, so the parser's precedence is tested."""
    if tree[0] in ("and", "or"):
        text = f" {tree[0]} ".join(
            render(kid, PRECEDENCE.get(kid[0], 4) < PRECEDENCE[tree[0]]) for kid in tree[1]
        )
    elif tree[0] == "not":
        text = "not " + render(tree[1], PRECEDENCE.get(tree[1][0], 4) < 3)
    else:
        text = f"{tree[0]} {tree[1]} {render_literal(tree[2])}"
    return f"({text})" if wrap else text


def reference(tree: Any, obj: dict[str, Any]) -> bool:
    """The OData meaning of a tree, written out plainly."""
    if tree[0] == "and":
        return all(reference(kid, obj) for kid in tree[1])
    if tree[0] == "or":
        return any(reference(kid, obj) for kid in tree[1])
    if tree[0] == "not":
        return not reference(tree[1], obj)
    name, op, literal = tree
    value = obj.get(name)
    if op in ("eq", "ne"):
        if literal is None:
            equal = value is None
        elif isinstance(literal, bool):
            equal = value is literal
        elif isinstance(literal, int):
            equal = type(value) is int and value == literal
        else:
            equal = isinstance(value, str) and value.lower() == literal.lower()
        return equal if op == "eq" else not equal
    if literal is None or isinstance(literal, bool):
        return False
    left: Any
    right: Any
    if isinstance(literal, int):
        if type(value) is not int:
            return False
        left, right = value, literal
    else:
        if not isinstance(value, str):
            return False
        left, right = value.lower(), literal.lower()
    outcomes: dict[str, bool] = {
        "gt": left > right,
        "ge": left >= right,
        "lt": left < right,
        "le": left <= right,
    }
    return outcomes[op]


@settings(max_examples=300, deadline=None)
@given(tree=trees, pool=st.lists(objects, max_size=6))
def test_generated_filters_agree_with_reference(tree: Any, pool: list[dict[str, Any]]) -> None:
    text = render(tree)
    predicate = compile_filter(text, resource="domains", advanced=True)
    for obj in pool:
        assert predicate(obj) == reference(tree, obj), text


FILTER_WORDS = [
    "displayName", "eq", "ne", "ge", "lt", "and", "or", "not", "in", "(", ")", ",", "/", ":",
    "'a'", "'it''s'", "null", "true", "1", "-2.5", "x", "x/skuId", "any", "all", "$count",
    "startswith", "endswith", "contains", "assignedLicenses", "proxyAddresses", "companyName",
    SKU_E3, "2024-01-01T00:00:00Z", "'", "#", "employeeOrgData/costCenter",
]  # fmt: skip
filterish = st.lists(st.sampled_from(FILTER_WORDS), max_size=14).map(" ".join)
WEIRD_OBJECTS: list[dict[str, Any]] = [
    *USERS,
    {"id": "w1", "assignedLicenses": "not-a-list", "proxyAddresses": [None, 3, {"a": 1}]},
    {"id": "w2", "displayName": 42, "employeeOrgData": ["x"], "createdDateTime": "garbage"},
]


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(st.text(max_size=40), filterish))
def test_arbitrary_filter_text_raises_only_odata_errors(text: str) -> None:
    for resource, advanced in (("users", False), ("users", True), ("managedDevices", False)):
        try:
            predicate = compile_filter(text, resource=resource, advanced=advanced)
        except ODataError as error:
            assert error.status == 400 and error.code and error.message
            continue
        for obj in WEIRD_OBJECTS:  # a compiled filter never fails on an object, whatever its shape
            assert predicate(obj) in (True, False)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=30))
def test_other_options_raise_only_odata_errors(text: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: parse_select(text, "users"),
        lambda: compile_orderby(text, resource="users", advanced=True, has_filter=False),
        lambda: compile_search(text, resource="users")(USERS[0]),
        lambda: check_top(text, "users"),
    ]
    for call in calls:
        with contextlib.suppress(ODataError):
            call()
