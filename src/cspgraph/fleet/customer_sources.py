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
    lists were read whole (else a gap may only be the part that was not read). A customer
    whose region's other list could not be read is in neither gap but in ``unknown`` (tenant
    id → (name, why)): whether the other list names it is not known, and never said as "no"."""

    only_partner_center: dict[str, str | None] = field(default_factory=dict)
    only_gdap: dict[str, str | None] = field(default_factory=dict)
    complete: bool = True
    unknown: dict[str, tuple[str | None, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.only_partner_center or self.only_gdap or self.unknown)

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
            "unknown": [
                {"tenant_id": t, "name": n, "why": why}
                for t, (n, why) in sorted(self.unknown.items())
            ],
        }


ONLY_PARTNER_CENTER = (
    "a reseller customer without a GDAP relationship in effect: reached through DAP, or not "
    "at all (`cspgraph gdap invite`)"
)
ONLY_GDAP = "a GDAP relationship in effect, but not the partner's reseller customer"


GDAP_UNKNOWN = (
    "whether it has a GDAP relationship in effect is unknown: the GDAP relationships of "
    "region {region} could not be read"
)
PARTNER_CENTER_UNKNOWN = (
    "whether it is the partner's reseller customer is unknown: Partner Center's customers of "
    "region {region} could not be read"
)


def listing_gaps(
    partner_center: Mapping[str, str | None],
    gdap: Iterable[CustomerRef],
    *,
    complete: bool,
    regions: Mapping[str, str | None] | None = None,
    gdap_unknown: Iterable[str] = (),
    partner_center_unknown: Iterable[str] = (),
) -> ListingGaps:
    """The gaps between Partner Center's customers (tenant id → name) and the GDAP ones.

    ``regions``: the region that listed each Partner Center customer (tenant id → region);
    ``gdap_unknown`` and ``partner_center_unknown``: the regions whose GDAP relationships or
    Partner Center customers could not be read. A customer one list names whose region's other
    list is unknown goes to ``unknown``, not to a gap."""
    in_gdap = {(c.tenant_id or c.reference).lower(): c for c in gdap}
    in_pc = {t.lower(): n for t, n in partner_center.items()}
    where = {t.lower(): r for t, r in (regions or {}).items()}
    no_gdap, no_pc = set(gdap_unknown), set(partner_center_unknown)
    gaps = ListingGaps(complete=complete)
    for tenant, name in in_pc.items():
        if tenant in in_gdap:
            continue
        region = where.get(tenant)
        if no_gdap and (region is None or region in no_gdap):
            shown = region if region is not None else ", ".join(sorted(no_gdap))
            gaps.unknown[tenant] = (name, GDAP_UNKNOWN.format(region=shown))
        else:
            gaps.only_partner_center[tenant] = name
    for tenant, customer in in_gdap.items():
        if tenant in in_pc:
            continue
        if no_pc and (customer.region is None or customer.region in no_pc):
            shown = customer.region or ", ".join(sorted(no_pc))
            gaps.unknown[tenant] = (
                customer.display_name,
                PARTNER_CENTER_UNKNOWN.format(region=shown),
            )
        else:
            gaps.only_gdap[tenant] = customer.display_name
    return gaps


async def from_sources(
    partner_center: AsyncIterator[CustomerRef] | None,
    gdap: Iterable[CustomerRef],
    names: dict[str, str | None],
    regions: dict[str, str | None] | None = None,
) -> AsyncIterator[CustomerRef]:
    """Partner Center's customers as they come (their names noted in ``names``, their regions
    in ``regions``), then the GDAP customers it did not name."""
    if partner_center is not None:
        async for customer in partner_center:
            if customer.tenant_id:
                names[customer.tenant_id.lower()] = customer.display_name
                if regions is not None:
                    regions[customer.tenant_id.lower()] = customer.region
            yield customer
    for customer in gdap:
        if (customer.tenant_id or customer.reference).lower() not in names:
            yield customer
