"""Customer references: one parser and one domain pattern for configuration, discovery, sign-in
and the fleet. The cases where the configuration's and discovery's old patterns disagreed are
decided here once."""

from __future__ import annotations

from pathlib import Path

import pytest

from cspgraph.config import ConfigError, config_from_data
from cspgraph.customer_ref import (
    customer_key,
    domain_of,
    is_domain,
    is_guid,
    lookup_reference,
    parse_reference,
)
from cspgraph.http.errors import BadRequestError

GUID = "684C5F21-607E-5168-9FCF-C3321A77528B"


def test_customer_references_normalise_to_a_domain_or_a_guid() -> None:
    assert customer_key(" Admin@Customer.COM ") == "customer.com"
    assert customer_key("CUSTOMER.com") == "customer.com"
    assert customer_key(GUID) == GUID.lower()
    for junk in ("", "no spaces.com x", "https://customer.com", "@"):
        with pytest.raises(BadRequestError, match="is not a customer reference"):
            customer_key(junk)


def test_a_reference_says_what_kind_it_is() -> None:
    upn = parse_reference("Admin@Contoso.com")
    assert (upn.kind, upn.key, upn.domain, upn.tenant_id) == (
        "upn",
        "contoso.com",
        "contoso.com",
        None,
    )
    tenant = parse_reference(GUID)
    assert (tenant.kind, tenant.tenant_id, tenant.domain) == ("tenant_id", GUID.lower(), None)
    assert parse_reference("contoso.onmicrosoft.com").kind == "domain"
    assert lookup_reference("not a reference") is None
    assert domain_of("admin@contoso.com") == "contoso.com"
    assert domain_of(GUID) is None and domain_of(None) is None and domain_of("x_y.com") is None


# Where config.py (letters-only top-level label, no underscores) and discovery.py (underscores,
# digits and hyphens in the top-level label) disagreed, and what the one pattern says now.
@pytest.mark.parametrize(
    ("value", "domain"),
    [
        ("contoso_eu.com", False),  # discovery took it; DNS host names have no underscores
        ("contoso.xn--p1ai", True),  # an IDNA top-level label: the configuration refused it
        ("partner.c0m", False),  # a digit in the top-level label: discovery took it
        ("10.0.0.10", False),  # an IP address is not a domain: discovery took it
        ("contoso.com-", False),  # discovery took a top-level label ending in a hyphen
        # Both agreed on these, and still do.
        ("contoso.onmicrosoft.com", True),
        ("a-b.example", True),
        ("-contoso.com", False),
        ("contoso-.com", False),
        ("contoso", False),
        ("x" * 64 + ".com", False),
    ],
)
def test_one_domain_pattern_decides_where_the_two_disagreed(value: str, domain: bool) -> None:
    assert is_domain(value) is domain
    assert (lookup_reference(value) is not None) is domain
    assert (lookup_reference(f"admin@{value}") is not None) is domain
    data = {
        "regions": {
            "NA": {
                "partner_tenant": value,
                "client_id": "6731de76-14a6-49ae-97bc-6eba6914391e",
                "client_secret_env": "S",
            }
        }
    }
    if domain:
        assert config_from_data(data, base_dir=Path(".")).identities["NA"].partner_tenant == value
    else:
        with pytest.raises(ConfigError, match=r"regions\.NA\.partner_tenant: expected a domain"):
            config_from_data(data)


def test_a_guid_is_its_36_character_form() -> None:
    assert is_guid(GUID) and is_guid(GUID.lower())
    assert not is_guid(GUID.replace("-", ""))  # uuid.UUID would take it; a tenant ID is not so
    assert not is_guid("{" + GUID + "}")
    assert not is_guid("684c5f21-607e-5168-9fcf-c3321a77528g")
