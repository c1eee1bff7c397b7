"""National clouds: where to sign in, where Graph and Partner Center answer, and how they are named.

Each Microsoft cloud (global, US Government, China) is a separate identity platform with its own
hosts and its own app registrations (wire-facts §1.1). A partner configuration targets exactly one
cloud; the emulator, or explicit hosts, replace the locations but keep the cloud's *names* (the
Graph resource URI a token is asked for is a name, not a location).

Written down here from Microsoft's public documentation, independently of the emulator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import urlsplit

CloudName = Literal["global", "usgov", "china"]

# Hosts MSAL Python knows without asking instance discovery (msal/authority.py); any other
# authority host (the emulator, a proxy) needs `instance_discovery=False` (client-traps §2).
MSAL_KNOWN_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login-us.microsoftonline.com",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
    }
)


@dataclass(frozen=True)
class Cloud:
    """Where one cloud's services answer, and the names its tokens are asked for."""

    name: CloudName
    login: str  # authority host URL, e.g. https://login.microsoftonline.com
    graph: str  # Graph base URL (without /v1.0)
    partner_center: str  # Partner Center base URL (without /v1)
    instance_name: str  # discovery's `cloud_instance_name` for this cloud's tenants
    graph_resource: str  # Graph's resource URI: the `aud` of Graph tokens, the v1 `resource=`
    partner_center_resource: str = "https://api.partnercenter.microsoft.com"
    ca_bundle: str | None = None  # a PEM bundle to trust instead of the system store

    @property
    def graph_scope(self) -> str:
        """The app-only (and `.default` delegated) scope for Graph."""
        return f"{self.graph_resource}/.default"

    @property
    def partner_center_scope(self) -> str:
        return f"{self.partner_center_resource}/.default"

    @property
    def login_host(self) -> str:
        return urlsplit(self.login).hostname or ""

    @property
    def instance_discovery(self) -> bool:
        """Whether MSAL may validate the authority through Microsoft's instance discovery."""
        return self.login_host in MSAL_KNOWN_AUTHORITY_HOSTS and urlsplit(self.login).port is None

    def authority(self, tenant: str) -> str:
        """The authority URL of one tenant (GUID or domain) in this cloud."""
        return f"{self.login}/{tenant}"

    def with_hosts(
        self,
        *,
        login: str | None = None,
        graph: str | None = None,
        partner_center: str | None = None,
        ca_bundle: str | None = None,
    ) -> Cloud:
        """The same cloud reached at other locations (an emulator, a proxy)."""
        return replace(
            self,
            login=_strip(login) if login else self.login,
            graph=_strip(graph) if graph else self.graph,
            partner_center=_strip(partner_center) if partner_center else self.partner_center,
            ca_bundle=ca_bundle if ca_bundle is not None else self.ca_bundle,
        )


def _strip(url: str) -> str:
    return url.rstrip("/")


CLOUDS: dict[CloudName, Cloud] = {
    "global": Cloud(
        name="global",
        login="https://login.microsoftonline.com",
        graph="https://graph.microsoft.com",
        partner_center="https://api.partnercenter.microsoft.com",
        instance_name="microsoftonline.com",
        graph_resource="https://graph.microsoft.com",
    ),
    # Partner Center for US Government answers on the global Partner Center host
    # (Partner Center docs: "Partner Center REST URLs").
    "usgov": Cloud(
        name="usgov",
        login="https://login.microsoftonline.us",
        graph="https://graph.microsoft.us",
        partner_center="https://api.partnercenter.microsoft.com",
        instance_name="microsoftonline.us",
        graph_resource="https://graph.microsoft.us",
    ),
    "china": Cloud(
        name="china",
        login="https://login.chinacloudapi.cn",
        graph="https://microsoftgraph.chinacloudapi.cn",
        partner_center="https://partner.partnercenterapi.microsoftonline.cn",
        instance_name="partner.microsoftonline.cn",
        graph_resource="https://microsoftgraph.chinacloudapi.cn",
    ),
}


def cloud(name: str) -> Cloud:
    """The built-in description of a cloud by name; ValueError names the choices."""
    for key, value in CLOUDS.items():
        if key == name.lower():
            return value
    raise ValueError(f"unknown cloud {name!r}; expected one of: {', '.join(CLOUDS)}")


def cloud_for_instance(instance_name: str | None) -> CloudName | None:
    """Which cloud a discovery document's `cloud_instance_name` belongs to, if any we know."""
    for c in CLOUDS.values():
        if instance_name and instance_name.lower() == c.instance_name:
            return c.name
    return None
