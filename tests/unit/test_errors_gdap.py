"""The one error table, GDAP-aware: a refused token or a 403 read with what is known about the
customer's access, each with its class and next step."""

from __future__ import annotations

import pytest

from cspgraph.http.errors import (
    AccessFacts,
    ErrorClass,
    NeedsPersonError,
    PropagatingError,
    RelationshipFact,
    classify_access_failure,
    classify_token_error,
    error_from_rule,
    not_in_admin_agents_error,
    role_missing_error,
)

CUSTOMER = "contoso.onmicrosoft.com"


def refused(code: int) -> PropagatingError:
    text = f"AADSTS{code}: something about the app or the user"
    error = error_from_rule(
        classify_token_error("invalid_grant", text), text, code="invalid_grant", tenant="t"
    )
    assert isinstance(error, PropagatingError)  # what the table says without the facts
    return error


def facts(*rels: RelationshipFact, dap: bool | None = False, before: bool = False) -> AccessFacts:
    return AccessFacts(CUSTOMER, dap=dap, relationships=rels, reached_before=before)


ACTIVE = RelationshipFact("Contoso-GDAP", "active", "2027-05-01T00:00:00+00:00")
EXPIRED = RelationshipFact("Contoso-Old", "expired", "2026-11-30T10:00:00+00:00")
TERMINATED = RelationshipFact("Contoso-Ended", "terminated", "2026-10-01T00:00:00+00:00")
PENDING = RelationshipFact("Contoso-Asked", "approvalPending", "2028-12-01T00:00:00+00:00")
ACTIVATING = RelationshipFact("Contoso-New", "activating", "2028-12-01T00:00:00+00:00")


@pytest.mark.parametrize("code", [65001, 700016, 7000229, 90099])
def test_an_app_missing_in_a_gdap_customer_needs_a_person_to_run_gdap_consent(code: int) -> None:
    error = classify_access_failure(refused(code), facts(ACTIVE))
    assert isinstance(error, NeedsPersonError)
    assert f"run `cspgraph gdap consent --customer {CUSTOMER}`" in error.reason
    assert error.code == "invalid_grant" and error.tenant == "t"  # the evidence is kept


def test_a_consent_that_worked_before_is_said_as_gone() -> None:
    error = classify_access_failure(refused(700016), facts(ACTIVE, before=True))
    assert error.error_class is ErrorClass.NEEDS_PERSON
    assert "consent in this customer is gone" in error.reason


def test_a_dap_customer_keeps_the_propagation_rule() -> None:
    original = refused(700016)
    assert classify_access_failure(original, facts(dap=True)) is original


def test_a_relationship_still_activating_is_propagating() -> None:
    error = classify_access_failure(refused(700016), facts(ACTIVATING))
    assert error.error_class is ErrorClass.PROPAGATING
    assert "Contoso-New" in error.reason and "activating" in error.reason


@pytest.mark.parametrize("ended", [EXPIRED, TERMINATED])
def test_an_ended_relationship_needs_a_person_and_is_named_with_its_end_date(
    ended: RelationshipFact,
) -> None:
    error = classify_access_failure(refused(50020), facts(ended))
    assert error.error_class is ErrorClass.NEEDS_PERSON
    assert f"{ended.name} is {ended.status} (ended {ended.end[:10]})" in error.reason


def test_an_ended_relationship_beside_an_active_one_is_not_the_cause() -> None:
    error = classify_access_failure(refused(700016), facts(EXPIRED, ACTIVE))
    assert "gdap consent" in error.reason


def test_a_relationship_awaiting_approval_needs_the_customer() -> None:
    error = classify_access_failure(refused(700016), facts(PENDING))
    assert error.error_class is ErrorClass.NEEDS_PERSON
    assert "Contoso-Asked awaits the customer's approval" in error.reason


def test_no_relationship_at_all_names_the_invitation() -> None:
    error = classify_access_failure(refused(700016), facts())
    assert "no DAP and no GDAP relationship" in error.reason
    assert f"cspgraph gdap invite --customer {CUSTOMER}" in error.reason


def test_unknown_relationships_name_the_missing_consent_of_a_reseller_customer_without_dap() -> (
    None
):
    unknown = AccessFacts(CUSTOMER, dap=False, relationships=None, reseller=True)
    assert "gdap consent" in classify_access_failure(refused(700016), unknown).reason


@pytest.mark.parametrize(
    "unknown",
    [AccessFacts(CUSTOMER), AccessFacts(CUSTOMER, dap=False, relationships=None, reseller=False)],
)
def test_without_relationships_or_a_reseller_relationship_the_old_rule_stands(
    unknown: AccessFacts,
) -> None:
    # Not the partner's customer and GDAP unknown: a relationship may just have ended or not
    # arrived; Entra says the same for both (propagating, as before GDAP).
    original = refused(700016)
    assert classify_access_failure(original, unknown) is original


def test_a_user_without_a_role_is_told_which_groups_hold_which_roles() -> None:
    held = RelationshipFact(
        "Contoso-GDAP",
        "active",
        holders=(("Directory Readers", ("GDAP Readers",)), ("User Administrator", ())),
    )
    error = classify_access_failure(refused(50020), facts(held))
    assert error.error_class is ErrorClass.NEEDS_PERSON
    assert "Directory Readers: GDAP Readers; User Administrator: no group" in error.reason


def test_a_user_whose_assignments_are_pending_waits() -> None:
    pending = RelationshipFact("Contoso-GDAP", "active", assignments_pending=True)
    error = classify_access_failure(refused(50020), facts(pending))
    assert error.error_class is ErrorClass.PROPAGATING


def test_a_missing_role_names_the_role_the_operation_needs() -> None:
    denied = PropagatingError("GET /users failed", code="Authorization_RequestDenied", status=403)
    held = RelationshipFact("Contoso-GDAP", "active", holders=(("Helpdesk Administrator", ("H",)),))
    error = role_missing_error(denied, "reading managed devices", "Intune Administrator", held)
    assert error.error_class is ErrorClass.NEEDS_PERSON
    assert "reading managed devices needs the role Intune Administrator" in error.reason
    assert "Helpdesk Administrator: H" in error.reason


def test_the_empty_list_outside_admin_agents_is_said_as_such() -> None:
    error = not_in_admin_agents_error("gdap-admin@partner.com")
    assert error.error_class is ErrorClass.NEEDS_PERSON
    assert "this account is not in AdminAgents" in str(error)
    assert "an empty list (not 0 relationships)" in error.reason
