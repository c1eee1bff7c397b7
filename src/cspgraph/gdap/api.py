"""Graph's GDAP APIs in the partner tenant (``/tenantRelationships``), as typed objects.

Relationships, their requests (``lockForApproval``), access assignments and the operations an
assignment change starts (wire-facts §5.1, §8; Graph docs: delegatedAdminRelationship and
delegatedAdminAccessAssignment). Every call goes through the Graph client, so tokens, retries and
the CSP scope check are the client's; this module only knows the resources' shapes.

The caller's token is delegated (a partner technician in ``AdminAgents``, with
``DelegatedAdminRelationship.ReadWrite.All``): relationship requests are "Application: Not
supported" in Graph's permission table.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cspgraph.graph.client import GraphClient, TokenSource
from cspgraph.graph.scope import covers, permission_for
from cspgraph.http import token_claims
from cspgraph.http.errors import (
    CspGraphError,
    NeedsPersonError,
    PropagatingError,
    not_in_admin_agents_error,
    permission_missing_error,
)

ADMIN_AGENTS = "AdminAgents"
ROOT = "/tenantRelationships/delegatedAdminRelationships"
# The technician's delegated permissions for reading and changing them (the CSP scope table).
READ = permission_for("GET", ROOT, delegated=True)
READ_WRITE = permission_for("POST", ROOT, delegated=True)
# Where a customer's Global Administrator approves a relationship (wire-facts §5.1).
ADMIN_PORTAL = "https://admin.microsoft.com"
APPROVAL_PATH = "/AdminPortal/Home#/partners/invitation/granularAdminRelationships/"

# Statuses in which a relationship gives access (Graph docs' lifecycle).
ACCESS_STATUSES = frozenset({"active", "expiring"})
# Statuses on the way to access: the customer has not approved yet, or activation runs.
PENDING_STATUSES = frozenset({"created", "approvalPending", "approved", "activating"})
ENDED_STATUSES = frozenset({"expired", "terminated", "terminationRequested", "terminating"})


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time from Graph; None when absent or not a time (never a made-up one)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _roles(details: Any) -> tuple[str, ...]:
    roles = details.get("unifiedRoles") if isinstance(details, Mapping) else None
    if not isinstance(roles, list):
        return ()
    return tuple(
        str(r["roleDefinitionId"]).lower()
        for r in roles
        if isinstance(r, Mapping) and r.get("roleDefinitionId")
    )


def unified_roles(role_ids: Sequence[str]) -> dict[str, Any]:
    return {"unifiedRoles": [{"roleDefinitionId": r} for r in role_ids]}


@dataclass(frozen=True)
class Relationship:
    """A delegatedAdminRelationship as Graph answered it."""

    id: str
    display_name: str
    status: str
    customer_id: str | None
    customer_name: str | None
    roles: tuple[str, ...]
    duration: str | None
    auto_extend: str | None
    created: datetime | None
    activated: datetime | None
    ends: datetime | None
    etag: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Relationship:
        customer = data.get("customer") if isinstance(data.get("customer"), Mapping) else {}
        assert isinstance(customer, Mapping)
        tenant = customer.get("tenantId")
        return cls(
            id=str(data["id"]),
            display_name=str(data.get("displayName") or ""),
            status=str(data.get("status") or "unknown"),
            customer_id=str(tenant).lower() if tenant else None,
            customer_name=customer.get("displayName"),
            roles=_roles(data.get("accessDetails")),
            duration=data.get("duration"),
            auto_extend=data.get("autoExtendDuration"),
            created=parse_time(data.get("createdDateTime")),
            activated=parse_time(data.get("activatedDateTime")),
            ends=parse_time(data.get("endDateTime")),
            etag=data.get("@odata.etag"),
        )

    @property
    def gives_access(self) -> bool:
        return self.status in ACCESS_STATUSES

    @property
    def is_mlt(self) -> bool:
        """Made by the Microsoft-led transition from DAP (``MLT_…``): read-only roles, not ours."""
        return self.display_name.startswith("MLT_")

    @property
    def auto_extends(self) -> bool:
        return (self.auto_extend or "").upper() not in ("", "PT0S", "P0D")


@dataclass(frozen=True)
class Assignment:
    """A delegatedAdminAccessAssignment: a partner security group and the roles it gets."""

    id: str
    group_id: str
    roles: tuple[str, ...]
    status: str
    etag: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Assignment:
        container = data.get("accessContainer")
        group = container.get("accessContainerId") if isinstance(container, Mapping) else None
        return cls(
            id=str(data["id"]),
            group_id=str(group or "").lower(),
            roles=_roles(data.get("accessDetails")),
            status=str(data.get("status") or "unknown"),
            etag=data.get("@odata.etag"),
        )


def approval_link(relationship_id: str, admin_portal: str = ADMIN_PORTAL) -> str:
    """The link a customer's Global Administrator opens to approve the relationship."""
    return f"{admin_portal.rstrip('/')}{APPROVAL_PATH}{relationship_id}"


class GdapApi:
    """The GDAP resources of one partner tenant, over a Graph client whose tokens are a partner
    technician's (``AgentTokenProvider``; give it as ``tokens`` too, so a refusal can be
    explained from the permissions the technician's token carried).

    Graph's 403 here is never a relationship on its way (these are the partner's own tenant's
    resources): it is the app's delegated permission missing (``DelegatedAdminRelationship.*``)
    or a technician outside ``AdminAgents`` — both need a person, named as such."""

    def __init__(
        self, graph: GraphClient, partner_tenant: str, tokens: TokenSource | None = None
    ) -> None:
        self.graph = graph
        self.partner = partner_tenant
        self.tokens = tokens

    @contextlib.asynccontextmanager
    async def _explained(self, operation: str, *, write: bool = False) -> AsyncIterator[None]:
        try:
            yield
        except PropagatingError as exc:
            if exc.status != 403:
                raise
            raise await self._denied(exc, operation, READ_WRITE if write else READ) from None

    async def _denied(self, exc: CspGraphError, operation: str, needed: str) -> CspGraphError:
        token: str | None = None
        if self.tokens is not None:
            try:
                token = await self.tokens.get_token(self.partner)
            except CspGraphError:
                token = None
        granted = token_claims.scopes(token)
        if granted is None or covers(granted, needed):
            # The permission is there (or unknown): the technician is not in AdminAgents.
            return not_in_admin_agents_error("the signed-in technician", tenant=self.partner)
        explained = permission_missing_error(
            exc, operation=operation, permission=needed, kind="delegated",
            holder="the signed-in technician's token", granted=granted,
            next_step=f"add the delegated permission {READ_WRITE} to the app's registration, "
            "consent it in the partner tenant, then sign in again (`cspgraph login`)",
        )  # fmt: skip
        # The commands print the message: it carries the next step, not Graph's bare 403 text.
        return NeedsPersonError(
            explained.reason, code=exc.code, status=exc.status, tenant=self.partner,
            request_id=exc.request_id, reason=explained.reason,
        )  # fmt: skip

    # -- relationships ---------------------------------------------------------------------------

    async def relationships(self, *, customer: str | None = None) -> list[Relationship]:
        """Every relationship of the partner (``customer``: of that tenant id only). An empty
        list from a technician outside AdminAgents is Graph's answer to such a caller, not "0
        relationships": raised as :func:`not_in_admin_agents_error` (exit 3)."""
        async with self._explained("listing GDAP relationships"):
            filter_ = f"customer/tenantId eq '{customer}'" if customer else None
            found = [
                Relationship.from_json(item)
                async for item in self.graph.list(self.partner, ROOT, filter=filter_)
            ]
        if not found and await self._outside_admin_agents():
            raise not_in_admin_agents_error(await self._technician(), tenant=self.partner)
        return found

    async def _outside_admin_agents(self) -> bool:
        """Whether the signed-in technician is, for sure, not a member of AdminAgents (False
        when it cannot be told: the empty list then stands, as the commands say)."""
        try:
            async for group in self.graph.list(
                self.partner, "/me/memberOf", select=["id", "displayName"]
            ):
                if group.get("displayName") == ADMIN_AGENTS:
                    return False
        except CspGraphError:
            return False
        return True

    async def _technician(self) -> str:
        token: str | None = None
        if self.tokens is not None:
            with contextlib.suppress(CspGraphError):
                token = await self.tokens.get_token(self.partner)
        said = token_claims.claims(token) or {}
        name = said.get("upn") or said.get("preferred_username")
        return str(name) if name else "the signed-in technician"

    async def relationship(self, relationship_id: str) -> Relationship:
        async with self._explained("reading a GDAP relationship"):
            return Relationship.from_json(
                await self.graph.get(self.partner, f"{ROOT}/{relationship_id}")
            )

    async def create(
        self,
        *,
        name: str,
        roles: Sequence[str],
        duration: str,
        auto_extend: str,
        customer: tuple[str, str | None] | None,
    ) -> Relationship:
        async with self._explained("creating a GDAP relationship", write=True):
            body: dict[str, Any] = {
                "displayName": name,
                "duration": duration,
                "autoExtendDuration": auto_extend,
                "accessDetails": unified_roles(roles),
            }
            if customer is not None:
                body["customer"] = {"tenantId": customer[0], "displayName": customer[1] or ""}
            created = await self.graph.post(self.partner, ROOT, body)
            if created is None:
                return await self._by_name_required(name)
            return Relationship.from_json(created)

    async def _by_name_required(self, name: str) -> Relationship:
        for rel in await self.relationships():
            if rel.display_name == name:
                return rel
        raise LookupError(f"the relationship {name!r} was created but cannot be read back")

    async def lock_for_approval(self, relationship_id: str) -> dict[str, Any]:
        async with self._explained("locking a GDAP relationship for approval", write=True):
            answer = await self.graph.post(
                self.partner, f"{ROOT}/{relationship_id}/requests", {"action": "lockForApproval"}
            )
            return answer or {}

    async def set_auto_extend(self, rel: Relationship, value: str) -> Relationship:
        async with self._explained("changing a GDAP relationship's auto-extension", write=True):
            headers = {"If-Match": rel.etag} if rel.etag else None
            await self.graph.patch(
                self.partner, f"{ROOT}/{rel.id}", {"autoExtendDuration": value}, headers=headers
            )
            return await self.relationship(rel.id)

    # -- access assignments ----------------------------------------------------------------------

    async def assignments(self, relationship_id: str) -> list[Assignment]:
        async with self._explained("listing access assignments"):
            return [
                Assignment.from_json(item)
                async for item in self.graph.list(
                    self.partner, f"{ROOT}/{relationship_id}/accessAssignments"
                )
            ]

    async def assignment(self, relationship_id: str, assignment_id: str) -> Assignment:
        async with self._explained("reading an access assignment"):
            data = await self.graph.get(
                self.partner, f"{ROOT}/{relationship_id}/accessAssignments/{assignment_id}"
            )
            return Assignment.from_json(data)

    async def create_assignment(
        self, relationship_id: str, group_id: str, roles: Sequence[str]
    ) -> Assignment:
        async with self._explained("creating an access assignment", write=True):
            body = {
                "accessContainer": {
                    "accessContainerId": group_id,
                    "accessContainerType": "securityGroup",
                },
                "accessDetails": unified_roles(roles),
            }
            created = await self.graph.post(
                self.partner, f"{ROOT}/{relationship_id}/accessAssignments", body
            )
            if created is None:
                raise LookupError(
                    "Graph answered the access assignment's creation without the object"
                )
            return Assignment.from_json(created)

    async def update_assignment(
        self, relationship_id: str, assignment: Assignment, roles: Sequence[str]
    ) -> None:
        """Change an assignment's roles: Graph answers 202 and runs an operation (followed through
        :meth:`operations`), or 200 when nothing changes."""
        async with self._explained("changing an access assignment", write=True):
            headers = {"If-Match": assignment.etag} if assignment.etag else None
            await self.graph.patch(
                self.partner,
                f"{ROOT}/{relationship_id}/accessAssignments/{assignment.id}",
                {"accessDetails": unified_roles(roles)},
                headers=headers,
            )

    async def operations(self, relationship_id: str) -> list[dict[str, Any]]:
        async with self._explained("reading an access assignment's operations"):
            return [
                item
                async for item in self.graph.list(
                    self.partner, f"{ROOT}/{relationship_id}/operations"
                )
            ]

    # -- the partner's security groups -----------------------------------------------------------

    async def groups(self) -> list[dict[str, Any]]:
        return [
            item
            async for item in self.graph.list(
                self.partner, "/groups", select=("id", "displayName", "securityEnabled")
            )
        ]

    async def create_group(self, name: str, description: str) -> dict[str, Any]:
        nickname = "".join(c for c in name.lower() if c.isalnum())[:56] or "cspgraphgdap"
        body = {
            "displayName": name,
            "description": description,
            "mailEnabled": False,
            "mailNickname": nickname,
            "securityEnabled": True,
        }
        created = await self.graph.post(self.partner, "/groups", body)
        if created is None:
            raise LookupError(f"Graph answered the creation of group {name!r} without the object")
        return created

    async def transitive_members(self, group_id: str) -> list[dict[str, Any]]:
        return [
            item
            async for item in self.graph.list(
                self.partner,
                f"/groups/{group_id}/transitiveMembers",
                select=("id", "userPrincipalName", "displayName"),
            )
        ]
