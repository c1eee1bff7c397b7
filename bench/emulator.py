"""The emulator the benchmark runs against: a child process (``bench.serve``) on its own core.

Keeping the emulator out of the harness's process keeps the clients' CPU figures clean (each
runner is a separate child too) and lets the harness read the emulator's own CPU time per run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from csp_emulator.world.worldfile import DEMO_PARTNERS

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def partners() -> dict[str, dict[str, str]]:
    return {
        region: {"client_id": p["client_id"], "secret": p["client_secret"]}
        for region, p in DEMO_PARTNERS.items()
    }


class EmulatorProcess:
    def __init__(
        self,
        workdir: Path,
        world: dict[str, Any],
        name: str = "emulator",
        serve_args: tuple[str, ...] = (),
    ) -> None:
        """``serve_args``: more options for ``bench.serve`` (``--graph-http2``)."""
        self.serve_args = serve_args
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.world_file = self.dir / "world.json"
        self.world_file.write_text(json.dumps(world))
        self.endpoints_file = self.dir / "endpoints.json"
        self.manifest_file = self.dir / "manifest.json"
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoints: dict[str, str] = {}
        self.manifest: dict[str, Any] = {}
        self.build_seconds = 0.0

    # -- life ---------------------------------------------------------------------------------
    def start(self, timeout: float = 600) -> EmulatorProcess:
        self.endpoints_file.unlink(missing_ok=True)
        started = time.perf_counter()
        log = (self.dir / "emulator.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.serve",
                "--world",
                str(self.world_file),
                "--endpoints-file",
                str(self.endpoints_file),
                "--manifest",
                str(self.manifest_file),
                "--state-dir",
                str(self.dir / "state"),
                *self.serve_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
        )
        while not self.endpoints_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the emulator exited ({self.proc.returncode}); see {self.dir}/emulator.log"
                )
            if time.perf_counter() - started > timeout:
                raise RuntimeError("the emulator did not start in time")
            time.sleep(0.05)
        self.build_seconds = time.perf_counter() - started
        self.endpoints = json.loads(self.endpoints_file.read_text())
        self.manifest = json.loads(self.manifest_file.read_text())
        self.ps = psutil.Process(self.proc.pid)
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE must not override verify (traps §3)
        self.session.verify = self.endpoints["ca_bundle"]
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control ------------------------------------------------------------------------------
    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = self.session.request(
            method, self.endpoints["control"] + path, json=body, timeout=60
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def reset(self) -> None:
        """Counters to zero; throttling windows and listing caches dropped."""
        self.control("POST", "/_bench/reset")
        self.control("DELETE", "/_emulator/latency/log")  # each run's waits on their own

    def counters(self) -> dict[str, Any]:
        return self.control("GET", "/_bench/counters")  # type: ignore[no-any-return]

    def set_latency(self, preset: str) -> None:
        """The emulator's latency model: ``"realistic"`` or ``"off"`` (docs/emulator.md)."""
        self.control("PUT", "/_emulator/settings", {"latency": {"preset": preset}})
        self.reset()

    def set_throttling(
        self, enabled: bool, scale: float = 1.0, partner_center_scale: float = 1.0
    ) -> None:
        """Graph's budgets × ``scale``; Partner Center's limit × ``partner_center_scale`` (by
        default its published 500 requests a minute, whatever Graph's scale: the throttled regimes
        measure Graph's budgets, not listing customers)."""
        throttling = {
            "enabled": enabled,
            "scale": scale,
            "partner_center_scale": partner_center_scale,
        }
        self.control("PUT", "/_emulator/settings", {"throttling": throttling})
        self.reset()

    def profile_start(self) -> None:
        self.control("POST", "/_bench/profile/start")

    def profile_stop(self, out: Path) -> None:
        self.control("POST", f"/_bench/profile/stop?out={out}")

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 2**20

    # -- tokens -------------------------------------------------------------------------------
    def fetch_tokens(self, customers: list[dict[str, Any]]) -> dict[str, str]:
        """One app-only Graph token per customer, for the raw client (it must not pay for them)."""
        import threading
        from concurrent.futures import ThreadPoolExecutor

        creds = partners()
        local = threading.local()

        def one(customer: dict[str, Any]) -> tuple[str, str]:
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = requests.Session()
                session.trust_env = False
                session.verify = self.endpoints["ca_bundle"]
            p = creds[customer["region"]]
            tenant = customer["tenant_id"]
            r = session.post(
                f"{self.endpoints['authority_host']}/{tenant}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": p["client_id"],
                    "client_secret": p["secret"],
                    "scope": GRAPH_SCOPE,
                },
                timeout=60,
            )
            r.raise_for_status()
            return tenant, r.json()["access_token"]

        with ThreadPoolExecutor(4) as pool:
            return dict(pool.map(one, customers))


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
