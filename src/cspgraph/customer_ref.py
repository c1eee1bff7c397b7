"""A customer (or partner) tenant as a person names it: a tenant ID, a domain, or a user's sign-in
name. One parser and one domain pattern for the configuration, discovery, sign-in and the fleet.

``72F988BF-86F1-41AF-91AB-2D7CD011DB47`` → tenant ID ``72f988bf-…``; ``Contoso.COM`` → domain
``contoso.com``; ``Admin@Contoso.com`` → domain ``contoso.com`` (the UPN's domain names its
tenant).

A domain is a DNS host name as Entra verifies them: labels of letters, digits and inner hyphens
(at most 63 characters each, 253 in all), at least two labels, and a top-level label of letters
or an IDNA one (``xn--…``). No underscores (DNS host names have none, so no verified domain does)
and no numeric top-level label (``10.0.0.1`` is not a domain).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Literal

from cspgraph.http.errors import BadRequestError

DOMAIN = re.compile(
    r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$"
)

Kind = Literal["tenant_id", "domain", "upn"]


def is_guid(value: str) -> bool:
    """A GUID in its 36-character form (any case), as tenant and client IDs are written."""
    if len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def is_domain(value: str) -> bool:
    """A domain name (lower case) by :data:`DOMAIN`."""
    return DOMAIN.match(value) is not None


@dataclass(frozen=True, slots=True)
class CustomerReference:
    """A parsed customer reference. ``key`` is what discovery is asked about: the tenant ID in
    lower case, or the domain (a UPN's domain)."""

    text: str  # as it was given
    kind: Kind
    key: str

    @property
    def tenant_id(self) -> str | None:
        return self.key if self.kind == "tenant_id" else None

    @property
    def domain(self) -> str | None:
        return None if self.kind == "tenant_id" else self.key


def parse_reference(text: str) -> CustomerReference:
    """The reference ``text`` stands for; :class:`BadRequestError` saying what is expected when
    it is none of the three."""
    reference = lookup_reference(text)
    if reference is None:
        raise BadRequestError(
            f"{text!r} is not a customer reference; expected a tenant ID (GUID), a domain "
            "(customer.com) or a user's sign-in name (admin@customer.com)"
        )
    return reference


def lookup_reference(text: str) -> CustomerReference | None:
    """As :func:`parse_reference`, with None for what is not a reference."""
    value = text.strip().lower()
    if "@" in value:
        domain = value.rsplit("@", 1)[1]
        return CustomerReference(text, "upn", domain) if is_domain(domain) else None
    if is_guid(value):
        return CustomerReference(text, "tenant_id", str(uuid.UUID(value)))
    return CustomerReference(text, "domain", value) if is_domain(value) else None


def customer_key(text: str) -> str:
    """The tenant reference discovery is asked about: a GUID, or a domain (from a UPN too)."""
    return parse_reference(text).key


def domain_of(text: str | None) -> str | None:
    """The domain a reference names (a UPN's too); None for a tenant ID or a non-reference."""
    reference = lookup_reference(text) if text else None
    return reference.domain if reference is not None else None
