"""Give an approved relationship's roles to the partner's security groups, and wait until the
assignments are active.

One group per role (CIPP's layout, and what makes a technician's access readable: membership of
"cspgraph GDAP Directory Readers" says what they may do), found by name, made with
``create_groups``, or named by the caller per role. An assignment is created per group (Graph:
201 ``pending``, ``active`` once the customer's directory has it); an existing one whose roles
differ is changed (202 and an operation, followed until it succeeds). Then the assignments are
read until every one is ``active``, on the given clock (an emulator's world clock in tests, never
a sleep). Nothing is repeated on a second run: existing assignments are picked up where they
stand, so an interrupted run resumes by running again.

Last, the technicians (the users in ``AdminAgents``) none of whose groups holds a role in the
customer are reported: their sign-in there fails with AADSTS50020.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cspgraph.gdap.api import ACCESS_STATUSES, Assignment, GdapApi, Relationship
from cspgraph.gdap.roles import describe, name_of
from cspgraph.http.errors import CspGraphError, NeedsPersonError, PropagatingError
from cspgraph.partner.onboarding import Clock, SystemClock

GROUP_PREFIX = "cspgraph GDAP"
# CIPP polls assignments every 15 s for up to 8 minutes (wire-facts §5.2).
POLL_EVERY = 15.0
BUDGET = 480.0
DONE_OPERATIONS = frozenset({"succeeded", "failed"})


def group_name(role_id: str, prefix: str = GROUP_PREFIX) -> str:
    """The group that holds one role: ``cspgraph GDAP Directory Readers``."""
    return f"{prefix} {name_of(role_id)}"


@dataclass(frozen=True)
class GroupRoles:
    """One partner security group and the roles it gets in the relationship."""

    group_id: str
    group_name: str
    roles: tuple[str, ...]
    created: bool = False  # this run created the group


@dataclass
class AssignResult:
    relationship: Relationship
    groups: list[GroupRoles]
    assignments: list[Assignment]
    created: list[str] = field(default_factory=list)  # assignment ids this run created
    changed: list[str] = field(default_factory=list)  # assignment ids whose roles changed
    waited: float = 0.0  # seconds this run waited (slept) for "active"
    technicians_without_role: list[str] = field(default_factory=list)  # UPNs
    technicians_unknown: str | None = None  # why the technicians could not be read

    @property
    def all_active(self) -> bool:
        return all(a.status == "active" for a in self.assignments)

    def as_dict(self) -> dict[str, Any]:
        names = {g.group_id: g.group_name for g in self.groups}
        return {
            "relationship": {"id": self.relationship.id, "name": self.relationship.display_name,
                             "customer": self.relationship.customer_id},
            "groups": [
                {"id": g.group_id, "name": g.group_name, "created": g.created,
                 "roles": [describe((r,)) for r in g.roles]}
                for g in self.groups
            ],
            "assignments": [
                {"id": a.id, "group_id": a.group_id, "group": names.get(a.group_id),
                 "roles": [describe((r,)) for r in a.roles], "status": a.status,
                 "created": a.id in self.created, "changed": a.id in self.changed}
                for a in self.assignments
            ],
            "waited_seconds": round(self.waited),
            "technicians_without_role": None
            if self.technicians_unknown is not None
            else self.technicians_without_role,
            "technicians_unknown": self.technicians_unknown,
        }  # fmt: skip


def usable(rel: Relationship) -> Relationship:
    """The relationship, if its roles can be assigned now; else the error that says why."""
    if rel.status in ACCESS_STATUSES:
        return rel
    if rel.status in ("approved", "activating"):
        raise PropagatingError(
            f"relationship {rel.display_name!r} is {rel.status}: the customer approved it and "
            "Microsoft is activating it; run the same command again in a few minutes",
            code="GdapActivating",
            reason="the relationship is still activating",
        )
    if rel.status in ("created", "approvalPending"):
        raise NeedsPersonError(
            f"relationship {rel.display_name!r} is {rel.status}: the customer's Global "
            "Administrator has not approved it yet (cspgraph gdap invite prints the link)",
            code="GdapNotApproved",
            reason="the customer has not approved the relationship",
        )
    raise NeedsPersonError(
        f"relationship {rel.display_name!r} is {rel.status}"
        + (f" since {rel.ends:%Y-%m-%d}" if rel.ends and rel.status == "expired" else "")
        + ": its roles can no longer be assigned; invite the customer again (cspgraph gdap invite)",
        code="GdapEnded",
        reason="the relationship has ended",
    )


async def plan_groups(
    api: GdapApi,
    rel: Relationship,
    *,
    groups: Mapping[str, str] | None = None,
    create_groups: bool = False,
    prefix: str = GROUP_PREFIX,
) -> list[GroupRoles]:
    """Which group gets which of the relationship's roles. ``groups``: role template id →
    group display name or id, for roles the caller places; the others go to ``prefix ROLE``."""
    existing = await api.groups()
    by_name = {str(g.get("displayName") or "").lower(): g for g in existing}
    by_id = {str(g["id"]).lower(): g for g in existing}
    chosen: dict[str, tuple[str, str, bool]] = {}  # group id -> (name, roles joined, created)
    roles_of: dict[str, list[str]] = {}
    for role in rel.roles:
        wanted = (groups or {}).get(role) or group_name(role, prefix)
        found = by_id.get(wanted.lower()) or by_name.get(wanted.lower())
        created = False
        if found is None:
            if not create_groups:
                raise NeedsPersonError(
                    f"the partner tenant has no security group {wanted!r} for "
                    f"{name_of(role)}: pass --create-groups to make one group per role, or "
                    "--group 'ROLE=GROUP' to use an existing group",
                    code="GdapGroupMissing",
                    reason="a group for a role is missing",
                )
            try:
                found = await api.create_group(
                    wanted, f"Partner technicians with {name_of(role)} in GDAP customers (cspgraph)"
                )
            except PropagatingError as exc:
                if exc.status != 403:
                    raise
                raise NeedsPersonError(
                    f"cannot create the security group {wanted!r} in the partner tenant: the "
                    "signed-in technician needs Groups Administrator (or User Administrator) "
                    "there; create the groups in Entra, or sign in as someone who may",
                    code=exc.code,
                    status=exc.status,
                    tenant=exc.tenant,
                    request_id=exc.request_id,
                    reason="no right to create groups in the partner tenant",
                ) from None
            created = True
            by_name[wanted.lower()] = found
            by_id[str(found["id"]).lower()] = found
        if found.get("securityEnabled") is False:
            raise NeedsPersonError(
                f"{found.get('displayName')!r} is not a security group: GDAP assigns roles to "
                "security groups only",
                code="GdapNotSecurityGroup",
            )
        group_id = str(found["id"]).lower()
        chosen.setdefault(group_id, (str(found.get("displayName")), "", created))
        roles_of.setdefault(group_id, []).append(role)
    return [
        GroupRoles(gid, name, tuple(roles_of[gid]), created)
        for gid, (name, _, created) in chosen.items()
    ]


async def assign(
    api: GdapApi,
    rel: Relationship,
    *,
    groups: Mapping[str, str] | None = None,
    create_groups: bool = False,
    prefix: str = GROUP_PREFIX,
    wait: bool = True,
    clock: Clock | None = None,
    poll_every: float = POLL_EVERY,
    budget: float = BUDGET,
    on_progress: Callable[[str], None] | None = None,
) -> AssignResult:
    """Assign ``rel``'s roles to the partner's groups and (``wait``) follow them until active."""
    clock = clock or SystemClock()
    say = on_progress or (lambda _: None)
    usable(rel)
    plan = await plan_groups(api, rel, groups=groups, create_groups=create_groups, prefix=prefix)
    current = {a.group_id: a for a in await api.assignments(rel.id) if a.status != "deleted"}
    result = AssignResult(rel, plan, [])
    for item in plan:
        mine = current.get(item.group_id)
        if mine is None:
            made = await api.create_assignment(rel.id, item.group_id, item.roles)
            result.created.append(made.id)
            say(f"assigned {describe(item.roles)} to {item.group_name}: {made.status}")
        elif sorted(mine.roles) != sorted(item.roles) and mine.status != "deleting":
            await api.update_assignment(rel.id, mine, item.roles)
            result.changed.append(mine.id)
            say(f"changing {item.group_name}'s roles to {describe(item.roles)}")
    wanted = {item.group_id for item in plan}
    result.assignments = [a for a in await api.assignments(rel.id) if a.group_id in wanted]
    if wait:
        await _until_active(api, result, clock, poll_every, budget, say)
    await _technicians(api, rel, result)
    return result


async def _until_active(
    api: GdapApi,
    result: AssignResult,
    clock: Clock,
    poll_every: float,
    budget: float,
    say: Callable[[str], None],
) -> None:
    rel = result.relationship
    started = clock.now()
    wanted = {a.group_id for a in result.assignments}
    while True:
        operations = await api.operations(rel.id) if result.changed else []
        running = [o for o in operations if o.get("status") not in DONE_OPERATIONS]
        failed = [o for o in operations if o.get("status") == "failed"]
        result.assignments = [a for a in await api.assignments(rel.id) if a.group_id in wanted]
        broken = [a for a in result.assignments if a.status == "error"]
        if broken or failed:
            what = ", ".join(a.group_id for a in broken) or f"{len(failed)} operation(s)"
            raise NeedsPersonError(
                f"access assignment(s) of {rel.display_name!r} failed ({what}): remove them in "
                "Partner Center or fix the group, then run cspgraph gdap assign again",
                code="GdapAssignmentError",
                reason="an access assignment is in error",
            )
        if result.all_active and not running:
            return
        if clock.now() - started + poll_every > budget:
            pending = [a for a in result.assignments if a.status != "active"]
            raise PropagatingError(
                f"{len(pending)} access assignment(s) of {rel.display_name!r} are still "
                f"{', '.join(sorted({a.status for a in pending})) or 'changing'} after "
                f"{clock.now() - started:.0f} s; run the same command again to keep waiting "
                "(partners see assignments take minutes, sometimes longer)",
                code="GdapAssignmentPending",
                reason="access assignments are not active yet",
            )
        waiting = Counter(a.status for a in result.assignments if a.status != "active")
        said = ", ".join(f"{n} {status}" for status, n in sorted(waiting.items()))
        say(
            f"waiting for access assignments ({said or 'none left'})"
            + (f" and {len(running)} operation(s)" if running else "")
        )
        await clock.sleep(poll_every)
        result.waited += poll_every


async def _technicians(api: GdapApi, rel: Relationship, result: AssignResult) -> None:
    """AdminAgents users whose groups give them no role in the customer through any active
    relationship with it (they would get AADSTS50020 there)."""
    try:
        groups = await api.groups()
        agents = next((g for g in groups if g.get("displayName") == "AdminAgents"), None)
        if agents is None:
            result.technicians_unknown = "the partner tenant has no AdminAgents group"
            return
        technicians = _users(await api.transitive_members(str(agents["id"])))
        holders: set[str] = set()
        siblings = await api.relationships(customer=rel.customer_id) if rel.customer_id else [rel]
        for other in siblings:
            if not other.gives_access:
                continue
            for assignment in await api.assignments(other.id):
                if assignment.status == "active":
                    members = await api.transitive_members(assignment.group_id)
                    holders |= set(_users(members))
    except CspGraphError as exc:
        result.technicians_unknown = f"{exc.error_class}: {exc.reason}"
        return
    result.technicians_without_role = sorted(
        upn for oid, upn in technicians.items() if oid not in holders
    )


def _users(members: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """object id → UPN of the users among ``members`` (service principals and groups left out)."""
    users = {}
    for member in members:
        kind = str(member.get("@odata.type") or "#microsoft.graph.user")
        if member.get("userPrincipalName") and kind == "#microsoft.graph.user":
            users[str(member["id"]).lower()] = str(member["userPrincipalName"])
    return users
