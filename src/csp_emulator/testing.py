"""What the pytest plugin hands a test: a running emulator and helpers that work it as a test
would, over its own wire (the token endpoint, the control API), never around it.

    world_factory(spec)   a World factory from "demo", "demo:N", a world file path or a dict
    RunningEmulator       an emulator started in this process, with: endpoints, authority(),
                          session() / httpx_client() trusting its CA, app_token(), mint_token(),
                          advance(), inject_fault(), clear_faults(), issued_tokens(), reset()
    EmulatorPool          one running emulator per world, started on first use, stopped at the end

Usable without pytest (a unittest suite, a script): ``with EmulatorPool(tmp) as pool:
pool.get("demo")``. The plugin (pytest_plugin.py) is a thin layer over these.
"""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from csp_emulator.server import Emulator
from csp_emulator.world.model import World, parse_duration
from csp_emulator.world.worldfile import demo_world, load_world_data, load_world_file

if TYPE_CHECKING:
    import httpx
    import requests

WorldSpec = str | Path | Mapping[str, Any]
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


def world_key(spec: WorldSpec) -> str:
    """One key per distinct world: emulators are shared between the tests that ask for the same."""
    if isinstance(spec, Mapping):
        return "data:" + json.dumps(spec, sort_keys=True, default=str)
    if isinstance(spec, Path) or not str(spec).startswith("demo"):
        return f"file:{Path(spec).resolve()}"
    return str(spec)


def world_factory(spec: WorldSpec) -> Callable[[], World]:
    """A World factory for ``spec``: ``"demo"`` (the built-in demo world), ``"demo:N"`` (with N
    customers), a world file's path, or world-file data as a dict. Raises ValueError for a spec it
    cannot read (the world file's own errors are WorldFileError, a ValueError)."""
    if isinstance(spec, Mapping):
        data = dict(spec)
        load_world_data(data, source="<world given as a dict>")  # fail now, with the key at fault

        def from_data() -> World:
            return load_world_data(data, source="<world given as a dict>")

        return from_data
    text = str(spec)
    if not isinstance(spec, Path) and (text == "demo" or text.startswith("demo:")):
        _, _, count = text.partition(":")
        if count and not count.isdigit():
            raise ValueError(f"world {text!r}: expected 'demo' or 'demo:N' with N customers")
        customers = int(count) if count else None

        def demo() -> World:
            return demo_world() if customers is None else demo_world(customers)

        return demo
    path = Path(spec)
    load_world_file(path)  # fail now, with the file's own message

    def from_file() -> World:
        return load_world_file(path)

    return from_file


class RunningEmulator:
    """A started emulator and what a test does with it."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    @property
    def endpoints(self) -> Any:
        """The four origins and the CA bundle (``authority_host``, ``graph``,
        ``partner_center``, ``control``, ``ca_bundle``), as in the endpoints file."""
        return self.emulator.endpoints

    @property
    def ca_bundle(self) -> str:
        return str(self.emulator.endpoints.ca_bundle)

    @property
    def world(self) -> World:
        """The world being served (in this process): tenants, objects, the clock."""
        return self.emulator.world

    def authority(self, tenant: str) -> str:
        """The authority URL of ``tenant`` (domain or GUID), for MSAL's ``authority=``."""
        return f"{self.emulator.endpoints.authority_host}/{tenant}"

    # -- clients that trust the emulator's CA ---------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_bundle)

    def session(self) -> requests.Session:
        """A ``requests`` session that trusts the emulator's CA, and only it: ``trust_env`` is off
        so ``REQUESTS_CA_BUNDLE`` cannot override ``verify``."""
        import requests  # the plugin's fixture needs it; the emulator itself does not

        session = requests.Session()
        session.verify = self.ca_bundle
        session.trust_env = False
        return session

    def httpx_client(self) -> httpx.Client:
        """An ``httpx`` client that trusts the emulator's CA (needs httpx installed)."""
        import httpx

        return httpx.Client(verify=self.ssl_context(), trust_env=False)

    # -- the control API ------------------------------------------------------------------------
    def control(self, method: str, path: str, body: Any = None) -> Any:
        """``method`` on ``/_emulator{path}``; the JSON answer (None for 204). Raises
        RuntimeError with the emulator's message when it refuses."""
        with self.session() as http:
            answer = http.request(
                method, f"{self.emulator.endpoints.control}/_emulator{path}", json=body, timeout=30
            )
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} /_emulator{path}: {answer.status_code} {answer.text}")
        return answer.json() if answer.content else None

    def now(self) -> float:
        """The world clock (epoch seconds)."""
        return float(self.control("GET", "/clock")["epoch"])

    def advance(self, seconds: float | str) -> float:
        """Move the world clock forward (``90``, ``"3m"``, ``"1h30m"``); the new time. Tokens
        expire and relationships propagate by it; every answer's ``Date`` follows it."""
        return float(self.control("POST", "/clock", {"seconds": parse_duration(seconds)})["epoch"])

    def inject_fault(
        self,
        kind: str,
        *,
        host: str = "*",
        rate: float = 1.0,
        path_prefix: str = "",
        count: int | None = None,
        latency: float | str | None = None,
    ) -> str:
        """Answer a share of requests badly: ``kind`` is ``429``, ``500``, ``502``, ``503``,
        ``504``, ``latency`` or ``drop``; ``host`` ``login``, ``graph``, ``partner_center`` or
        ``*``. Returns the fault's id."""
        body: dict[str, Any] = {"kind": kind, "host": host, "rate": rate}
        if path_prefix:
            body["path_prefix"] = path_prefix
        if count is not None:
            body["count"] = count
        if latency is not None:
            body["latency"] = latency
        return str(self.control("POST", "/faults", body)["id"])

    def clear_faults(self) -> None:
        self.control("DELETE", "/faults")

    def issued_tokens(
        self, *, tenant: str | None = None, client_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The tokens issued so far (a claims summary each, never the token), newest last."""
        query = urlencode({k: v for k, v in (("tenant", tenant), ("client_id", client_id)) if v})
        found: list[dict[str, Any]] = self.control("GET", f"/tokens?{query}")["value"]
        return found

    def reset(self) -> None:
        """Rebuild the world from its source: objects, clock, faults, throttling, issued codes."""
        self.control("POST", "/reset")

    # -- tokens -----------------------------------------------------------------------------------
    def app_token(
        self,
        tenant: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str = GRAPH_DEFAULT,
    ) -> str:
        """An app-only access token for ``tenant`` from the token endpoint (client credentials),
        under the CSP rules like any other. Without ``client_id``: the partner-managed app that
        serves ``tenant`` (its partner's, or its own when ``tenant`` is a partner tenant)."""
        if client_id is None:
            client_id, client_secret = self._serving_app(tenant)
        elif client_secret is None:
            client_secret = self._secret_of(client_id)
        with self.session() as http:
            answer = http.post(
                f"{self.authority(tenant)}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": client_id,
                    "client_secret": client_secret,
                    "scope": scope,
                },
                timeout=30,
            )
        body = answer.json()
        if "access_token" not in body:
            raise RuntimeError(f"no token for {tenant}: {body.get('error_description', body)}")
        return str(body["access_token"])

    def mint_token(self, tenant: str, **claims: Any) -> str:
        """A Graph access token signed by the emulator's key with exactly the claims a test
        wants (an expired one, no roles, another audience), bypassing the token endpoint:
        v1-shaped app-only claims for ``tenant``, overridden by ``claims``."""
        found = self.world.tenant(tenant)
        if found is None:
            raise ValueError(f"no tenant {tenant!r} in this world")
        now = int(self.world.clock.now())
        app_id = str(claims.get("appid", "0c7e5c3a-0000-4000-8000-00000000aaaa"))
        base: dict[str, Any] = {
            "aud": "https://graph.microsoft.com",
            "iss": f"https://sts.windows.net/{found.id}/",
            "idp": f"https://sts.windows.net/{found.id}/",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "appid": app_id,
            "appidacr": "1",
            "idtyp": "app",
            "tid": found.id,
            "ver": "1.0",
            "uti": uuid.uuid4().hex,
            "tenant_region_scope": found.region,
        }
        base.update(claims)
        return self.emulator.ctx.keys.sign({k: v for k, v in base.items() if v is not None})

    def _serving_app(self, tenant_ref: str) -> tuple[str, str]:
        world = self.world
        tenant = world.tenant(tenant_ref)
        if tenant is None:
            raise ValueError(f"no tenant {tenant_ref!r} in this world")
        partners = [tenant] if tenant.kind == "partner" else []
        partners += [
            p
            for rel in world.relationships
            if rel.customer_id == tenant.id and rel.active
            for p in [world.tenants[rel.partner_id]]
        ]
        for partner in partners:
            for app in partner.objects["applications"].values():
                secrets = app.get("_secrets") or []
                if secrets and app.get("signInAudience") != "AzureADMyOrg":
                    return str(app["appId"]), str(secrets[0]["secretText"])
        raise ValueError(
            f"no partner-managed app with a client secret serves {tenant_ref}: pass client_id "
            "and client_secret"
        )

    def _secret_of(self, client_id: str) -> str:
        found = self.world.application(client_id)
        secrets = (found[1].get("_secrets") or []) if found else []
        if not secrets:
            raise ValueError(f"app {client_id} has no client secret in this world: pass one")
        return str(secrets[0]["secretText"])


class EmulatorPool:
    """One running emulator per world, started when first asked for, each with its own state
    directory under ``root``; ``close()`` stops them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._running: dict[str, RunningEmulator] = {}

    def get(self, spec: WorldSpec) -> RunningEmulator:
        key = world_key(spec)
        found = self._running.get(key)
        if found is None:
            state = self.root / f"emulator-{len(self._running)}"
            found = RunningEmulator(Emulator(world_factory(spec), state_dir=state).start())
            self._running[key] = found
        return found

    def close(self) -> None:
        for running in self._running.values():
            running.emulator.stop()
        self._running.clear()

    def __enter__(self) -> EmulatorPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
