"""OpenID discovery (v1 and v2), the signing keys (JWKS) and instance discovery.

Documents follow the captures in wire-facts §1.2/§1.3, with every endpoint on the emulator's
authority origin. The tenant's GUID is the first path segment of every endpoint whatever name the
request used, because MSAL takes the token endpoint's first segment as its cache realm.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from csp_emulator import wellknown
from csp_emulator.context import EmulatorContext
from csp_emulator.http import json_response
from csp_emulator.identity import errors
from csp_emulator.identity.errors import AADError
from csp_emulator.identity.request import resolve_segment
from csp_emulator.world.model import Tenant

DISCOVERY_CACHE = {"Cache-Control": "max-age=86400, private"}
TENANT_PLACEHOLDER = "{tenantid}"
CLAIMS_V2 = [
    "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
    "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username",
    "name", "tid", "ver", "at_hash", "c_hash", "email",
]  # fmt: skip
CLAIMS_V1 = [
    "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
    "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "email",
    "given_name", "family_name", "nickname",
]  # fmt: skip
# Microsoft's own hosts, answered in instance discovery next to the emulator (wire-facts §1.3).
PUBLIC_INSTANCES = [
    {
        "preferred_network": "login.microsoftonline.com",
        "preferred_cache": "login.windows.net",
        "aliases": [
            "login.microsoftonline.com",
            "login.windows.net",
            "login.microsoft.com",
            "sts.windows.net",
        ],
    },
    {
        "preferred_network": "login.partner.microsoftonline.cn",
        "preferred_cache": "login.partner.microsoftonline.cn",
        "aliases": ["login.partner.microsoftonline.cn", "login.chinacloudapi.cn"],
    },
    {
        "preferred_network": "login.microsoftonline.us",
        "preferred_cache": "login.microsoftonline.us",
        "aliases": ["login.microsoftonline.us", "login.usgovcloudapi.net"],
    },
    {
        "preferred_network": "login-us.microsoftonline.com",
        "preferred_cache": "login-us.microsoftonline.com",
        "aliases": ["login-us.microsoftonline.com"],
    },
]


def _cloud_fields(ctx: EmulatorContext, tenant: Tenant | None) -> dict[str, Any]:
    cloud = tenant.cloud if tenant is not None else "global"
    return {
        "tenant_region_scope": tenant.region if tenant is not None else None,
        "cloud_instance_name": wellknown.CLOUD_INSTANCE_NAMES.get(cloud, "microsoftonline.com"),
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": ctx.endpoints.graph_host,
        "rbac_url": "https://pas.windows.net",
    }


def v2_document(ctx: EmulatorContext, tenant: Tenant | None, segment: str) -> dict[str, Any]:
    authority = ctx.endpoints.authority_host
    name = tenant.id if tenant is not None else segment.lower()
    base = f"{authority}/{name}"
    issuer_tenant = tenant.id if tenant is not None else TENANT_PLACEHOLDER
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{authority}/{issuer_tenant}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{ctx.endpoints.graph}/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": CLAIMS_V2,
        "kerberos_endpoint": f"{base}/kerberos",
        **_cloud_fields(ctx, tenant),
    }


def v1_document(ctx: EmulatorContext, tenant: Tenant | None, segment: str) -> dict[str, Any]:
    authority = ctx.endpoints.authority_host
    name = tenant.id if tenant is not None else segment.lower()
    base = f"{authority}/{name}"
    issuer_tenant = tenant.id if tenant is not None else TENANT_PLACEHOLDER
    return {
        "token_endpoint": f"{base}/oauth2/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{authority}/common/discovery/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": [
            "code",
            "id_token",
            "code id_token",
            "token id_token",
            "token",
        ],
        "scopes_supported": ["openid"],
        "issuer": f"https://sts.windows.net/{issuer_tenant}/",
        "microsoft_multi_refresh_token": True,
        "authorization_endpoint": f"{base}/oauth2/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/logout",
        "claims_supported": CLAIMS_V1,
        "check_session_iframe": f"{base}/oauth2/checksession",
        "userinfo_endpoint": f"{base}/openid/userinfo",
        "kerberos_endpoint": f"{base}/kerberos",
        **_cloud_fields(ctx, tenant),
    }


def _error(ctx: EmulatorContext, request: Request, err: AADError) -> Response:
    return errors.error_response(
        err,
        now=ctx.world.clock.now(),
        correlation_id=request.headers.get("client-request-id"),
        authority_host=ctx.endpoints.authority_host,
    )


async def openid_configuration(ctx: EmulatorContext, request: Request, *, v2: bool) -> Response:
    segment = request.path_params["t"]
    try:
        tenant = resolve_segment(ctx.world, segment, at_token_endpoint=False)
    except AADError as err:
        return _error(ctx, request, err)
    document = (v2_document if v2 else v1_document)(ctx, tenant, segment)
    return json_response(document, headers=DISCOVERY_CACHE)


async def keys(ctx: EmulatorContext, request: Request, *, v2: bool) -> Response:
    segment = request.path_params.get("t", "common")
    try:
        tenant = resolve_segment(ctx.world, segment, at_token_endpoint=False)
    except AADError as err:
        return _error(ctx, request, err)
    issuer = None
    if v2:
        issuer_tenant = tenant.id if tenant is not None else TENANT_PLACEHOLDER
        issuer = f"{ctx.endpoints.authority_host}/{issuer_tenant}/v2.0"
    return json_response(ctx.keys.jwks(issuer), headers=DISCOVERY_CACHE)


def _known_hosts(ctx: EmulatorContext, request: Request) -> list[str]:
    own = urlsplit(ctx.endpoints.authority_host).netloc
    hosts = [own]
    asked = request.headers.get("host")
    if asked and asked not in hosts:
        hosts.append(asked)
    return hosts


def _own_host_sans_port(parts: SplitResult, own_hosts: list[str]) -> bool:
    """Whether ``parts`` names this emulator's host without its port. MSAL Python, given
    ``instance_discovery=<url>``, asks about ``https://{authority.hostname}{path}/oauth2/v2.0/
    authorize`` (msal/authority.py: the host name, the port dropped), then follows the
    ``tenant_discovery_endpoint`` answered, which carries the port: so that question is about
    this emulator, and the answer sends MSAL back to the right origin."""
    if parts.port is not None or parts.hostname is None:
        return False
    return parts.hostname.lower() in {urlsplit(f"//{h}").hostname for h in own_hosts}


async def instance_discovery(ctx: EmulatorContext, request: Request) -> Response:
    """MSAL's authority validation (api-version 1.0 reads `tenant_discovery_endpoint`) and alias
    lookup (1.1 reads `metadata`)."""
    own_hosts = _known_hosts(ctx, request)
    metadata = [
        {"preferred_network": own_hosts[0], "preferred_cache": own_hosts[0], "aliases": own_hosts},
        *PUBLIC_INSTANCES,
    ]
    known = {alias for entry in metadata for alias in entry["aliases"]}
    endpoint = request.query_params.get("authorization_endpoint")
    authority = ctx.endpoints.authority_host
    segment, v2 = "common", True
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.netloc.lower() not in {h.lower() for h in known} and not _own_host_sans_port(
            parts, own_hosts
        ):
            return _error(ctx, request, errors.unknown_instance())
        path = [p for p in parts.path.split("/") if p]
        segment = path[0] if path else "common"
        v2 = "v2.0" in path
    discovery = f"{authority}/{segment}{'/v2.0' if v2 else ''}/.well-known/openid-configuration"
    return json_response(
        {
            "tenant_discovery_endpoint": discovery,
            "api-version": request.query_params.get("api-version", "1.1"),
            "metadata": metadata,
        },
        headers=DISCOVERY_CACHE,
    )
