"""What a token request asks for: one resource (Graph, Partner Center or Azure Resource Manager)
and its permissions.

v2 names permissions as scopes (``https://graph.microsoft.com/.default``, ``User.Read``, the
resource's app id as a prefix); v1 names the resource alone (``resource=``) and gets whatever is
consented. Both end up as one :class:`ScopeRequest`.

The audience follows how the request named the resource, as Entra does (wire-facts §1.7): the
resource URI gives ``aud`` = that URI, a bare scope or the app-id form gives the Graph app id.
Partner Center tokens always carry its URI. Azure Resource Manager's tokens carry the URI as the
request named it, trailing slash and all (``https://management.core.windows.net/``).
"""

from __future__ import annotations

from dataclasses import dataclass

from csp_emulator import wellknown
from csp_emulator.identity import errors


@dataclass(frozen=True)
class Resource:
    key: str  # "graph" | "partner_center" | "arm"
    app_id: str
    uri: str
    # Other URIs the resource answers to (the national clouds' Graph hosts).
    aliases: tuple[str, ...] = ()
    # Partner Center names its token audience by URI whatever form the request used.
    audience_always_uri: bool = False

    def names(self) -> tuple[str, ...]:
        return (self.uri, *self.aliases)


GRAPH = Resource(
    "graph",
    wellknown.GRAPH_APP_ID,
    wellknown.GRAPH_RESOURCE,
    aliases=tuple(
        f"https://{host}"
        for host in wellknown.CLOUD_GRAPH_HOSTS.values()
        if f"https://{host}" != wellknown.GRAPH_RESOURCE
    ),
)
PARTNER_CENTER = Resource(
    "partner_center",
    wellknown.PARTNER_CENTER_APP_ID,
    wellknown.PARTNER_CENTER_RESOURCE,
    audience_always_uri=True,
)
ARM = Resource("arm", wellknown.ARM_APP_ID, wellknown.ARM_RESOURCE, aliases=wellknown.ARM_ALIASES)
RESOURCES = (GRAPH, PARTNER_CENTER, ARM)
PC_SCOPE = "user_impersonation"
DEFAULT = ".default"


@dataclass(frozen=True)
class ScopeRequest:
    resource: Resource
    audience: str
    # How the request named the resource, echoed back in the v2 `scope` field so MSAL's cache
    # finds the token under the scopes it asked for ("" for bare Graph scopes).
    prefix: str
    permissions: tuple[str, ...]  # named permissions asked for, without .default
    default: bool  # `.default` (v2) or `resource=` (v1): everything consented
    oidc: frozenset[str]  # openid, profile, email, offline_access
    resource_param: str | None = None  # v1 only: the `resource` value as sent, echoed back

    def qualified(self, permission: str) -> str:
        return f"{self.prefix}{permission}"


def _match_resource(name: str) -> tuple[Resource, str] | None:
    """(resource, audience) for a resource named by URI or app id, or None if unknown."""
    lowered = name.rstrip("/").lower()
    for resource in RESOURCES:
        if lowered == resource.app_id:
            audience = resource.uri if resource.audience_always_uri else resource.app_id
            return resource, audience
        for uri in resource.names():
            if lowered == uri.rstrip("/").lower():
                return resource, uri
    return None


def parse_scope(scope: str, *, tenant_label: str) -> ScopeRequest:
    """A v2 `scope` parameter; raises AADError 70011 / 28000 / 500011."""
    oidc: set[str] = set()
    found: list[tuple[Resource, str, str, str]] = []  # resource, audience, prefix, permission
    for item in scope.split():
        if item in wellknown.OIDC_SCOPES:
            oidc.add(item)
            continue
        if "/" in item:
            # A resource-qualified scope: "<resource>/<permission>"; "<uri>//.default" is seen in
            # the wild and Entra tolerates it.
            base, _, permission = item.rpartition("/")
            base = base.rstrip("/")
            matched = _match_resource(base)
            if matched is None:
                raise errors.resource_not_found(base, tenant_label)
            if not permission:
                raise errors.invalid_scope(item)
            found.append((matched[0], matched[1], f"{base}/", permission))
        else:
            # A bare scope names a Microsoft Graph permission.
            found.append((GRAPH, GRAPH.app_id, "", item))
    if not found:
        # Only OpenID scopes: Entra issues a Graph token for the sign-in.
        return ScopeRequest(GRAPH, GRAPH.app_id, "", (), False, frozenset(oidc))
    resources = {r.key for r, _, _, _ in found}
    if len(resources) > 1:
        raise errors.several_resources(scope)
    resource, audience, prefix, _ = found[0]
    permissions = tuple(p for _, _, _, p in found if p != DEFAULT)
    default = any(p == DEFAULT for _, _, _, p in found)
    if resource is PARTNER_CENTER and any(p != PC_SCOPE for p in permissions):
        raise errors.invalid_scope(scope)
    return ScopeRequest(resource, audience, prefix, permissions, default, frozenset(oidc))


def parse_resource(resource: str, scope: str | None, *, tenant_label: str) -> ScopeRequest:
    """A v1 `resource` parameter (plus the optional v1 `scope`, where only `openid` counts)."""
    matched = _match_resource(resource)
    if matched is None:
        raise errors.resource_not_found(resource, tenant_label)
    oidc = frozenset(s for s in (scope or "").split() if s in wellknown.OIDC_SCOPES)
    found, audience = matched
    if found is PARTNER_CENTER:
        audience = found.uri
    elif found is ARM:
        audience = resource  # as named: azure-cli's tokens carry the trailing slash
    else:
        # v1 echoes the resource in `aud` as the request named it.
        audience = resource.rstrip("/") if resource.lower().startswith("https://") else audience
    return ScopeRequest(
        found,
        audience,
        "",
        (),
        True,
        oidc,
        resource_param=resource,
    )
