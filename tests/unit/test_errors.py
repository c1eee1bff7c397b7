"""The one classification table: what each Entra, Graph and Partner Center failure means."""

from __future__ import annotations

import pytest

from cspgraph.http.errors import (
    AADSTS_RULES,
    PARTNER_CENTER_CODE_RULES,
    BadRequestError,
    CspGraphError,
    ErrorClass,
    NeedsPersonError,
    PropagatingError,
    TransientError,
    aadsts_code,
    classify_graph_error,
    classify_partner_center_error,
    classify_token_error,
    error_from_rule,
)


@pytest.mark.parametrize(
    ("codes", "description", "expected"),
    [
        ([700016], "AADSTS700016: Application with identifier 'x' was not found", "propagating"),
        ([], "AADSTS65001: The user or administrator has not consented", "propagating"),
        ([90099], "", "propagating"),
        ([7000215], "AADSTS7000215: Invalid client secret provided.", "needs_person"),
        ([53003], "", "needs_person"),
        ([700082], "", "needs_person"),
        ([650051], "", "transient"),
        ([90002], "AADSTS90002: Tenant 'x' not found.", "bad_request"),
    ],
)
def test_aadsts_codes_decide(codes: list[int], description: str, expected: str) -> None:
    rule = classify_token_error("invalid_grant", description, codes)
    assert rule.error_class == ErrorClass(expected)


def test_token_errors_without_a_known_code_fall_back_on_the_error_and_status() -> None:
    assert classify_token_error("temporarily_unavailable", None).error_class is ErrorClass.TRANSIENT
    assert classify_token_error("x", None, status=503).error_class is ErrorClass.TRANSIENT
    assert classify_token_error("x", None, status=429).error_class is ErrorClass.TRANSIENT
    assert classify_token_error("invalid_client", None).error_class is ErrorClass.NEEDS_PERSON
    assert classify_token_error("invalid_scope", "bad").error_class is ErrorClass.BAD_REQUEST


def test_aadsts_code_is_read_from_a_description() -> None:
    assert aadsts_code("AADSTS50020: User account from identity provider") == 50020
    assert aadsts_code("no code here") is None
    assert aadsts_code(None) is None


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (429, "TooManyRequests", "", "transient"),
        (503, None, "", "transient"),
        (403, "Authorization_RequestDenied", "Insufficient privileges", "propagating"),
        (403, None, "", "propagating"),
        (401, "InvalidAuthenticationToken", "Access token has expired", "bad_request"),
        (400, "Request_UnsupportedQuery", "", "bad_request"),
        (403, "Forbidden", "Request not applicable to target tenant.", "needs_person"),
        (404, "Request_ResourceNotFound", "", "bad_request"),
    ],
)
def test_graph_errors(status: int, code: str | None, message: str, expected: str) -> None:
    assert classify_graph_error(status, code, message).error_class == ErrorClass(expected)


@pytest.mark.parametrize(
    ("status", "code", "description", "expected", "reason"),
    [
        (429, None, "Rate limit is exceeded.", "transient", "throttled"),
        (502, None, "", "transient", "HTTP 502"),
        (409, "409", "domain in use", "bad_request", "already used"),
        (403, "20002", "no commerce relationship", "needs_person", "commerce relationship"),
        (404, "60003", "tenant not found", "bad_request", "no such customer"),
        (400, "600049", "", "bad_request", "required in this country"),
        (401, "400", "MFA required", "needs_person", "multi-factor"),
        (401, "400", "Access denied", "needs_person", "refused the token"),
    ],
)
def test_partner_center_errors(
    status: int, code: str | None, description: str, expected: str, reason: str
) -> None:
    rule = classify_partner_center_error(status, code, description)
    assert rule.error_class == ErrorClass(expected)
    assert reason in rule.reason


def test_errors_carry_their_class_code_tenant_and_request_id_and_say_them() -> None:
    rule = AADSTS_RULES[700016]
    error = error_from_rule(
        rule,
        "token request failed",
        code="AADSTS700016",
        status=400,
        tenant="t1",
        request_id="r1",
    )
    assert isinstance(error, PropagatingError) and error.retryable
    assert str(error) == (
        "token request failed (code=AADSTS700016, status=400, tenant=t1, request-id=r1)"
    )
    assert error.reason == rule.reason
    classes = {
        ErrorClass.TRANSIENT: TransientError,
        ErrorClass.NEEDS_PERSON: NeedsPersonError,
        ErrorClass.BAD_REQUEST: BadRequestError,
    }
    for error_class, cls in classes.items():
        made = error_from_rule(type(rule)(error_class, "r"), "m")
        assert isinstance(made, cls)
        assert made.retryable is (error_class is ErrorClass.TRANSIENT)


def test_each_error_type_fixes_its_own_class_and_subclasses_inherit_it() -> None:
    from cspgraph.partner.center import DomainInUseError

    assert TransientError("busy").error_class is ErrorClass.TRANSIENT
    assert PropagatingError("not yet").error_class is ErrorClass.PROPAGATING
    assert NeedsPersonError("ask").error_class is ErrorClass.NEEDS_PERSON
    taken = DomainInUseError("taken", code="409")
    assert taken.error_class is ErrorClass.BAD_REQUEST and not taken.retryable


def test_the_bare_taxonomy_class_cannot_be_raised_without_saying_what_to_do() -> None:
    with pytest.raises(TypeError, match="TransientError"):
        CspGraphError("what now?")


def test_the_message_is_kept_apart_from_the_details_the_text_adds() -> None:
    error = BadRequestError("no such user (really)", code="x", status=404, request_id="r")
    assert error.message == "no such user (really)"
    assert str(error) == "no such user (really) (code=x, status=404, request-id=r)"


def test_partner_center_exception_types_agree_with_the_classification_table() -> None:
    from cspgraph.partner.center import PARTNER_CENTER_EXCEPTIONS

    for code, cls in PARTNER_CENTER_EXCEPTIONS.items():
        assert cls.error_class is PARTNER_CENTER_CODE_RULES[code].error_class, code
