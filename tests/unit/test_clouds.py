"""National clouds: hosts, names and what MSAL needs to know about them."""

from __future__ import annotations

import pytest

from cspgraph.clouds import CLOUDS, cloud, cloud_for_instance


def test_each_cloud_has_its_own_hosts_and_names() -> None:
    g, us, cn = cloud("global"), cloud("usgov"), cloud("china")
    assert g.login == "https://login.microsoftonline.com"
    assert g.graph_scope == "https://graph.microsoft.com/.default"
    assert us.login == "https://login.microsoftonline.us"
    assert us.graph == "https://graph.microsoft.us"
    assert cn.login == "https://login.chinacloudapi.cn"
    assert cn.graph == "https://microsoftgraph.chinacloudapi.cn"
    assert cn.partner_center == "https://partner.partnercenterapi.microsoftonline.cn"
    assert {c.instance_name for c in CLOUDS.values()} == {
        "microsoftonline.com",
        "microsoftonline.us",
        "partner.microsoftonline.cn",
    }


def test_cloud_names_are_case_insensitive_and_unknown_ones_name_the_choices() -> None:
    assert cloud("USGov").name == "usgov"
    with pytest.raises(ValueError, match="global, usgov, china"):
        cloud("germany")


def test_microsoft_hosts_use_instance_discovery_and_others_do_not() -> None:
    assert cloud("global").instance_discovery
    assert cloud("china").instance_discovery
    emulated = cloud("global").with_hosts(login="https://127.0.0.1:8443/", ca_bundle="/ca.pem")
    assert emulated.login == "https://127.0.0.1:8443"
    assert not emulated.instance_discovery
    # Moving the cloud keeps its names: tokens are still asked for Graph's resource URI.
    assert emulated.graph_scope == "https://graph.microsoft.com/.default"
    assert emulated.instance_name == "microsoftonline.com"
    assert emulated.ca_bundle == "/ca.pem"
    assert emulated.authority("contoso.com") == "https://127.0.0.1:8443/contoso.com"


def test_discovery_instance_names_map_back_to_clouds() -> None:
    assert cloud_for_instance("microsoftonline.us") == "usgov"
    assert cloud_for_instance("MicrosoftOnline.com") == "global"
    assert cloud_for_instance("example.org") is None
    assert cloud_for_instance(None) is None
