"""Which customers a fleet sync covers: Partner Center's list per region, or the user's list.

Partner Center is asked once per configured region, through that region's partner identity (an
app-only Partner Center token in its partner tenant); each customer then syncs through the partner
identity of the region discovery places it in. A region whose listing fails is reported and the
other regions go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cspgraph.http.errors import CspGraphError

if TYPE_CHECKING:
    from cspgraph.identity import TokenProvider

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CustomerRef:
    """A customer to sync: ``reference`` is how it was named (tenant GUID, domain or UPN);
    what Partner Center already told about it is filled in where known."""

    reference: str
    tenant_id: str | None = None
    domain: str | None = None
    display_name: str | None = None
    region: str | None = None  # the partner identity that listed it


@dataclass
class ListingErrors:
    """Regions whose customer list could not be read (each with why)."""

    by_region: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.by_region)


def customers_from_list(references: Iterable[str]) -> list[CustomerRef]:
    """Customers named by the user: tenant GUIDs, domains or sign-in names; blanks and
    ``#`` comments are skipped, duplicates kept once (first spelling wins)."""
    out: list[CustomerRef] = []
    seen: set[str] = set()
    for raw in references:
        for part in raw.split(","):
            reference = part.split("#", 1)[0].strip()
            if reference and reference.lower() not in seen:
                seen.add(reference.lower())
                out.append(CustomerRef(reference=reference))
    return out


def read_customers_file(path: Path) -> list[CustomerRef]:
    """One customer per line (or comma-separated); ``#`` starts a comment."""
    return customers_from_list(path.read_text(encoding="utf-8").splitlines())


async def partner_center_customers(
    provider: TokenProvider,
    *,
    regions: Iterable[str] | None = None,
    errors: ListingErrors | None = None,
) -> AsyncIterator[CustomerRef]:
    """Every customer of every configured region's partner tenant, as Partner Center lists
    them. The regions are listed at once (each partner tenant has its own Partner Center limits)
    and their pages come out as they arrive, so a sync starts on every region's customers
    straight away instead of one region after another. A region that fails is recorded in
    ``errors`` (or raised when no ``errors`` is given) and the others go on."""
    identities = provider.config.identities
    wanted = [r for r in identities if regions is None or r in set(regions)]
    pages: asyncio.Queue[list[CustomerRef] | BaseException | None] = asyncio.Queue()

    async def list_region(region: str) -> None:
        try:
            async for page in _region_pages(provider, region):
                pages.put_nowait(page)
        except CspGraphError as exc:
            if errors is None:
                pages.put_nowait(exc)
            else:
                log.warning("listing the customers of region %s failed: %s", region, exc)
                errors.by_region[region] = str(exc)
        except Exception as exc:  # a bug: the caller sees it, as if it listed the region itself
            pages.put_nowait(exc)
        finally:
            pages.put_nowait(None)

    tasks = [asyncio.create_task(list_region(region)) for region in wanted]
    try:
        running = len(tasks)
        while running:
            item = await pages.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                for customer in item:
                    yield customer
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _region_pages(provider: TokenProvider, region: str) -> AsyncIterator[list[CustomerRef]]:
    """One region's customers, a Partner Center page at a time."""
    # Lazy on purpose: a sync of named customers (and reading a customers file) never lists them.
    from cspgraph.partner.center import PartnerCenterClient

    async with PartnerCenterClient.for_region(provider, region) as client:
        async for page in client.pages():
            yield [
                CustomerRef(
                    reference=customer.tenant_id,
                    tenant_id=customer.tenant_id,
                    domain=customer.domain or None,
                    display_name=customer.company_name,
                    region=region,
                )
                for customer in page
            ]
