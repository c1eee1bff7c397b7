"""Shared helpers of the partner tests: clouds, configs and a scripted browser for the emulator."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import requests
import tomli_w

from csp_emulator.server import Emulator
from cspgraph.clouds import Cloud, cloud


def emulator_cloud(emu: Emulator) -> Cloud:
    ep = emu.endpoints
    return cloud("global").with_hosts(
        login=ep.authority_host,
        graph=ep.graph,
        partner_center=ep.partner_center,
        ca_bundle=ep.ca_bundle,
    )


def https_session(emu: Emulator) -> requests.Session:
    session = requests.Session()
    session.verify = emu.endpoints.ca_bundle
    session.trust_env = False
    return session


def sign_in_browser(emu: Emulator, username: str, password: str) -> Any:
    """A "browser" for the emulator's sign-in page: it posts the credentials to the authorize
    URL (the page is a stateless form) and follows the redirect to the loopback listener."""

    def open_browser(url: str) -> bool:
        with https_session(emu) as session:
            answer = session.post(
                url, data={"username": username, "password": password}, allow_redirects=False
            )
        if answer.status_code == 302:  # response_mode=query
            location = answer.headers["Location"]
            assert location.startswith("http://localhost:"), location
            requests.get(location, timeout=10)
            return True
        # response_mode=form_post: a page whose form posts the answer to the redirect URI.
        assert answer.status_code == 200, answer.text[:500]
        action = re.search(r'<form id="response" method="post" action="([^"]+)"', answer.text)
        assert action is not None, answer.text[:500]
        fields = dict(
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', answer.text)
        )
        requests.post(
            html.unescape(action.group(1)),
            data={k: html.unescape(v) for k, v in fields.items()},
            timeout=10,
        )
        return True

    return open_browser


def write_config(path: Path, emu: Emulator, regions: dict[str, Any] | None = None) -> Path:
    data: dict[str, Any] = {
        "emulator": str(emu.endpoints_file),
        "token_cache": "memory",
        "discovery_cache": "memory",
    }
    if regions:
        data["regions"] = regions
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path
