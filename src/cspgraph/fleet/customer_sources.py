"""Where a fleet's customer list comes from: Partner Center, the active GDAP relationships, or
both, and the gaps between the two.

Partner Center lists the partner's reseller customers (each region's partner tenant); Graph's
``delegatedAdminRelationships`` name the customers with a GDAP relationship, whether or not they
buy through the partner (CIPP's tenant list: ``status eq 'active'``, grouped by customer, the
read-only ``MLT_…`` relationships of Microsoft's transition tools dropped on request, wire-facts
§8). Neither list is the fleet alone: a customer only Partner Center names has no GDAP
relationship in effect (a DAP customer, or one that is not reachable), one only GDAP names is no
reseller customer (a managed-services customer). :class:`ListingGaps` says which, by name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cspgraph.fleet.access import GdapRelationships
from cspgraph.fleet.customers import CustomerRef


class CustomerSource(StrEnum):
    PARTNER_CENTER = "partner-center"
    GDAP = "gdap"
    BOTH = "both"

    @property
    def partner_center(self) -> bool:
        return self in (CustomerSource.PARTNER_CENTER, CustomerSource.BOTH)

    @property
    def gdap(self) -> bool:
        return self in (CustomerSource.GDAP, CustomerSource.BOTH)


def gdap_customers(
    relationships: GdapRelationships, *, exclude_mlt: bool = False
) -> list[CustomerRef]:
    """The customers with a GDAP relationship in effect (``active`` or ``expiring``), one each,
    in the order of their names."""
    active = relationships.active_customers(exclude_mlt=exclude_mlt)
    refs = [
        CustomerRef(
            reference=tenant_id,
            tenant_id=tenant_id,
            display_name=rel.customer_name,
            region=rel.region,
        )
        for tenant_id, rel in active.items()
    ]
    return sorted(refs, key=lambda c: ((c.display_name or "").casefold(), c.reference))


@dataclass
class ListingGaps:
    """Customers one list names and the other does not (tenant id → name), and whether both
    lists were read whole (else a gap may only be the part that was not read)."""

    only_partner_center: dict[str, str | None] = field(default_factory=dict)
    only_gdap: dict[str, str | None] = field(default_factory=dict)
    complete: bool = True

    def __bool__(self) -> bool:
        return bool(self.only_partner_center or self.only_gdap)

    def as_dict(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "only_partner_center": [
                {"tenant_id": t, "name": n, "why": ONLY_PARTNER_CENTER}
                for t, n in sorted(self.only_partner_center.items())
            ],
            "only_gdap": [
                {"tenant_id": t, "name": n, "why": ONLY_GDAP}
                for t, n in sorted(self.only_gdap.items())
            ],
        }


ONLY_PARTNER_CENTER = (
    "a reseller customer without a GDAP relationship in effect: reached through DAP, or not "
    "at all (`cspgraph gdap invite`)"
)
ONLY_GDAP = "a GDAP relationship in effect, but not the partner's reseller customer"


def listing_gaps(
    partner_center: Mapping[str, str | None],
    gdap: Iterable[CustomerRef],
    *,
    complete: bool,
) -> ListingGaps:
    """The gaps between Partner Center's customers (tenant id → name) and the GDAP ones."""
    in_gdap = {(c.tenant_id or c.reference).lower(): c.display_name for c in gdap}
    in_pc = {t.lower(): n for t, n in partner_center.items()}
    return ListingGaps(
        only_partner_center={t: n for t, n in in_pc.items() if t not in in_gdap},
        only_gdap={t: n for t, n in in_gdap.items() if t not in in_pc},
        complete=complete,
    )


async def from_sources(
    partner_center: AsyncIterator[CustomerRef] | None,
    gdap: Iterable[CustomerRef],
    names: dict[str, str | None],
) -> AsyncIterator[CustomerRef]:
    """Partner Center's customers as they come (their names noted in ``names``), then the GDAP
    customers it did not name."""
    if partner_center is not None:
        async for customer in partner_center:
            if customer.tenant_id:
                names[customer.tenant_id.lower()] = customer.display_name
            yield customer
    for customer in gdap:
        if (customer.tenant_id or customer.reference).lower() not in names:
            yield customer
