"""The declarative world file (TOML), its validation, and the built-in demo world.

Every error names the file, the key (``tenant[1].app[0].client_id``) and what was expected, so a
typo is fixed from the message alone. The demo world is built as the same data a world file holds
and goes through the same loader, so it cannot drift from what users can write.
"""

from __future__ import annotations

import base64
import hashlib
import random
import tomllib
import uuid
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from csp_emulator import wellknown
from csp_emulator.faults import MAX_LATENCY
from csp_emulator.latency import latency_settings
from csp_emulator.world import demo_gdap
from csp_emulator.world.consent import grant_app_role
from csp_emulator.world.gdap_file import (
    ConsentModel,
    GdapFileError,
    GdapModel,
    add_consent,
    add_relationship,
)
from csp_emulator.world.model import (
    DeltaPaging,
    Fault,
    Settings,
    Tenant,
    ThrottleSettings,
    World,
    iso,
    parse_duration,
    service_principal_json,
    stable_id,
)
from csp_emulator.world.objects import (
    GENERATED_EPOCH,
    GenerateSpec,
    directory_role_json,
    generate,
    group_json,
    seed_directory,
    subscribed_sku_json,
    user_json,
)

# Secrets written in a world file do not expire (2100-01-01): a fixture should not rot.
WORLD_SECRETS_EXPIRE = 4_102_444_800.0


class WorldFileError(ValueError):
    """A world file that cannot be loaded; the message says where and what to write instead."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Duration = str | int | float


class ThrottlingModel(_Model):
    enabled: bool = True
    # Graph's budgets; Partner Center's customer-endpoint limit has its own factor.
    scale: float = Field(1.0, gt=0, allow_inf_nan=False, strict=True)
    partner_center_scale: float = Field(1.0, gt=0, allow_inf_nan=False, strict=True)
    window_scale: float = Field(1.0, gt=0, allow_inf_nan=False, strict=True)


class FaultModel(_Model):
    host: Literal["login", "graph", "partner_center", "*"] = "*"
    kind: Literal["429", "500", "502", "503", "504", "latency", "drop"]
    rate: float = Field(1.0, ge=0, le=1)
    path_prefix: str = ""
    count: int | None = Field(None, ge=1)
    latency: Duration = 0

    @field_validator("latency")
    @classmethod
    def _latency(cls, value: Duration) -> Duration:
        if parse_duration(value) > MAX_LATENCY:
            raise ValueError(f"expected a latency of at most {MAX_LATENCY:.0f} s")
        return value


class DeltaModel(_Model):
    """Delta page sizes (model.DeltaPaging)."""

    object_cap: int = Field(200, ge=1, le=999)
    link_cap: int = Field(500, ge=1, le=5000)
    groups_shrink: float = Field(0.5, gt=0, le=1, allow_inf_nan=False)
    groups_floor_pages: int = Field(4, ge=1, le=1000)


class HostLatencyModel(_Model):
    """One host's latency model, in seconds (model.HostLatency, latency.py)."""

    base: float = Field(0.0, ge=0, le=600, allow_inf_nan=False)
    per_object: float = Field(0.0, ge=0, le=10, allow_inf_nan=False)
    jitter: float = Field(0.0, ge=0, le=0.99, allow_inf_nan=False)
    tail_share: float = Field(0.0, ge=0, le=1, allow_inf_nan=False)
    tail_factor: float = Field(1.0, ge=1, le=1000, allow_inf_nan=False)


class LatencyModel(_Model):
    """A preset to start from, then per host the figures that differ from it."""

    preset: Literal["off", "realistic"] | None = None
    login: HostLatencyModel | None = None
    graph: HostLatencyModel | None = None
    partner_center: HostLatencyModel | None = None


class SettingsModel(_Model):
    propagation_delay: Duration = "3m"
    token_lifetime: Duration = "1h"
    refresh_token_lifetime: Duration = "90d"
    page_size: int = Field(100, ge=1, le=999)
    throttling: ThrottlingModel = ThrottlingModel()
    fault: list[FaultModel] = []
    delta: DeltaModel = DeltaModel()
    latency: LatencyModel = LatencyModel()
    # "dap": new reseller customers get DAP (the original story); "gdap": what Microsoft does today.
    new_customer_access: Literal["dap", "gdap"] = "dap"
    assignment_delay: Duration = "1m"
    consent_delay: Duration = "1m"

    @field_validator(
        "propagation_delay",
        "token_lifetime",
        "refresh_token_lifetime",
        "assignment_delay",
        "consent_delay",
    )
    @classmethod
    def _duration(cls, value: Duration) -> Duration:
        parse_duration(value)
        return value


class UserModel(_Model):
    upn: str
    password: str
    display_name: str | None = None
    groups: list[str] = []
    roles: list[str] = []
    account_enabled: bool = True
    user_type: Literal["Member", "Guest"] = "Member"
    licenses: list[str] = []  # sku part numbers the tenant bought (its `license` list)

    @field_validator("upn")
    @classmethod
    def _upn(cls, value: str) -> str:
        if value.count("@") != 1 or not all(value.split("@")):
            raise ValueError("expected a sign-in name like 'agent@partner.com'")
        return value

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        by_name = {n.lower(): t for t, n in wellknown.DIRECTORY_ROLES.items()}
        out = []
        for role in value:
            template = role if role in wellknown.DIRECTORY_ROLES else by_name.get(role.lower())
            if template is None:
                raise ValueError(
                    f"unknown directory role {role!r}; expected a built-in role name like "
                    "'User Administrator' or a role template id"
                )
            out.append(template)
        return out


class LicenseModel(_Model):
    sku: str  # a part number: SPE_E3, SPB, O365_BUSINESS_ESSENTIALS
    units: int = Field(ge=0)

    @field_validator("sku")
    @classmethod
    def _sku(cls, value: str) -> str:
        if value not in wellknown.SKUS:
            raise ValueError(f"unknown sku {value!r}; expected one of: {', '.join(wellknown.SKUS)}")
        return value


class GroupModel(_Model):
    display_name: str
    members: list[str] = []  # UPNs of this tenant's users
    member_groups: list[str] = []  # display names of this tenant's groups nested in this one
    security: bool = True


class AppModel(_Model):
    display_name: str
    client_id: str
    client_secret: str | list[str] | None = None
    certificate: str | None = None  # path to a PEM certificate, relative to the world file
    multi_tenant: bool = True
    admin_agents: bool = False
    public_client: bool = False
    application_permissions: list[str] = []
    delegated_permissions: list[str] = []
    redirect_uris: list[str] = []

    @field_validator("client_id")
    @classmethod
    def _guid(cls, value: str) -> str:
        return _check_guid(value)

    @field_validator("application_permissions")
    @classmethod
    def _app_perms(cls, value: list[str]) -> list[str]:
        return _check_permissions(value, wellknown.APPLICATION_PERMISSIONS, "application")

    @field_validator("delegated_permissions")
    @classmethod
    def _delegated_perms(cls, value: list[str]) -> list[str]:
        return _check_permissions(value, wellknown.DELEGATED_PERMISSIONS, "delegated")


# What one tenant may generate of each kind, and the whole world in all. The largest bench fleet
# (1,000 customers) generates about 300,000 objects; a typo of three more zeros would take the
# emulator's memory instead of an error.
MAX_GENERATED_PER_KIND = 100_000
MAX_GENERATED_IN_WORLD = 2_000_000


class GenerateModel(_Model):
    users: int = Field(0, ge=0, le=MAX_GENERATED_PER_KIND)
    groups: int = Field(0, ge=0, le=MAX_GENERATED_PER_KIND)
    devices: int = Field(0, ge=0, le=MAX_GENERATED_PER_KIND)
    managed_devices: int = Field(0, ge=0, le=MAX_GENERATED_PER_KIND)
    guests: int = Field(0, ge=0, le=MAX_GENERATED_PER_KIND)
    seed: int = 0

    @property
    def total(self) -> int:
        return self.users + self.groups + self.devices + self.managed_devices + self.guests


class TenantModel(_Model):
    domain: str
    id: str | None = None
    display_name: str | None = None
    region: str = "NA"
    cloud: Literal["global", "usgov", "china"] = "global"
    kind: Literal["partner", "customer"] = "customer"
    country: str = "US"
    domains: list[str] = []
    intune: bool = True
    partner: str | None = None
    relationship: Literal["in_effect", "new"] = "in_effect"
    dap: bool = True
    # A partner tenant with the "Partner Customer Delegated Administration" service principal,
    # which app-only calls to Graph's GDAP APIs need.
    gdap_api: bool = False
    # Licences bought; an Intune-licensed customer that lists none holds SPE_E3.
    license: list[LicenseModel] = []
    user: list[UserModel] = []
    group: list[GroupModel] = []
    app: list[AppModel] = []
    generate: GenerateModel | None = None
    consent: list[ConsentModel] = []  # multi-tenant apps consented in this (customer) tenant

    @field_validator("id")
    @classmethod
    def _guid(cls, value: str | None) -> str | None:
        return None if value is None else _check_guid(value)

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if "." not in value or "@" in value or "/" in value:
            raise ValueError("expected a DNS domain like 'customer.com'")
        return value.lower()


class WorldModel(_Model):
    settings: SettingsModel = SettingsModel()
    tenant: list[TenantModel] = []
    gdap: list[GdapModel] = []  # granular delegated admin relationships

    @field_validator("tenant")
    @classmethod
    def _bounded(cls, value: list[TenantModel]) -> list[TenantModel]:
        total = sum(t.generate.total for t in value if t.generate is not None)
        if total > MAX_GENERATED_IN_WORLD:
            raise ValueError(
                f"the tenants generate {total:,} objects in all; a world holds at most "
                f"{MAX_GENERATED_IN_WORLD:,}"
            )
        return value


def _check_guid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError("expected a GUID like '6731de76-14a6-49ae-97bc-6eba6914391e'") from None


def _check_permissions(value: list[str], table: dict[str, Any], kind: str) -> list[str]:
    for name in value:
        if name not in table:
            example = next(iter(table))
            raise ValueError(
                f"unknown Microsoft Graph {kind} permission {name!r}; expected a name like "
                f"{example!r}"
            )
    return value


# -- loading ---------------------------------------------------------------------------------------


def load_world_file(path: str | Path) -> World:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorldFileError(f"{path}: no such world file") from None
    except UnicodeDecodeError as exc:
        raise WorldFileError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the world file as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise WorldFileError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise WorldFileError(f"{path}: cannot read it: {exc.strerror}") from None
    return load_world_data(data, source=str(path), base_dir=path.parent)


def load_world_data(
    data: dict[str, Any], *, source: str = "<world>", base_dir: Path | None = None
) -> World:
    try:
        model = WorldModel.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise WorldFileError(
            f"{source}: {_key_path(first['loc'])}: {_explain(first)}"
            + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")
        ) from None
    try:
        return _build(model, base_dir or Path.cwd())
    except WorldFileError as exc:
        raise WorldFileError(f"{source}: {exc}") from None


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _explain(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key; check its spelling against docs/emulator.md"
    if kind == "missing":
        return "required key is missing"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def _build(model: WorldModel, base_dir: Path) -> World:
    s = model.settings
    settings = Settings(
        propagation_delay=parse_duration(s.propagation_delay),
        token_lifetime=parse_duration(s.token_lifetime),
        refresh_token_lifetime=parse_duration(s.refresh_token_lifetime),
        page_size=s.page_size,
        throttling=ThrottleSettings(
            enabled=s.throttling.enabled,
            scale=s.throttling.scale,
            partner_center_scale=s.throttling.partner_center_scale,
            window_scale=s.throttling.window_scale,
        ),
        faults=[
            Fault(
                host=f.host,
                kind=f.kind,
                rate=f.rate,
                path_prefix=f.path_prefix,
                count=f.count,
                latency=parse_duration(f.latency),
            )
            for f in s.fault
        ],
        delta=DeltaPaging(**s.delta.model_dump()),
        latency=latency_settings(s.latency.model_dump(exclude_unset=True)),
        new_customer_access=s.new_customer_access,
        assignment_delay=parse_duration(s.assignment_delay),
        consent_delay=parse_duration(s.consent_delay),
    )
    if settings.token_lifetime <= 300:
        # MSAL treats a token with under 5 minutes left as expired (client-traps §4).
        raise WorldFileError("settings.token_lifetime: must be over 5 minutes, e.g. '1h'")
    world = World(settings)
    for index, tm in enumerate(model.tenant):
        _add_tenant(world, tm, index, base_dir)
    for index, tm in enumerate(model.tenant):
        if tm.partner is None:
            continue
        tenant = world.tenant(tm.domain)
        partner = world.tenant(tm.partner)
        assert tenant is not None
        if partner is None or partner.kind != "partner":
            raise WorldFileError(
                f"tenant[{index}].partner: {tm.partner!r} is not a partner tenant of this world; "
                'expected the domain or id of a tenant with kind = "partner"'
            )
        rel = world.add_relationship(partner, tenant, in_effect=tm.relationship == "in_effect")
        rel.dap = tm.dap
    try:
        for index, gm in enumerate(model.gdap):
            add_relationship(world, gm, f"gdap[{index}]")
        for index, tm in enumerate(model.tenant):
            tenant = world.tenant(tm.domain)
            assert tenant is not None
            for ci, cm in enumerate(tm.consent):
                add_consent(world, tenant, cm, f"tenant[{index}].consent[{ci}]")
    except GdapFileError as exc:
        raise WorldFileError(str(exc)) from None
    return world


def _add_tenant(world: World, tm: TenantModel, index: int, base_dir: Path) -> None:
    where = f"tenant[{index}]"
    tenant_id = tm.id or stable_id("tenant", tm.domain)
    name = tm.display_name or tm.domain.split(".")[0].replace("-", " ").title()
    initial = tm.domain if tm.domain.endswith(".onmicrosoft.com") else None
    if initial is None:
        initial = tm.domain.split(".")[0].replace("-", "") + ".onmicrosoft.com"
    domains = [tm.domain, *(d.lower() for d in tm.domains)]
    if initial not in domains:
        domains.append(initial)
    tenant = Tenant(
        id=tenant_id,
        display_name=name,
        domains=domains,
        region=tm.region,
        cloud=tm.cloud,
        kind=tm.kind,
        country=tm.country,
        created_at=GENERATED_EPOCH,
        intune_licensed=tm.intune,
    )
    try:
        world.add_tenant(tenant)
    except ValueError as exc:
        raise WorldFileError(f"{where}.domain: {exc}; every tenant needs its own domains") from None
    seed_directory(tenant)
    if tm.license:
        tenant.objects["subscribedSkus"].clear()
        for licence in tm.license:
            tenant.add("subscribedSkus", subscribed_sku_json(tenant, licence.sku, licence.units))
    skus = tenant.objects["subscribedSkus"].values()
    bought = {sku["skuPartNumber"]: sku["skuId"] for sku in skus}
    for ui, um in enumerate(tm.user):
        if tenant.user_by_upn(um.upn):
            raise WorldFileError(f"{where}.user[{ui}].upn: {um.upn!r} is listed twice")
        if um.upn.split("@")[1].lower() not in tenant.domains:
            raise WorldFileError(
                f"{where}.user[{ui}].upn: {um.upn!r} is not in a domain of this tenant "
                f"({', '.join(tenant.domains)})"
            )
        for li, part_number in enumerate(um.licenses):
            if part_number not in bought:
                raise WorldFileError(
                    f"{where}.user[{ui}].licenses[{li}]: the tenant bought no {part_number!r} "
                    f"(it holds: {', '.join(bought) or 'no licences'}); list it under license"
                )
        user = tenant.add(
            "users",
            user_json(
                tenant,
                um.upn,
                display_name=um.display_name,
                password=um.password,
                account_enabled=um.account_enabled,
                user_type=um.user_type,
                licenses=[bought[p] for p in um.licenses],
            ),
        )
        for gi, group_name in enumerate(um.groups):
            group = tenant.group_by_name(group_name) or tenant.add(
                "groups", group_json(tenant, group_name)
            )
            if not group:
                raise WorldFileError(f"{where}.user[{ui}].groups[{gi}]: no such group")
            tenant.add_member(group["id"], user["id"])
        for template in um.roles:
            add_role_member(tenant, template, user["id"])
    for gi, gm in enumerate(tm.group):
        group = tenant.group_by_name(gm.display_name) or tenant.add(
            "groups", group_json(tenant, gm.display_name, security=gm.security)
        )
        for mi, upn in enumerate(gm.members):
            member = tenant.user_by_upn(upn)
            if member is None:
                raise WorldFileError(f"{where}.group[{gi}].members[{mi}]: no user {upn!r} here")
            tenant.add_member(group["id"], member["id"])
    for gi, gm in enumerate(tm.group):
        # Nested groups once every group exists, so a group may name one listed after it.
        outer = tenant.group_by_name(gm.display_name)
        assert outer is not None
        for mi, name in enumerate(gm.member_groups):
            inner = tenant.group_by_name(name)
            if inner is None or inner["id"] == outer["id"]:
                raise WorldFileError(
                    f"{where}.group[{gi}].member_groups[{mi}]: no other group {name!r} here"
                )
            tenant.add_member(outer["id"], inner["id"])
    if tm.gdap_api:
        if tm.kind != "partner":
            raise WorldFileError(f"{where}.gdap_api: only a partner tenant uses the GDAP APIs")
        tenant.add(
            "servicePrincipals",
            service_principal_json(
                stable_id(tenant.id, "sp", wellknown.PARTNER_DELEGATED_ADMIN_APP_ID),
                wellknown.PARTNER_DELEGATED_ADMIN_APP_ID,
                "Partner Customer Delegated Administration",
                "f8cdef31-a31e-4b4a-93e4-5f571e91255a",  # Microsoft Services' tenant
            ),
        )
    for ai, am in enumerate(tm.app):
        if world.application(am.client_id) is not None:
            raise WorldFileError(f"{where}.app[{ai}].client_id: {am.client_id} is registered twice")
        if am.admin_agents and tm.kind != "partner":
            raise WorldFileError(
                f"{where}.app[{ai}].admin_agents: only a partner tenant has AdminAgents"
            )
        certificate = None
        if am.certificate is not None:
            cert_path = (base_dir / am.certificate).resolve()
            try:
                certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            except (OSError, ValueError) as exc:
                raise WorldFileError(
                    f"{where}.app[{ai}].certificate: cannot read a PEM certificate at "
                    f"{cert_path}: {exc}"
                ) from None
        register_app(
            world,
            tenant,
            display_name=am.display_name,
            client_id=am.client_id,
            secrets=[am.client_secret] if isinstance(am.client_secret, str) else am.client_secret,
            certificates=[certificate] if certificate else [],
            multi_tenant=am.multi_tenant,
            public_client=am.public_client,
            application_permissions=am.application_permissions,
            delegated_permissions=am.delegated_permissions,
            redirect_uris=am.redirect_uris,
            admin_agents=am.admin_agents,
            created=GENERATED_EPOCH,
            secrets_expire=WORLD_SECRETS_EXPIRE,
        )
    if tm.kind == "customer" and not tenant.user_by_upn(f"admin@{tenant.initial_domain}"):
        admin = tenant.add(
            "users",
            user_json(tenant, f"admin@{tenant.initial_domain}", password=f"Admin-{tenant.id[:8]}"),
        )
        add_role_member(tenant, wellknown.ROLE_GLOBAL_ADMIN, admin["id"])
    if tm.generate is not None:
        g = tm.generate
        spec = GenerateSpec(g.users, g.groups, g.devices, g.managed_devices, g.seed, g.guests)
        generate(tenant, spec, world.clock.now())
    for licence in tm.license:  # bought as written, whatever the generator assigned
        sku_id = wellknown.SKUS[licence.sku].id
        tenant.objects["subscribedSkus"][f"{tenant.id}_{sku_id}"]["prepaidUnits"]["enabled"] = (
            licence.units
        )


def add_role_member(tenant: Tenant, template_id: str, object_id: str) -> None:
    role_id = stable_id(tenant.id, "directoryRole", template_id)
    role = tenant.get("directoryRoles", role_id) or tenant.add(
        "directoryRoles", directory_role_json(tenant, template_id)
    )
    if object_id not in role["_members"]:
        role["_members"].append(object_id)


def certificate_thumbprints(der: bytes) -> tuple[str, str]:
    """(x5t, x5t#S256) of a DER certificate, base64url unpadded, as JWT headers carry them."""

    def b64(digest: bytes) -> str:
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    return b64(hashlib.sha1(der).digest()), b64(hashlib.sha256(der).digest())  # noqa: S324


def register_app(
    world: World,
    tenant: Tenant,
    *,
    display_name: str,
    client_id: str,
    secrets: list[str] | None = None,
    certificates: list[x509.Certificate] | None = None,
    multi_tenant: bool = True,
    public_client: bool = False,
    application_permissions: list[str] | None = None,
    delegated_permissions: list[str] | None = None,
    redirect_uris: list[str] | None = None,
    admin_agents: bool = False,
    created: float | None = None,
    secrets_expire: float | None = None,
) -> dict[str, Any]:
    """Register an app in ``tenant`` with its service principal, consented in its home tenant.

    ``created`` and ``secrets_expire`` default to now and two years from now; world files pin
    them so the same file always gives the same world."""
    now = world.clock.now() if created is None else created
    expires = now + 730 * 86400 if secrets_expire is None else secrets_expire
    access = [
        {"id": wellknown.APPLICATION_PERMISSIONS[p].id, "type": "Role"}
        for p in application_permissions or []
    ] + [
        {"id": wellknown.DELEGATED_PERMISSIONS[p].id, "type": "Scope"}
        for p in delegated_permissions or []
    ]
    password_credentials = []
    private_secrets = []
    for i, secret in enumerate(secrets or []):
        key_id = stable_id(client_id, "secret", str(i))
        password_credentials.append(
            {
                "keyId": key_id,
                "displayName": f"secret {i + 1}",
                "hint": secret[:3],
                "startDateTime": iso(now),
                "endDateTime": iso(expires),
                "secretText": None,
            }
        )
        private_secrets.append({"keyId": key_id, "secretText": secret, "end": expires})
    key_credentials = []
    private_certs = []
    for cert in certificates or []:
        der = cert.public_bytes(serialization.Encoding.DER)
        x5t, x5t_s256 = certificate_thumbprints(der)
        key_id = stable_id(client_id, "cert", x5t)
        key_credentials.append(
            {
                "keyId": key_id,
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
                "displayName": f"CN={cert.subject.rfc4514_string()}",
                "customKeyIdentifier": hashlib.sha1(der).hexdigest().upper(),  # noqa: S324
                "startDateTime": iso(cert.not_valid_before_utc.timestamp()),
                "endDateTime": iso(cert.not_valid_after_utc.timestamp()),
                "key": None,
            }
        )
        private_certs.append({"keyId": key_id, "x5t": x5t, "x5t#S256": x5t_s256, "der": der})
    app = tenant.add(
        "applications",
        {
            "id": stable_id(tenant.id, "application", client_id),
            "appId": client_id,
            "displayName": display_name,
            "signInAudience": "AzureADMultipleOrgs" if multi_tenant else "AzureADMyOrg",
            "createdDateTime": iso(now),
            "isFallbackPublicClient": public_client,
            "web": {"redirectUris": [] if public_client else list(redirect_uris or [])},
            "publicClient": {"redirectUris": list(redirect_uris or []) if public_client else []},
            "requiredResourceAccess": [
                {"resourceAppId": wellknown.GRAPH_APP_ID, "resourceAccess": access}
            ]
            if access
            else [],
            "passwordCredentials": password_credentials,
            "keyCredentials": key_credentials,
            "_secrets": private_secrets,
            "_certificates": private_certs,
        },
    )
    sp = tenant.add(
        "servicePrincipals",
        service_principal_json(
            stable_id(tenant.id, "sp", client_id), client_id, display_name, tenant.id
        ),
    )
    graph_sp = tenant.service_principal_by_app_id(wellknown.GRAPH_APP_ID)
    assert graph_sp is not None
    for name in application_permissions or []:
        grant_app_role(tenant, sp, graph_sp, wellknown.APPLICATION_PERMISSIONS[name].id, now)
    if admin_agents:
        group = tenant.group_by_name("AdminAgents")
        assert group is not None  # seed_directory gives every partner tenant its agent groups
        tenant.add_member(group["id"], sp["id"])
    return app


# -- the built-in demo world -----------------------------------------------------------------------

DEMO_PARTNERS = {
    "NA": {
        "domain": "partner.com",
        "display_name": "Fabrikam Partner (NA)",
        "client_id": "6731de76-14a6-49ae-97bc-6eba6914391e",
        "client_secret": "app-secret-na",
    },
    "EU": {
        "domain": "partner-eu.com",
        "display_name": "Fabrikam Partner (EU)",
        "client_id": "0f4d3c2b-8a91-4f6e-b7d5-2c1e9a8b7f60",
        "client_secret": "app-secret-eu",
    },
}
# What the demo partners' apps hold beyond that when the demo world has its GDAP half.
GDAP_READ_PERMISSION = "DelegatedAdminRelationship.Read.All"
DEMO_APP_PERMISSIONS = [
    "User.Read.All",
    "Group.Read.All",
    "Device.Read.All",
    "Organization.Read.All",
    "DeviceManagementManagedDevices.Read.All",
]
DEMO_COMPANIES = [
    "Contoso",
    "Northwind",
    "Adatum",
    "Tailspin",
    "Woodgrove",
    "Litware",
    "Proseware",
    "Wingtip",
    "Fourth-Coffee",
    "Alpine-Ski-House",
    "Coho-Winery",
    "Lucerne-Publishing",
    "Margies-Travel",
    "Trey-Research",
    "Humongous",
    "Blue-Yonder",
    "Graphic-Design",
    "Relecloud",
    "Munson",
    "Wide-World",
    "Datum",
    "Fincher",
    "Lamna",
    "Nod-Publishers",
    "Southridge",
    "Tasmanian-Traders",
    "VanArsdel",
    "Consolidated-Messenger",
    "Bellows-College",
    "Best-For-You",
    "Contoso-Pharma",
    "Adventure-Works",
    "City-Power",
    "School-of-Fine-Art",
    "Fabrikam-Residences",
    "First-Up-Consultants",
    "Liberty-Delightful",
    "Northwind-Traders",
    "Olympia-Marine",
    "Woodgrove-Bank",
]


def demo_world_data(customers: int = 36, seed: int = 7, *, gdap: bool = True) -> dict[str, Any]:
    """Two partner tenants (NA and EU, one partner-managed app each) and ``customers`` customers
    of varied sizes spread over both regions; ``customer.com`` is always the first, in NA. With
    ``gdap`` (the default) the NA partner also has the GDAP half of the fleet (demo_gdap.py):
    seven more tenants, reached through GDAP and per-customer consent instead of DAP."""
    rng = random.Random(seed)
    # Guests are drawn from a stream of their own, so the rest of the demo world is what the
    # same seed always gave.
    guests = random.Random(f"{seed}/guests")
    tenants: list[dict[str, Any]] = []
    for region, p in DEMO_PARTNERS.items():
        local = p["domain"].split(".")[0]
        tenants.append(
            {
                "domain": p["domain"],
                "display_name": p["display_name"],
                "region": region,
                "kind": "partner",
                "country": "US" if region == "NA" else "IE",
                "user": [
                    {
                        "upn": f"agent@{p['domain']}",
                        "password": "P@ssw0rd-agent",
                        "groups": ["AdminAgents"],
                    },
                    {
                        "upn": f"helpdesk@{p['domain']}",
                        "password": "P@ssw0rd-helpdesk",
                        "groups": ["HelpdeskAgents"],
                    },
                    {
                        "upn": f"sales@{p['domain']}",
                        "password": "P@ssw0rd-sales",
                        "groups": ["SalesAgents"],
                    },
                    {
                        "upn": f"admin@{p['domain']}",
                        "password": "P@ssw0rd-admin",
                        "roles": ["Global Administrator"],
                    },
                ],
                "app": [
                    {
                        "display_name": f"Fabrikam CSP app ({region})",
                        "client_id": p["client_id"],
                        "client_secret": p["client_secret"],
                        "multi_tenant": True,
                        "admin_agents": True,
                        "application_permissions": DEMO_APP_PERMISSIONS,
                        "delegated_permissions": ["Directory.AccessAsUser.All"],
                        "redirect_uris": ["http://localhost"],
                    }
                ],
                "generate": {"users": 6, "groups": 1, "seed": seed},
                "domains": [f"{local}.onmicrosoft.com"],
            }
        )
    for i in range(customers):
        base = DEMO_COMPANIES[i % len(DEMO_COMPANIES)]
        suffix = "" if i < len(DEMO_COMPANIES) else str(i // len(DEMO_COMPANIES) + 1)
        slug = (base + suffix).lower()
        region = "NA" if i == 0 or rng.random() < 0.6 else "EU"
        roll = rng.random()
        users = (
            rng.randint(520, 700)
            if roll > 0.92
            else (rng.randint(60, 200) if roll > 0.6 else rng.randint(8, 40))
        )
        devices = users // 2
        tenants.append(
            {
                "domain": "customer.com" if i == 0 else f"{slug.replace('-', '')}.onmicrosoft.com",
                "display_name": "Contoso Customer" if i == 0 else base.replace("-", " ") + suffix,
                "region": region,
                "country": "US" if region == "NA" else rng.choice(["DE", "FR", "IE", "NL"]),
                "kind": "customer",
                "partner": DEMO_PARTNERS[region]["domain"],
                "generate": {
                    "users": users,
                    "groups": max(2, users // 12),
                    "devices": devices,
                    "managed_devices": int(devices * 0.8),
                    "guests": guests.choice((0, 0, 1, 2, users // 20)),
                    "seed": seed + i,
                },
            }
        )
    data: dict[str, Any] = {
        "settings": {"propagation_delay": "3m", "token_lifetime": "1h"},
        "tenant": tenants,
    }
    if gdap:
        for partner in tenants[: len(DEMO_PARTNERS)]:
            # Each partner's app reads its GDAP relationships (app-only, in its partner tenant:
            # the Partner Customer Delegated Administration service principal is there), so the
            # demo's report shows each customer's GDAP as it is, not as unknown.
            partner["gdap_api"] = True
            app = partner["app"][0]
            app["application_permissions"] = [*DEMO_APP_PERMISSIONS, GDAP_READ_PERMISSION]
        na = tenants[0]
        additions = demo_gdap.partner_additions()
        na["user"] = [*na["user"], *additions["user"]]
        na["group"] = additions["group"]
        # Consented as the partner's onboarding would have: what the fleet sync reads, admins too.
        app_roles = [*DEMO_APP_PERMISSIONS, "RoleManagement.Read.Directory"]
        more, relationships = demo_gdap.fleet(DEMO_PARTNERS["NA"]["client_id"], app_roles, seed)
        tenants.extend(more)
        data["gdap"] = relationships
    return data


def demo_world(customers: int = 36, seed: int = 7) -> World:
    return load_world_data(demo_world_data(customers, seed), source="<demo world>")
