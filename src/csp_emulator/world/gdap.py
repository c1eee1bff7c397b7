"""Granular delegated admin privileges (GDAP): relationships, access assignments, their requests
and long-running operations, living on the world clock.

A relationship's ``status`` is never stored: it is read off its timestamps at the moment asked
(:meth:`Relationship.status`), so moving the world clock moves a relationship through
``approved`` → ``activating`` → ``active`` → ``expiring`` → ``expired`` exactly as a partner's
poller would see it. Sources: Graph docs (delegatedAdminRelationship and its request, access
assignment and operation resources; wire-facts §5.1, §8). Where the docs give no timing, the
choices are here and marked *unverified*:

* approval → ``approved`` for the first half of ``propagation_delay``, ``activating`` for the
  second, ``active`` after (CIPP polls six times 30 s for activation, wire-facts §5.2);
* ``expiring`` during the last :data:`EXPIRING_WINDOW` (30 days) before ``endDateTime``, for
  relationships that do not auto-extend; an auto-extending one is extended by 180 days each time
  its end passes;
* a relationship locked for approval and not approved within :data:`APPROVAL_WINDOW` (90 days)
  is ``expired``; one the customer declines is ``terminated``;
* a terminate request makes the relationship ``terminationRequested`` for the first half of
  ``propagation_delay``, ``terminating`` for the second, ``terminated`` after; access ends when
  the request is made (new tokens only: claims are frozen at issue);
* an access assignment is ``pending`` for ``assignment_delay`` after it is made, then
  ``active``; a change of its roles is an operation that is ``running`` for ``assignment_delay``
  and then ``succeeded``, the new roles counting from then; a deleted one is ``deleting`` for
  ``assignment_delay`` and then gone.

This module imports nothing of the world model, so the model can hold a :class:`GdapBook`.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

DAY = 86400.0
EXPIRING_WINDOW = 30 * DAY
APPROVAL_WINDOW = 90 * DAY
AUTO_EXTEND_BY = 180 * DAY
AUTO_EXTEND_VALUES = ("PT0S", "P0D", "P180D")
MIN_DURATION = 1 * DAY
MAX_DURATION = 730 * DAY  # P2Y, with a year of 365 days as Graph's duration parsers count it
MAX_DISPLAY_NAME = 50

# The statuses in which a relationship grants its assigned roles in the customer.
ACCESS_STATUSES = frozenset({"active", "expiring"})

_NAMESPACE = uuid.UUID("7f2b8a4e-0d3c-4a61-9e55-3b9f1c2d4e60")

_ISO_DURATION = re.compile(
    r"^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


def parse_iso_duration(text: str) -> float:
    """Seconds in an ISO 8601 duration (``P730D``, ``P2Y``, ``PT0S``); ValueError otherwise.

    Years count 365 days and months 30, as Graph's and Kiota's duration parsers count them."""
    match = _ISO_DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as 'P730D'")
    y, mo, w, d, h, mi, s = (float(g) if g else 0.0 for g in match.groups())
    return ((y * 365 + mo * 30 + w * 7 + d) * 24 + h) * 3600 + mi * 60 + s


def timestamp(ts: float | None) -> str | None:
    """Graph's DateTimeOffset as the GDAP APIs write it: UTC, seven fractional digits, Z."""
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def new_relationship_id(*seed: str) -> str:
    """Two GUIDs joined by a hyphen, as Graph's relationship ids are (wire-facts §5.1); stable
    when ``seed`` is given (world files), random otherwise."""
    if seed:
        key = "/".join(seed)
        return f"{uuid.uuid5(_NAMESPACE, key + '/a')}-{uuid.uuid5(_NAMESPACE, key + '/b')}"
    return f"{uuid.uuid4()}-{uuid.uuid4()}"


def new_object_id(*seed: str) -> str:
    """A GUID for an assignment, request or operation; stable when ``seed`` is given."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(seed))) if seed else str(uuid.uuid4())


def valid_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


def valid_relationship_id(text: str) -> bool:
    return len(text) == 73 and text[36] == "-" and valid_guid(text[:36]) and valid_guid(text[37:])


def etag(object_id: str, version: int, state: str) -> str:
    """A weak etag shaped like Graph's for these objects (a quoted, base64-wrapped store etag):
    it changes with every write and with every change of status."""
    inner = uuid.uuid5(_NAMESPACE, f"{object_id}/{version}/{state}")
    quoted = f"'\"{inner}\"'".encode()
    return f'W/"{base64.b64encode(quoted).decode()}"'


@dataclass
class AccessAssignment:
    id: str
    group_id: str  # the partner security group (accessContainerId)
    roles: list[str]
    created_at: float
    modified_at: float
    active_at: float  # pending until then
    version: int = 1
    # A role change in flight: the roles it sets and when they take effect.
    next_roles: list[str] | None = None
    next_roles_at: float = 0.0
    deleting_at: float | None = None
    deleted_at: float | None = None

    def settle(self, now: float) -> None:
        if self.next_roles is not None and now >= self.next_roles_at:
            self.roles = self.next_roles
            self.next_roles = None
            self.modified_at = self.next_roles_at
            self.version += 1

    def status(self, now: float) -> str:
        if self.deleted_at is not None and now >= self.deleted_at:
            return "deleted"
        if self.deleting_at is not None:
            return "deleting"
        return "active" if now >= self.active_at else "pending"

    def grants(self, now: float) -> bool:
        """Whether the members of the group hold the roles now (deleting ones no longer do)."""
        return self.status(now) == "active"


@dataclass
class RelationshipRequest:
    id: str
    action: str  # "lockForApproval" | "terminate"
    created_at: float


@dataclass
class Operation:
    id: str
    operation_type: str
    data: str
    created_at: float
    done_at: float

    def status(self, now: float) -> str:
        if now >= self.done_at:
            return "succeeded"
        return "running" if now > self.created_at else "notStarted"


@dataclass
class Relationship:
    """One GDAP relationship of a partner (with one customer once approved)."""

    id: str
    partner_id: str
    display_name: str
    duration: str  # ISO 8601, as the partner wrote it
    roles: list[str]  # role template ids
    created_at: float
    customer_id: str | None = None
    customer_name: str | None = None
    auto_extend: str = "PT0S"
    modified_at: float = 0.0
    locked_at: float | None = None
    approved_at: float | None = None
    activated_at: float | None = None
    end_at: float | None = None
    declined_at: float | None = None
    terminate_requested_at: float | None = None
    terminated_at: float | None = None
    version: int = 1
    assignments: dict[str, AccessAssignment] = field(default_factory=dict)
    requests: dict[str, RelationshipRequest] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.modified_at:
            self.modified_at = self.created_at

    @property
    def duration_seconds(self) -> float:
        return parse_iso_duration(self.duration)

    def touch(self, now: float) -> None:
        self.modified_at = now
        self.version += 1

    def settle(self, now: float) -> None:
        """Apply what the clock has done since the last look: auto-extension, finished role
        changes, assignments whose deletion completed."""
        if (
            self.auto_extend == "P180D"
            and self.end_at is not None
            and self.activated_at is not None
            and self.terminate_requested_at is None
        ):
            while now >= self.end_at:
                self.end_at += AUTO_EXTEND_BY
                self.version += 1
        for assignment in list(self.assignments.values()):
            assignment.settle(now)
            if assignment.status(now) == "deleted":
                del self.assignments[assignment.id]

    def end(self) -> float:
        """``endDateTime``: activation (or, before it, creation) plus the duration."""
        if self.end_at is not None:
            return self.end_at
        return (self.activated_at or self.created_at) + self.duration_seconds

    def status(self, now: float) -> str:
        if self.declined_at is not None:
            return "terminated"
        if self.terminate_requested_at is not None:
            done = self.terminated_at if self.terminated_at is not None else now
            if now >= done:
                return "terminated"
            halfway = (self.terminate_requested_at + done) / 2
            return "terminating" if now >= halfway else "terminationRequested"
        if self.approved_at is None or self.activated_at is None:
            if self.locked_at is None:
                return "created"
            if now >= self.locked_at + APPROVAL_WINDOW:
                return "expired"
            return "approvalPending"
        if now < self.activated_at:
            halfway = (self.approved_at + self.activated_at) / 2
            return "activating" if now >= halfway else "approved"
        end = self.end()
        if now >= end:
            return "expired"
        if self.auto_extend != "P180D" and now >= end - EXPIRING_WINDOW:
            return "expiring"
        return "active"

    def grants_access(self, now: float) -> bool:
        return self.status(now) in ACCESS_STATUSES

    def etag(self, now: float) -> str:
        return etag(self.id, self.version, self.status(now))

    # -- what the partner, the customer and the clock do ---------------------------------------
    def lock_for_approval(self, now: float) -> None:
        self.locked_at = now
        self.touch(now)

    def approve(self, customer_id: str, customer_name: str, now: float, delay: float) -> None:
        self.customer_id = customer_id
        self.customer_name = customer_name
        self.approved_at = now
        self.activated_at = now + delay
        self.end_at = self.activated_at + self.duration_seconds
        self.touch(now)

    def decline(self, now: float) -> None:
        self.declined_at = now
        self.end_at = now
        self.touch(now)

    def terminate(self, now: float, delay: float) -> None:
        self.terminate_requested_at = now
        self.terminated_at = now + delay
        self.end_at = now + delay
        self.touch(now)


@dataclass
class GdapBook:
    """Every GDAP relationship of the world, by id."""

    relationships: dict[str, Relationship] = field(default_factory=dict)

    def add(self, relationship: Relationship) -> Relationship:
        self.relationships[relationship.id] = relationship
        return relationship

    def of_partner(self, partner_id: str, now: float) -> list[Relationship]:
        found = [r for r in self.relationships.values() if r.partner_id == partner_id]
        for relationship in found:
            relationship.settle(now)
        return found

    def with_customer(self, customer_id: str, now: float) -> list[Relationship]:
        found = [r for r in self.relationships.values() if r.customer_id == customer_id]
        for relationship in found:
            relationship.settle(now)
        return found

    def roles_for(
        self, partner_id: str, customer_id: str, group_ids: set[str], now: float
    ) -> list[str]:
        """Role template ids the members of ``group_ids`` hold in the customer now: every active
        assignment to one of those groups, in every relationship of the partner with the
        customer that grants access now, limited to the relationship's own roles."""
        roles: list[str] = []
        for relationship in self.with_customer(customer_id, now):
            if relationship.partner_id != partner_id or not relationship.grants_access(now):
                continue
            allowed = set(relationship.roles)
            for assignment in relationship.assignments.values():
                if assignment.group_id in group_ids and assignment.grants(now):
                    roles.extend(r for r in assignment.roles if r in allowed and r not in roles)
        return roles

    def customers_of(self, partner_id: str, now: float) -> list[str]:
        """Customer tenant ids with at least one relationship of the partner granting access."""
        seen: list[str] = []
        for relationship in self.of_partner(partner_id, now):
            customer = relationship.customer_id
            if customer and relationship.grants_access(now) and customer not in seen:
                seen.append(customer)
        return seen
