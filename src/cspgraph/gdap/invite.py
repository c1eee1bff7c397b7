"""Ask a customer for GDAP: create the relationship, lock it for approval, hand out the link.

Idempotent by name: a relationship of that name that already exists with the same roles (and
customer) is picked up where it stands — locked if it is still ``created``, its link shown again
if it waits for approval, reported as it is when the customer has approved. One with other roles
or another customer is refused: GDAP names are unique per partner (wire-facts §5.1), and
changing roles after creation is not something Graph allows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cspgraph.gdap.api import (
    ADMIN_PORTAL,
    ENDED_STATUSES,
    GdapApi,
    Relationship,
    approval_link,
)
from cspgraph.gdap.roles import GLOBAL_ADMINISTRATOR, describe
from cspgraph.http.errors import BadRequestError

MAX_NAME = 50
DEFAULT_DURATION = "P730D"
AUTO_EXTEND = "P180D"  # the one extension Graph offers (wire-facts §5.1)
NO_AUTO_EXTEND = "PT0S"
# Microsoft's reason, as Partner Center's GDAP documentation gives it (wording abridged).
GLOBAL_ADMIN_NO_AUTO_EXTEND = (
    "Microsoft does not auto-extend relationships that include Global Administrator: the "
    "customer must approve such access again when it ends (Partner Center's GDAP documentation: "
    "auto-extend is not available for relationships with the Global Administrator role)"
)
_DURATION = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?", re.I)


class InviteError(BadRequestError):
    """An invitation cannot be made as asked; the message says what to change."""


def duration_days(text: str) -> int:
    """Days in an ISO 8601 duration of years, months (30 days) and days; GDAP allows P1D-P2Y."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or not any(match.groups()):
        raise InviteError(f"--duration {text!r}: expected an ISO 8601 duration like P730D or P1Y")
    years, months, days = (int(g) if g else 0 for g in match.groups())
    total = years * 365 + months * 30 + days
    if not 1 <= total <= 730:
        raise InviteError(
            f"--duration {text}: GDAP relationships last from P1D to P2Y (730 days), "
            f"not {total} days"
        )
    return total


@dataclass(frozen=True)
class InviteRequest:
    name: str
    roles: tuple[str, ...]
    duration: str = DEFAULT_DURATION
    auto_extend: bool = False
    customer_id: str | None = None  # None: any customer may approve
    customer_name: str | None = None

    def check(self) -> None:
        """Refuse what Graph would refuse, before any request."""
        if not self.name.strip():
            raise InviteError("the relationship needs a name (--name)")
        if len(self.name) > MAX_NAME:
            raise InviteError(
                f"--name {self.name!r} is {len(self.name)} characters; GDAP names are at most "
                f"{MAX_NAME}"
            )
        if not self.roles:
            raise InviteError("name at least one role (--roles)")
        duration_days(self.duration)
        if self.auto_extend and GLOBAL_ADMINISTRATOR in self.roles:
            raise InviteError(
                "--auto-extend with Global Administrator is refused: "
                f"{GLOBAL_ADMIN_NO_AUTO_EXTEND}. "
                "Drop Global Administrator (the least privilege for cspgraph is `--roles "
                "cspgraph`) or drop --auto-extend."
            )


@dataclass(frozen=True)
class Invitation:
    """What the partner sends the customer, and the relationship as it stands."""

    relationship: Relationship
    link: str
    created: bool  # this run created the relationship
    locked: bool  # this run locked it for approval

    @property
    def waiting_for_customer(self) -> bool:
        return self.relationship.status == "approvalPending"

    @property
    def summary(self) -> str:
        rel = self.relationship
        origin = "created" if self.created else "already there"
        lines = [
            f"{rel.display_name}: {rel.status} ({origin}; id {rel.id})",
            f"  roles: {describe(rel.roles)}",
            f"  duration: {rel.duration}, auto-extend: {rel.auto_extend or 'unknown'}",
            f"  customer: {rel.customer_name or rel.customer_id or 'any (the first to approve)'}",
        ]
        if self.waiting_for_customer:
            lines.append("  send this link to the customer's Global Administrator to approve:")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        rel = self.relationship
        return {
            "id": rel.id,
            "name": rel.display_name,
            "status": rel.status,
            "created": self.created,
            "locked": self.locked,
            "roles": [{"template_id": r, "name": describe((r,))} for r in rel.roles],
            "duration": rel.duration,
            "auto_extend": rel.auto_extend,
            "customer": rel.customer_id,
            "approval_link": self.link,
        }


async def invite(
    api: GdapApi, request: InviteRequest, *, admin_portal: str = ADMIN_PORTAL
) -> Invitation:
    """Create (or find by name) the relationship, lock it for approval, and give its link."""
    request.check()
    existing = next((r for r in await api.relationships() if r.display_name == request.name), None)
    created = False
    if existing is None:
        rel = await api.create(
            name=request.name,
            roles=request.roles,
            duration=request.duration,
            auto_extend=AUTO_EXTEND if request.auto_extend else NO_AUTO_EXTEND,
            customer=(request.customer_id, request.customer_name) if request.customer_id else None,
        )
        created = True
    else:
        rel = _same_or_refuse(existing, request)
    locked = False
    if rel.status == "created":
        await api.lock_for_approval(rel.id)
        rel = await api.relationship(rel.id)
        locked = True
    return Invitation(rel, approval_link(rel.id, admin_portal), created, locked)


def _same_or_refuse(rel: Relationship, request: InviteRequest) -> Relationship:
    if rel.status in ENDED_STATUSES:
        raise InviteError(
            f"a relationship named {rel.display_name!r} exists and is {rel.status} (id {rel.id}); "
            "GDAP names are unique per partner: choose a new --name"
        )
    if sorted(rel.roles) != sorted(request.roles):
        raise InviteError(
            f"a relationship named {rel.display_name!r} already exists with other roles "
            f"({describe(rel.roles)}; asked: {describe(request.roles)}); choose another --name"
        )
    if request.customer_id and rel.customer_id and rel.customer_id != request.customer_id.lower():
        raise InviteError(
            f"a relationship named {rel.display_name!r} already exists for another customer "
            f"({rel.customer_id}); choose another --name"
        )
    return rel


def default_name(customer: str | None, roles: Sequence[str]) -> str:
    """``cspgraph-<customer>`` cut to GDAP's 50 characters (a customer is needed for it)."""
    if not customer:
        raise InviteError("without --customer, name the relationship (--name)")
    return f"cspgraph-{customer}"[:MAX_NAME]
