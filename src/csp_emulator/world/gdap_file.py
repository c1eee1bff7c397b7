"""The world file's GDAP and consent keys: ``[[gdap]]`` relationships with their
``[[gdap.assignment]]`` access assignments, and a customer's ``[[tenant.consent]]``.

Times are relative to the moment the world is built (``activated_ago = "715d"``), so a world file
describes "a relationship that expires in 15 days" whenever it is loaded. Errors name the key, as
the rest of the world file's do (worldfile.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from csp_emulator import roles, wellknown
from csp_emulator.world import gdap
from csp_emulator.world.consent import grant_consent
from csp_emulator.world.model import Tenant, World, parse_duration


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _gdap_roles(value: list[str]) -> list[str]:
    out = []
    for role in value:
        template = roles.resolve(role)
        if template is None or template not in roles.GDAP_ROLES:
            raise ValueError(
                f"{role!r} is not a built-in role GDAP can grant; expected a name like "
                "'User Administrator' or a role template id"
            )
        if template not in out:
            out.append(template)
    return out


def _iso(value: str) -> str:
    gdap.parse_iso_duration(value)
    return value


class AssignmentModel(_Model):
    group: str  # display name of a security group of the partner tenant
    roles: list[str]
    status: Literal["active", "pending"] = "active"

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        return _gdap_roles(value)


class GdapModel(_Model):
    partner: str
    customer: str | None = None  # required unless the relationship is still "created"
    display_name: str
    roles: list[str]
    status: Literal["created", "approvalPending", "active", "expired", "terminated"] = "active"
    duration: str = "P730D"
    auto_extend: Literal["PT0S", "P0D", "P180D"] = "PT0S"
    activated_ago: str | int | float = "1d"
    assignment: list[AssignmentModel] = []

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        return _gdap_roles(value)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        return _iso(value)

    @field_validator("activated_ago")
    @classmethod
    def _ago(cls, value: str | int | float) -> str | int | float:
        parse_duration(value)
        return value


class ConsentModel(_Model):
    app: str  # client id of a multi-tenant app of this world
    # Delegated Graph scopes and Graph application permissions granted; None: what the app asks.
    scopes: list[str] | None = None
    app_roles: list[str] | None = None


class GdapFileError(ValueError):
    """A GDAP key that names something the world does not have."""


def add_relationship(world: World, model: GdapModel, where: str) -> gdap.Relationship:
    now = world.clock.now()
    partner = world.tenant(model.partner)
    if partner is None or partner.kind != "partner":
        raise GdapFileError(f"{where}.partner: {model.partner!r} is not a partner tenant here")
    customer: Tenant | None = None
    if model.customer is not None:
        customer = world.tenant(model.customer)
        if customer is None or customer.kind != "customer":
            raise GdapFileError(f"{where}.customer: {model.customer!r} is not a customer here")
    elif model.status not in ("created", "approvalPending"):
        raise GdapFileError(f"{where}.customer: required for a relationship that was approved")
    if len(model.display_name) > gdap.MAX_DISPLAY_NAME:
        raise GdapFileError(f"{where}.display_name: at most {gdap.MAX_DISPLAY_NAME} characters")
    duration = gdap.parse_iso_duration(model.duration)
    if not gdap.MIN_DURATION <= duration <= gdap.MAX_DURATION:
        raise GdapFileError(f"{where}.duration: must be from P1D to P2Y (730 days)")
    if model.auto_extend == "P180D" and roles.GLOBAL_ADMINISTRATOR in model.roles:
        raise GdapFileError(f"{where}.auto_extend: a relationship with Global Administrator "
                            "cannot be auto-extended")  # fmt: skip
    ago = parse_duration(model.activated_ago)
    if model.status == "expired" and model.auto_extend != "P180D":
        ago = max(ago, duration)
    activated = now - ago
    created = min(activated, now) - gdap.DAY
    relationship = gdap.Relationship(
        id=gdap.new_relationship_id(partner.id, model.display_name),
        partner_id=partner.id,
        display_name=model.display_name,
        duration=model.duration,
        roles=list(model.roles),
        created_at=created,
        customer_id=customer.id if customer else None,
        customer_name=customer.display_name if customer else None,
        auto_extend=model.auto_extend,
    )
    if any(r.partner_id == partner.id and r.display_name == model.display_name
           for r in world.gdap.relationships.values()):  # fmt: skip
        raise GdapFileError(f"{where}.display_name: {model.display_name!r} is used twice")
    if model.status != "created":
        relationship.locked_at = created
    if model.status in ("active", "expired", "terminated"):
        assert customer is not None
        relationship.approve(customer.id, customer.display_name, activated, 0.0)
    if model.status == "terminated":
        relationship.terminate(min(now, relationship.end()), 0.0)
    relationship.settle(now)
    for index, am in enumerate(model.assignment):
        group = partner.group_by_name(am.group)
        if group is None or group.get("securityEnabled") is False:
            raise GdapFileError(
                f"{where}.assignment[{index}].group: {am.group!r} is not a security group of "
                f"{partner.default_domain}"
            )
        outside = [r for r in am.roles if r not in model.roles]
        if outside:
            raise GdapFileError(
                f"{where}.assignment[{index}].roles: {roles.name_of(outside[0])!r} is not one of "
                "the relationship's roles"
            )
        active_at = created if am.status == "active" else now + world.settings.assignment_delay
        assignment = gdap.AccessAssignment(
            id=gdap.new_object_id(relationship.id, group["id"]),
            group_id=group["id"],
            roles=list(am.roles),
            created_at=created,
            modified_at=created,
            active_at=active_at,
        )
        relationship.assignments[assignment.id] = assignment
    return world.gdap.add(relationship)


def add_consent(world: World, tenant: Tenant, model: ConsentModel, where: str) -> None:
    found = world.application(model.app.lower())
    if found is None:
        raise GdapFileError(f"{where}.app: no app {model.app!r} is registered in this world")
    home, app = found
    if app.get("signInAudience") == "AzureADMyOrg" and home.id != tenant.id:
        raise GdapFileError(f"{where}.app: {model.app} is a single-tenant app")
    wanted: dict[str, list[str] | None] = {"Role": model.app_roles, "Scope": model.scopes}
    asked: dict[str, list[str]] = {"Role": [], "Scope": []}
    for entry in app.get("requiredResourceAccess", []):
        if entry.get("resourceAppId") != wellknown.GRAPH_APP_ID:
            continue
        for access in entry.get("resourceAccess", []):
            permission = wellknown.PERMISSIONS_BY_ID.get(access.get("id", ""))
            if permission is not None and access.get("type") in asked:
                asked[access["type"]].append(permission.name)
    chosen: dict[str, list[str]] = {kind: wanted[kind] or [] for kind in asked}
    for kind, names in asked.items():
        if wanted[kind] is None:
            chosen[kind] = names
    for name in chosen["Role"]:
        if name not in wellknown.APPLICATION_PERMISSIONS:
            raise GdapFileError(f"{where}.app_roles: unknown application permission {name!r}")
    for name in chosen["Scope"]:
        if name not in wellknown.DELEGATED_PERMISSIONS:
            raise GdapFileError(f"{where}.scopes: unknown delegated permission {name!r}")
    grant_consent(
        tenant,
        app,
        home.id,
        scopes=[s for s in chosen["Scope"] if s not in wellknown.OIDC_SCOPES],
        app_roles=chosen["Role"],
        now=world.clock.now(),
        delay=-1.0,  # a world file's consent is in effect from the start
    )
