"""Set up the partner-managed application of one region, through Microsoft Graph.

The seed's recipe ("How to set-up a partner-managed application"), with Graph instead of the
retired Azure AD PowerShell, run by a partner administrator signed in to the partner tenant:

1. **application** — register the app as multi-tenant (``AzureADMultipleOrgs``) with the loopback
   redirect URI agent sign-in needs, or find the one already registered (by the configured client
   id, else by name);
2. **permissions** — set ``requiredResourceAccess`` to the least-privileged Graph application and
   delegated permissions for what the app will do (:func:`plan_permissions`); anything outside
   directory and Intune is refused with the CSP rule quoted;
3. **credential** — a self-signed certificate (the default; its public part uploaded with
   ``PATCH keyCredentials``, the PEM kept 0600) or a client secret (``addPassword``; kept in a 0600
   file or shown once for an environment variable);
4. **service principal** — create it, or find it by ``appId``;
4b. **admin consent** — grant the planned application permissions in the partner tenant itself
   (app role assignments of Microsoft Graph's roles to the service principal: the portal's
   "Grant admin consent"), and revoke the Graph roles the plan no longer names: in its own tenant
   the app's app-only token carries exactly what is assigned there, whatever
   ``requiredResourceAccess`` asks for (the sync reads the GDAP relationships there);
5. **AdminAgents** — find the group by name and add the service principal to it (the seed's
   four PowerShell steps), which pre-consents the app in every DAP customer;
6. **configuration** — write the region's entry into the partner configuration file.

Every step first looks, then changes only what is not already right, and says which it was; a
dry run only looks. Secrets are never logged and appear in no report.

The permission planning is in :mod:`cspgraph.partner.permissions`, the certificate and secret
checks in :mod:`cspgraph.partner.app_credentials`; their public names are importable from here too.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar

from cryptography.hazmat.primitives import serialization

from cspgraph.config import ConfigFile, write_private_file
from cspgraph.graph import scope
from cspgraph.graph.client import GraphClient
from cspgraph.http.errors import (
    BadRequestError,
    CspGraphError,
    NeedsPersonError,
    PropagatingError,
)
from cspgraph.partner.app_credentials import (
    RENEW_BEFORE,
    certificate_registered,
    load_pem,
    new_certificate,
    read_secret_file,
    secret_registered,
    still_valid,
    thumbprint,
)
from cspgraph.partner.permissions import (
    PermissionPlan,
    check_csp_scope,
    csp_permission_names,
    in_csp_scope,
    plan_permissions,
)

__all__ = [
    "ADMIN_AGENTS",
    "CREDENTIAL_KEYS",
    "DEFAULT_APP_NAME",
    "DEFAULT_REDIRECT_URIS",
    "GRAPH_APP_ID",
    "MULTI_TENANT",
    "RENEW_BEFORE",
    "CredentialKind",
    "PermissionPlan",
    "SetupOptions",
    "SetupReport",
    "SetupStep",
    "StepStatus",
    "check_csp_scope",
    "csp_permission_names",
    "in_csp_scope",
    "new_certificate",
    "plan_permissions",
    "setup_partner_app",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

# Microsoft Graph's application id (its service principal in every tenant has this appId).
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
MULTI_TENANT = "AzureADMultipleOrgs"
ADMIN_AGENTS = "AdminAgents"
ADMIN_CONSENT = "admin consent"
DEFAULT_APP_NAME = "cspgraph partner-managed app"
DEFAULT_REDIRECT_URIS = ("http://localhost",)
# A region names exactly one credential; set-up replaces whichever was there.
CREDENTIAL_KEYS = frozenset(
    {"client_secret_env", "client_secret_file", "certificate_file", "certificate_password_env"}
)


class StepStatus(StrEnum):
    ALREADY_DONE = "already done"
    CHANGED = "changed"
    WOULD_CHANGE = "would change"  # dry run


@dataclass(frozen=True)
class SetupStep:
    name: str
    status: StepStatus
    detail: str


# -- options and report ----------------------------------------------------------------------------

CredentialKind = Literal["certificate", "secret"]


@dataclass(frozen=True)
class SetupOptions:
    """What to set up. ``credential_path`` defaults to ``{region}-app.pem`` (certificate) or
    ``{region}-app.secret`` (secret) next to the configuration file."""

    name: str = DEFAULT_APP_NAME
    permissions: PermissionPlan | None = None  # None: what the sync job needs
    credential: CredentialKind = "certificate"
    # For a secret: "file" keeps it in a 0600 file; "env" shows it once (show_secret) for an
    # environment variable named secret_env.
    secret_storage: Literal["file", "env"] = "file"
    secret_env: str | None = None
    credential_path: Path | None = None
    redirect_uris: tuple[str, ...] = DEFAULT_REDIRECT_URIS
    certificate_days: int = 730
    dry_run: bool = False


@dataclass
class SetupReport:
    region: str
    partner_tenant: str
    app_name: str
    dry_run: bool
    permissions: PermissionPlan
    client_id: str | None = None
    application_id: str | None = None  # the application object's id
    service_principal_id: str | None = None
    credential: str = ""  # where the credential is kept (never the credential)
    config_path: str = ""
    steps: list[SetupStep] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(s.status is not StepStatus.ALREADY_DONE for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "partner_tenant": self.partner_tenant,
            "app_name": self.app_name,
            "dry_run": self.dry_run,
            "client_id": self.client_id,
            "application_id": self.application_id,
            "service_principal_id": self.service_principal_id,
            "permissions": self.permissions.as_dict(),
            "credential": self.credential,
            "config_path": self.config_path,
            "changed": self.changed,
            "steps": [
                {"name": s.name, "status": str(s.status), "detail": s.detail} for s in self.steps
            ],
        }


# -- the procedure ---------------------------------------------------------------------------------


async def setup_partner_app(
    graph: GraphClient,
    partner_tenant: str,
    *,
    region: str,
    config_path: Path,
    options: SetupOptions | None = None,
    on_step: Callable[[SetupStep], None] | None = None,
    show_secret: Callable[[str, str], None] | None = None,
    sleep: Sleep = asyncio.sleep,
    graph_resource: str = "https://graph.microsoft.com",
) -> SetupReport:
    """Set up (or check) the partner-managed app of ``region`` in ``partner_tenant``.

    ``graph`` must call Graph as a partner administrator of ``partner_tenant`` (for example
    through :class:`~cspgraph.partner.auth.AdminSignIn`). ``show_secret(env_name, secret)`` is
    called once when a secret is to be kept in an environment variable. ``graph_resource``
    names Graph in member references (the cloud's Graph resource URI, e.g. for US Government).
    """
    options = options or SetupOptions()
    plan = options.permissions or plan_permissions(preset="sync")
    check_csp_scope([*plan.application, *plan.delegated])
    if options.credential == "secret" and options.secret_storage == "env":
        if not options.secret_env:
            raise BadRequestError(
                "a secret kept in an environment variable needs the variable's name "
                f"(e.g. CSPGRAPH_SECRET_{region.upper()})",
            )
        if not options.dry_run and show_secret is None:
            raise BadRequestError(
                "a secret for an environment variable must be shown once: pass show_secret",
            )
    run = _SetupRun(
        graph=graph,
        tenant=partner_tenant,
        region=region,
        config_path=config_path,
        options=options,
        plan=plan,
        on_step=on_step,
        show_secret=show_secret,
        sleep=sleep,
        graph_resource=graph_resource.rstrip("/"),
    )
    return await run.run()


@dataclass
class _SetupRun:
    graph: GraphClient
    tenant: str
    region: str
    config_path: Path
    options: SetupOptions
    plan: PermissionPlan
    on_step: Callable[[SetupStep], None] | None
    show_secret: Callable[[str, str], None] | None
    sleep: Sleep
    graph_resource: str
    report: SetupReport = field(init=False)
    file: ConfigFile = field(init=False)
    app: dict[str, Any] | None = field(init=False, default=None)
    app_created: bool = field(init=False, default=False)
    sp_created: bool = field(init=False, default=False)
    credential_entry: dict[str, str] = field(init=False, default_factory=dict)
    # The partner tenant's Microsoft Graph service principal (id, app role id → name).
    graph_sp_id: str | None = field(init=False, default=None)
    graph_roles: dict[str, str] = field(init=False, default_factory=dict)
    role_ids: dict[str, str] = field(init=False, default_factory=dict)  # planned: name → id

    def __post_init__(self) -> None:
        self.report = SetupReport(
            region=self.region,
            partner_tenant=self.tenant,
            app_name=self.options.name,
            dry_run=self.options.dry_run,
            permissions=self.plan,
            config_path=str(self.config_path),
        )
        self.file = ConfigFile.read(self.config_path)

    @property
    def dry(self) -> bool:
        return self.options.dry_run

    def step(self, name: str, changed: bool, detail: str) -> None:
        status = StepStatus.ALREADY_DONE
        if changed:
            status = StepStatus.WOULD_CHANGE if self.dry else StepStatus.CHANGED
        item = SetupStep(name, status, detail)
        self.report.steps.append(item)
        log.info("setup %s: %s (%s)", name, status, detail)
        if self.on_step is not None:
            self.on_step(item)

    def region_entry(self) -> dict[str, Any]:
        return self.file.region(self.region)

    async def run(self) -> SetupReport:
        try:
            await self.application()
            await self.permissions()
            await self.credential()
            sp_id = await self.service_principal()
            await self.admin_consent(sp_id)
            await self.admin_agents(sp_id)
            self.configuration()
        except PropagatingError as exc:
            # In the partner's own tenant a 403 is not propagation: the administrator lacks rights.
            raise NeedsPersonError(
                f"Microsoft Graph refused a set-up step in {self.tenant}: {exc}. The signed-in "
                "user needs Global Administrator (or Application Administrator together with "
                "Groups Administrator and Privileged Role Administrator) in the partner tenant, "
                "and must consent to Application.ReadWrite.All, GroupMember.ReadWrite.All and "
                "AppRoleAssignment.ReadWrite.All.",
                code=exc.code,
                status=exc.status,
                tenant=self.tenant,
                request_id=exc.request_id,
                reason="the administrator lacks the rights set-up needs",
            ) from exc
        return self.report

    # -- 1. the application ------------------------------------------------------------------

    async def application(self) -> None:
        opts = self.options
        configured = str(self.region_entry().get("client_id") or "").lower()
        app = None
        if configured:
            app = await self._one("/applications", f"appId eq '{configured}'")
        if app is None:
            found = await self._all("/applications", f"displayName eq '{_quote(opts.name)}'")
            if len(found) > 1:
                raise NeedsPersonError(
                    f"{len(found)} applications are named {opts.name!r} in {self.tenant}; give "
                    "the app another --name, or delete the extra registrations",
                    code="AmbiguousApplication",
                )
            app = found[0] if found else None
        if app is None:
            if self.dry:
                self.step("application", True, f"would register {opts.name!r} (multi-tenant)")
                return
            app = await self.graph.post(
                self.tenant,
                "/applications",
                {
                    "displayName": opts.name,
                    "signInAudience": MULTI_TENANT,
                    "web": {"redirectUris": list(opts.redirect_uris)},
                },
            )
            if not app or not app.get("appId"):
                raise _unexpected("registering the application")
            self.app, self.app_created = app, True
            self._remember_app()
            self.step("application", True, f"registered {opts.name!r}, client id {app['appId']}")
            return
        self.app = app
        self._remember_app()
        changes: dict[str, Any] = {}
        notes = []
        if app.get("signInAudience") != MULTI_TENANT:
            changes["signInAudience"] = MULTI_TENANT
            notes.append(f"made multi-tenant (was {app.get('signInAudience')})")
        web = dict(app.get("web") or {})
        uris = list(web.get("redirectUris") or [])
        missing = [u for u in opts.redirect_uris if u not in uris]
        if missing:
            web["redirectUris"] = [*uris, *missing]
            changes["web"] = web
            notes.append(f"added redirect URI {', '.join(missing)}")
        if changes and not self.dry:
            await self.graph.patch(self.tenant, f"/applications/{app['id']}", changes)
            app.update(changes)
        detail = "; ".join(notes) if notes else "multi-tenant, redirect URIs in place"
        self.step("application", bool(changes), f"{app.get('displayName')!r} ({detail})")

    def _remember_app(self) -> None:
        assert self.app is not None
        self.report.client_id = str(self.app["appId"]).lower()
        self.report.application_id = str(self.app["id"])

    # -- 2. permissions ----------------------------------------------------------------------

    async def permissions(self) -> None:
        ids, known = await self._permission_ids()
        wanted = [{"id": ids[("Role", n)], "type": "Role"} for n in self.plan.application]
        wanted += [{"id": ids[("Scope", n)], "type": "Scope"} for n in self.plan.delegated]
        summary = (
            f"application: {', '.join(self.plan.application) or 'none'}; "
            f"delegated: {', '.join(self.plan.delegated) or 'none'}"
        )
        if self.app is None:
            self.step("permissions", True, f"would ask for {summary}")
            return
        current = list(self.app.get("requiredResourceAccess") or [])
        graph_entries = [e for e in current if e.get("resourceAppId") == GRAPH_APP_ID]
        have = {
            (str(a.get("id", "")).lower(), a.get("type"))
            for e in graph_entries
            for a in e.get("resourceAccess") or []
        }
        want = {(a["id"].lower(), a["type"]) for a in wanted}
        if have == want and len(graph_entries) == 1:
            self.step("permissions", False, summary)
            return
        kinds = {"Role": "application", "Scope": "delegated"}
        by_id = {(i.lower(), kind): f"{name} ({kinds[kind]})" for (kind, name), i in known.items()}
        added = sorted(by_id.get(k, k[0]) for k in want - have)
        removed = sorted(by_id.get(k, k[0]) for k in have - want)
        others = [e for e in current if e.get("resourceAppId") != GRAPH_APP_ID]
        access = [*others, {"resourceAppId": GRAPH_APP_ID, "resourceAccess": wanted}]
        if not self.dry:
            await self.graph.patch(
                self.tenant, f"/applications/{self.app['id']}", {"requiredResourceAccess": access}
            )
            self.app["requiredResourceAccess"] = access
        change = []
        if added:
            change.append(f"added {', '.join(added)}")
        if removed:
            change.append(f"removed {', '.join(removed)}")
        self.step("permissions", True, f"{summary} ({'; '.join(change)})")

    async def _permission_ids(
        self,
    ) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
        """The ids of the planned permissions, and of every permission Graph publishes, by
        (kind, name): from the tenant's Microsoft Graph service principal (its appRoles and
        oauth2PermissionScopes are the authority), else from the scope table."""
        graph_sp = await self._one(
            "/servicePrincipals",
            f"appId eq '{GRAPH_APP_ID}'",
            select=("id", "appId", "appRoles", "oauth2PermissionScopes"),
        )
        roles: dict[str, str] = {}
        scopes: dict[str, str] = {}
        if graph_sp is not None:
            roles = {r["value"]: r["id"] for r in graph_sp.get("appRoles") or [] if r.get("value")}
            scopes = {
                s["value"]: s["id"]
                for s in graph_sp.get("oauth2PermissionScopes") or []
                if s.get("value")
            }
        ids: dict[tuple[str, str], str] = {}
        unknown = []
        for name in self.plan.application:
            found = roles.get(name) or scope.APPLICATION_ROLE_IDS.get(name)
            if found is None:
                unknown.append(f"{name} (application)")
            else:
                ids[("Role", name)] = found
        for name in self.plan.delegated:
            found = scopes.get(name)
            if found is None:
                unknown.append(f"{name} (delegated)")
            else:
                ids[("Scope", name)] = found
        if unknown:
            raise BadRequestError(
                f"Microsoft Graph in {self.tenant} publishes no permission "
                f"{', '.join(unknown)}; check the spelling (e.g. User.Read.All)",
                code="UnknownPermission",
            )
        known = {("Role", n): i for n, i in {**scope.APPLICATION_ROLE_IDS, **roles}.items()}
        known.update({("Scope", n): i for n, i in scopes.items()})
        if graph_sp is not None:
            self.graph_sp_id = str(graph_sp["id"])
            self.graph_roles = {i.lower(): n for n, i in roles.items()}
        self.role_ids = {name: i.lower() for (kind, name), i in ids.items() if kind == "Role"}
        return ids, known

    # -- 3. the credential -------------------------------------------------------------------

    def _credential_path(self, suffix: str, key: str) -> Path:
        if self.options.credential_path is not None:
            return self.options.credential_path.expanduser()
        configured = self.region_entry().get(key)
        if isinstance(configured, str) and configured:
            path = Path(configured).expanduser()
            return path if path.is_absolute() else self.config_path.parent / path
        return self.config_path.parent / f"{self.region.lower()}-app.{suffix}"

    async def credential(self) -> None:
        if self.options.credential == "certificate":
            await self._certificate()
        else:
            await self._secret()

    async def _certificate(self) -> None:
        path = self._credential_path("pem", "certificate_file")
        self.report.credential = f"certificate {path}"
        self.credential_entry = {"certificate_file": self._config_path_value(path)}
        existing = load_pem(path)
        usable = existing is not None and still_valid(existing[1])
        if self.app is None:
            verb = "would reuse" if usable else "would create"
            self.step("credential", True, f"{verb} a certificate at {path} and upload it")
            return
        app = await self.graph.get(
            self.tenant, f"/applications/{self.app['id']}", params={"$select": "id,keyCredentials"}
        )
        registered = list(app.get("keyCredentials") or [])
        if usable:
            assert existing is not None
            if certificate_registered(existing[1], registered):
                self.step("credential", False, f"certificate {thumbprint(existing[1])} at {path}")
                return
        if self.dry:
            verb = "upload the certificate at" if usable else "create and upload a certificate at"
            self.step("credential", True, f"would {verb} {path}")
            return
        if not usable:
            pem, certificate = new_certificate(self.options.name, self.options.certificate_days)
            write_private_file(path, pem)
        else:
            assert existing is not None
            certificate = existing[1]
        # PATCH replaces the whole collection: the certificates already there go back as Graph
        # returned them (with their key when it came back, else named by keyId), so adding one
        # never removes another.
        kept = [{k: v for k, v in c.items() if v is not None} for c in registered]
        der = certificate.public_bytes(serialization.Encoding.DER)
        entry = {
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "key": base64.b64encode(der).decode(),
            "displayName": f"CN={self.options.name}",
        }
        await self.graph.patch(
            self.tenant, f"/applications/{self.app['id']}", {"keyCredentials": [*kept, entry]}
        )
        made = "created and uploaded" if not usable else "uploaded"
        self.step("credential", True, f"{made} certificate {thumbprint(certificate)} ({path})")

    async def _secret(self) -> None:
        opts = self.options
        env_name = opts.secret_env
        if opts.secret_storage == "env":
            assert env_name is not None
            where = f"environment variable {env_name}"
            current = os.environ.get(env_name) or None
            self.credential_entry = {"client_secret_env": env_name}
        else:
            path = self._credential_path("secret", "client_secret_file")
            where = f"secret file {path}"
            current = read_secret_file(path)
            self.credential_entry = {"client_secret_file": self._config_path_value(path)}
        self.report.credential = where
        if self.app is None:
            self.step("credential", True, f"would add a client secret kept in {where}")
            return
        app = await self.graph.get(
            self.tenant,
            f"/applications/{self.app['id']}",
            params={"$select": "id,passwordCredentials"},
        )
        if current and secret_registered(current, app.get("passwordCredentials") or []):
            self.step("credential", False, f"client secret in {where}")
            return
        if self.dry:
            self.step("credential", True, f"would add a client secret kept in {where}")
            return
        answer = await self.graph.post(
            self.tenant,
            f"/applications/{self.app['id']}/addPassword",
            {"passwordCredential": {"displayName": f"cspgraph {_today()}"}},
        )
        secret = str((answer or {}).get("secretText") or "")
        if not secret:
            raise _unexpected("adding a client secret")
        if opts.secret_storage == "env":
            assert env_name is not None and self.show_secret is not None
            self.show_secret(env_name, secret)
        else:
            write_private_file(path, secret + "\n")
        self.step("credential", True, f"added a client secret, kept in {where}")

    def _config_path_value(self, path: Path) -> str:
        """A credential path as the configuration names it: relative to the file if inside."""
        try:
            return str(path.resolve().relative_to(self.config_path.parent.resolve()))
        except ValueError:
            return str(path)

    # -- 4. the service principal ------------------------------------------------------------

    async def service_principal(self) -> str | None:
        if self.app is None:
            self.step("service principal", True, "would create the app's service principal")
            return None
        app_id = self.app["appId"]
        sp = await self._one("/servicePrincipals", f"appId eq '{app_id}'", select=("id", "appId"))
        if sp is not None:
            self.report.service_principal_id = str(sp["id"])
            self.step("service principal", False, f"object id {sp['id']}")
            return str(sp["id"])
        if self.dry:
            self.step("service principal", True, "would create the app's service principal")
            return None
        created = await self._after_replication(
            lambda: self.graph.post(self.tenant, "/servicePrincipals", {"appId": app_id}),
            fresh=self.app_created,
        )
        if not created or not created.get("id"):
            raise _unexpected("creating the service principal")
        self.sp_created = True
        self.report.service_principal_id = str(created["id"])
        self.step("service principal", True, f"created, object id {created['id']}")
        return str(created["id"])

    # -- 4b. admin consent in the partner tenant ---------------------------------------------

    async def admin_consent(self, sp_id: str | None) -> None:
        wanted = dict(self.role_ids)
        planned = ", ".join(sorted(wanted)) or "none"
        if sp_id is None:
            self.step(ADMIN_CONSENT, True, f"would grant {planned} in {self.tenant}")
            return
        if self.graph_sp_id is None:
            raise NeedsPersonError(
                f"{self.tenant} has no Microsoft Graph service principal: the application "
                "permissions cannot be granted there (is this an Entra tenant?)",
                code="NoGraphServicePrincipal",
                tenant=self.tenant,
            )
        held: dict[str, str] = {}  # app role id -> assignment id
        async for item in self.graph.list(
            self.tenant, f"/servicePrincipals/{sp_id}/appRoleAssignments"
        ):
            if str(item.get("resourceId", "")).lower() == self.graph_sp_id.lower():
                held[str(item.get("appRoleId", "")).lower()] = str(item["id"])
        missing = sorted(n for n, i in wanted.items() if i not in held)
        extra = {i: a for i, a in held.items() if i not in set(wanted.values())}
        if not missing and not extra:
            self.step(ADMIN_CONSENT, False, f"granted in {self.tenant}: {planned}")
            return
        revoked = sorted(self.graph_roles.get(i, i) for i in extra)
        change = [f"granted {', '.join(missing)}"] if missing else []
        change += [f"revoked {', '.join(revoked)}"] if revoked else []
        if self.dry:
            self.step(ADMIN_CONSENT, True, f"would have {planned} ({'; '.join(change)})")
            return
        for name in missing:
            body = {"principalId": sp_id, "resourceId": self.graph_sp_id, "appRoleId": wanted[name]}
            path = f"/servicePrincipals/{sp_id}/appRoleAssignments"
            await self._after_replication(
                functools.partial(self.graph.post, self.tenant, path, body), fresh=self.sp_created
            )
        for assignment in extra.values():
            await self.graph.delete(
                self.tenant, f"/servicePrincipals/{sp_id}/appRoleAssignments/{assignment}"
            )
        self.step(ADMIN_CONSENT, True, f"{planned} in {self.tenant} ({'; '.join(change)})")

    # -- 5. AdminAgents ----------------------------------------------------------------------

    async def admin_agents(self, sp_id: str | None) -> None:
        group = await self._one(
            "/groups", f"displayName eq '{ADMIN_AGENTS}'", select=("id", "displayName")
        )
        if group is None:
            raise NeedsPersonError(
                f"{self.tenant} has no {ADMIN_AGENTS} group: it is not a CSP partner tenant, "
                "or not yet (Partner Center creates AdminAgents when the tenant enrols); sign in "
                "to the partner tenant of this region",
                code="NoAdminAgents",
                tenant=self.tenant,
            )
        if sp_id is None:
            self.step(ADMIN_AGENTS, True, f"would add the service principal to group {group['id']}")
            return
        async for member in self.graph.list(
            self.tenant, f"/groups/{group['id']}/members", select=["id"]
        ):
            if str(member.get("id", "")).lower() == sp_id.lower():
                self.step(ADMIN_AGENTS, False, f"member of {ADMIN_AGENTS} ({group['id']})")
                return
        if self.dry:
            self.step(ADMIN_AGENTS, True, f"would add the service principal to {ADMIN_AGENTS}")
            return
        reference = {"@odata.id": f"{self.graph_resource}/v1.0/directoryObjects/{sp_id}"}
        try:
            await self._after_replication(
                lambda: self.graph.post(
                    self.tenant, f"/groups/{group['id']}/members/$ref", reference
                ),
                fresh=self.sp_created,
            )
        except BadRequestError as exc:
            # Graph's 400 for a reference that is already there: someone else added it.
            if "already exist" not in str(exc):
                raise
            self.step(ADMIN_AGENTS, False, f"member of {ADMIN_AGENTS} ({group['id']})")
            return
        self.step(
            ADMIN_AGENTS, True, f"added the service principal to {ADMIN_AGENTS} ({group['id']})"
        )

    # -- 6. the configuration ----------------------------------------------------------------

    def configuration(self) -> None:
        key = self.file.region_key(self.region)
        current = self.file.region(self.region)
        entry = {k: v for k, v in current.items() if k not in CREDENTIAL_KEYS}
        entry["partner_tenant"] = current.get("partner_tenant") or self.tenant
        entry["client_id"] = self.report.client_id or current.get("client_id") or "(new)"
        entry.update(self.credential_entry)
        if (
            self.credential_entry.get("certificate_file")
            and current.get("certificate_password_env")
            and current.get("certificate_file") == self.credential_entry["certificate_file"]
        ):
            entry["certificate_password_env"] = current["certificate_password_env"]
        if entry == current:
            self.step("configuration", False, f"regions.{key} in {self.config_path}")
            return
        if self.dry or self.report.client_id is None:
            self.step("configuration", True, f"would write regions.{key} in {self.config_path}")
            return
        self.file.with_region(key, entry).save()
        self.step("configuration", True, f"wrote regions.{key} in {self.config_path}")

    # -- Graph helpers -----------------------------------------------------------------------

    async def _all(
        self, path: str, filter: str, select: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        return [
            item async for item in self.graph.list(self.tenant, path, filter=filter, select=select)
        ]

    async def _one(
        self, path: str, filter: str, select: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        found = await self._all(path, filter, select)
        return found[0] if found else None

    async def _after_replication(
        self, call: Callable[[], Awaitable[T]], *, fresh: bool, attempts: int = 6
    ) -> T:
        """Run ``call``; when the object it refers to was created moments ago in this run, a
        "does not reference a valid object"/404 answer is directory replication lag, retried
        after a pause (Entra replicates a new application within seconds to a minute)."""
        for attempt in range(attempts):
            try:
                return await call()
            except BadRequestError as exc:
                lagging = exc.status == 404 or "does not reference a valid" in str(exc)
                if not (fresh and lagging) or attempt == attempts - 1:
                    raise
                await self.sleep(5.0 * (attempt + 1))
        raise AssertionError("unreachable")


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def _quote(value: str) -> str:
    """An OData string literal's content: a quote is written twice."""
    return value.replace("'", "''")


def _unexpected(what: str) -> CspGraphError:
    return BadRequestError(
        f"{what}: Microsoft Graph's answer lacked the object it should describe",
    )
