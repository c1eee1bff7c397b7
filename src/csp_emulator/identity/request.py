"""Reading identity requests: the tenant path segment, form bodies, and what a request asks for."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

from starlette.requests import Request

from csp_emulator.identity import errors
from csp_emulator.identity.scopes import ScopeRequest, parse_resource, parse_scope
from csp_emulator.world.model import Tenant, World

# Segments that name no single tenant: the user's home tenant decides at sign-in.
MULTI_TENANT_SEGMENTS = frozenset({"common", "organizations"})


def resolve_segment(world: World, segment: str, *, at_token_endpoint: bool) -> Tenant | None:
    """The tenant a path segment names (GUID or verified domain, any case); None for
    common/organizations; AADSTS90002 for anything else."""
    if segment.lower() in MULTI_TENANT_SEGMENTS:
        return None
    tenant = world.tenant(segment)
    if tenant is None:
        raise errors.tenant_not_found(segment, at_token_endpoint=at_token_endpoint)
    return tenant


async def read_form(request: Request) -> dict[str, str]:
    """A form-urlencoded body (the first value of a repeated key wins)."""
    body = await request.body()
    form: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(key, value)
    return form


def token_endpoint_urls(authority_host: str, tenant: Tenant | None, segment: str) -> set[str]:
    """Every URL a client assertion may name as its audience for this tenant's token endpoint:
    v1 and v2, by GUID or by any verified domain."""
    names = [segment] if tenant is None else [tenant.id, *tenant.domains]
    hosts = [authority_host, "https://login.microsoftonline.com"]
    return {
        f"{host}/{name}/oauth2{version}/token"
        for host in hosts
        for name in names
        for version in ("", "/v2.0")
    }


def scope_request(
    form: Mapping[str, str],
    *,
    v1: bool,
    tenant_label: str,
    scope_default: str | None = None,
    resource_default: str | None = None,
) -> tuple[ScopeRequest, str]:
    """What a token or device-code request asks for, and the scope string it was built from
    (kept with a refresh token as the default for its later redemptions)."""
    scope = form.get("scope") or scope_default or ""
    if v1:
        resource = form.get("resource") or resource_default
        if not resource:
            raise errors.missing_parameter("resource")
        return parse_resource(resource, scope, tenant_label=tenant_label), scope
    if scope:
        return parse_scope(scope, tenant_label=tenant_label), scope
    if resource_default:
        # A v1 grant redeemed at the v2 endpoint without a scope: the v1 resource stands.
        return parse_resource(resource_default, None, tenant_label=tenant_label), scope
    raise errors.missing_parameter("scope")
