"""The emulator as the benchmark runs it: its own process, a world from a JSON file, and counters.

``python -m bench.serve --world W.json --endpoints-file E.json --manifest M.json``

Besides the stock emulator this process adds, without touching emulator code (it wraps the ASGI
apps the emulator builds):

* counters on the Graph, login and Partner Center hosts: requests and status codes; on Graph also
  the resource units each answered request was charged (``x-ms-resource-unit``) and Intune
  requests, per tenant and per app, and the requests each app was answered (Graph's global
  per-app budget), from the token's unverified ``tid``/``appid`` claims. A
  runner that miscounts its own requests cannot hide it: the harness reads these after each run;
* ``/_bench/...`` on the control host: ``GET counters``, ``GET log`` (time, tenant, status and
  path of every Graph request since the last reset), ``POST reset`` (zero the counters and drop
  the throttling windows and listing caches, so every runner meets the same emulator), ``POST
  profile/start`` and ``POST profile/stop?out=FILE`` (cProfile of the serving thread).
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.fleet import customer_list, expected_counts

Scope = dict[str, Any]


class Counters:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests: dict[str, int] = defaultdict(int)
        self.statuses: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        # tenant id -> {"ru": identity RU answered, "intune": Intune requests answered, "429": n}
        self.tenants: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.apps: dict[str, float] = defaultdict(float)  # app id -> identity RU answered
        # app id -> requests answered (identity and Intune): Graph's global per-app budget.
        self.app_requests: dict[str, float] = defaultdict(float)
        self.claims: dict[bytes, tuple[str, str]] = {}
        # (monotonic seconds, tenant, status, path) of every Graph request, for timelines.
        self.log: list[tuple[float, str, int, str]] = []
        # The world clock (epoch seconds) at the first Graph request: where the run's first burst
        # falls in the throttling windows, which are aligned to that clock.
        self.first_graph_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "statuses": {h: dict(s) for h, s in self.statuses.items()},
            "tenants": {t: dict(c) for t, c in self.tenants.items()},
            "apps": dict(self.apps),
            "app_requests": dict(self.app_requests),
            "first_graph_at": self.first_graph_at,
        }

    def caller(self, authorization: bytes | None) -> tuple[str, str]:
        if not authorization:
            return "", ""
        found = self.claims.get(authorization)
        if found is None:
            found = ("", "")
            parts = authorization.split(b".")
            if len(parts) == 3:
                try:
                    payload = parts[1]
                    claims = orjson.loads(
                        base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))
                    )
                    found = (
                        str(claims.get("tid", "")),
                        str(claims.get("appid") or claims.get("azp") or ""),
                    )
                except ValueError:
                    pass
            if len(self.claims) < 100_000:
                self.claims[authorization] = found
        return found


def counting(
    app: Any, host: str, counters: Counters, clock: Callable[[], float] | None = None
) -> Any:
    graph = host == "graph"

    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        counters.requests[host] += 1
        if graph and counters.first_graph_at is None and clock is not None:
            counters.first_graph_at = clock()
        tenant = app_id = ""
        intune = False
        if graph:
            for name, value in scope["headers"]:
                if name == b"authorization":
                    tenant, app_id = counters.caller(value)
                    break
            intune = "devicemanagement" in scope["path"].lower()

        async def counted_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                counters.statuses[host][str(status)] += 1
                if graph and len(counters.log) < 500_000:
                    counters.log.append((time.monotonic(), tenant, status, scope["path"]))
                if graph and tenant:
                    row = counters.tenants[tenant]
                    if status == 429:
                        row["429"] += 1
                    elif intune:
                        row["intune"] += 1
                        counters.app_requests[app_id] += 1
                    else:
                        for name, value in message.get("headers", ()):
                            if name.lower() == b"x-ms-resource-unit":
                                ru = float(value)
                                row["ru"] += ru
                                counters.apps[app_id] += ru
                                counters.app_requests[app_id] += 1
                                break
            await send(message)

        await app(scope, receive, counted_send)

    return wrapped


def bench_control(app: Any, counters: Counters, emulator: Any) -> Any:
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    profiler: dict[str, cProfile.Profile] = {}

    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/_bench/"):
            await app(scope, receive, send)
            return
        request = Request(scope, receive)
        what = path.removeprefix("/_bench/")
        body: Any = {"ok": True}
        if what == "counters":
            body = counters.as_dict()
        elif what == "log":
            body = counters.log
        elif what == "reset":
            counters.reset()
            graph = emulator.ctx.state.graph
            graph.new_budgets(emulator.ctx.world)
            graph.matches.clear()
        elif what == "profile/start":
            profiler["p"] = cProfile.Profile()
            profiler["p"].enable()
        elif what == "profile/stop":
            p = profiler.pop("p", None)
            if p is not None:
                p.disable()
                p.dump_stats(request.query_params["out"])
        else:
            body = {"error": f"unknown {path}"}
        await JSONResponse(body)(scope, receive, send)

    return wrapped


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("--world", type=Path, required=True, help="world data as JSON")
    parser.add_argument("--endpoints-file", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument(
        "--graph-http2",
        action="store_true",
        help="serve the Graph host with hypercorn (HTTP/2 by ALPN, HTTP/1.1 otherwise) instead "
        "of uvicorn (bench.http2)",
    )
    args = parser.parse_args(argv)

    from csp_emulator import server
    from csp_emulator.world.worldfile import load_world_data

    data = json.loads(args.world.read_text())
    world = load_world_data(data, source=str(args.world))
    args.manifest.write_text(
        json.dumps({"expected": expected_counts(world), "customers": customer_list(world)})
    )
    counters = Counters()
    stock_build_apps = server.build_apps
    holder: dict[str, Any] = {}

    def build_apps(ctx: Any) -> dict[str, Any]:
        apps = stock_build_apps(ctx)
        for host in ("graph", "authority_host", "partner_center"):
            apps[host] = counting(apps[host], host, counters, lambda: ctx.world.clock.now())
        apps["control"] = bench_control(apps["control"], counters, holder["emulator"])
        return apps

    server.build_apps = build_apps
    first = [world]

    def factory() -> Any:
        # The world built above serves first; a control-API reset rebuilds it from the data.
        return first.pop() if first else load_world_data(data, source=str(args.world))

    emulator = server.Emulator(
        factory, state_dir=args.state_dir, endpoints_file=args.endpoints_file
    )
    holder["emulator"] = emulator
    if args.graph_http2:
        from bench.h2_server import serve_graph_with_hypercorn

        serve_graph_with_hypercorn(emulator)
    print(f"bench emulator: {len(world.tenants)} tenants", file=sys.stderr, flush=True)
    emulator.run_forever()


if __name__ == "__main__":
    main()
