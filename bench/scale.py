"""``python -m bench.scale``: the fleet sync on 1, 2 and 4 Celery worker processes (docs/scale.md).

One generated fleet (bench.fleet, seed 11) in the emulator (its own process, the bench's counters),
Graph's latency as the ``realistic`` preset draws it, Graph's budgets on at their published sizes
(× ``--throttle-scale``). For each number of workers: a fresh PostgreSQL database, a queue and a
budget namespace of its own (deleted after the run, as is the database), N ``cspgraph worker``
processes (each ``--concurrency`` customers at once) sharing the budget in Redis, and
``enqueue_sync`` of every customer; the wall time runs from the enqueue to the last customer
recorded. Each run must end with every customer ``ok``. Printed: a Markdown table (with the load
average, since this machine is shared) and the JSON in bench/results/scale-latest.json. Each row
has two lower bounds and which is larger: Graph's budgets (bench/budgets.py) and Partner Center's
500 requests a minute per partner tenant (bench/bound.py, from the emulator's latency log), and
the emulator's 429s per host (Graph, Partner Center, sign-in).

    python -m bench.scale --customers 100 --workers 1,2,4 --concurrency 8

``--limiter`` measures the shared budget's own cost in one process and one event loop: the
synchronous RedisLimiter against AsyncRedisLimiter, per reservation+answer pair, with how late
the loop runs a 1 ms ticker meanwhile (what a worker's other requests suffer):

    python -m bench.scale --limiter --lanes 64 --pairs 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench import bound
from bench.budgets import best_time
from bench.child import BIN, ROOT, child_env
from bench.emulator import EmulatorProcess, load_average
from bench.fleet import fleet_world_data
from cspgraph.config import load_config
from cspgraph.distributed.async_limiter import AsyncRedisLimiter
from cspgraph.distributed.engine import enqueue_sync
from cspgraph.distributed.queues import consumers, delete_queue
from cspgraph.distributed.redis_limiter import RedisLimiter, drop_namespace
from cspgraph.fleet.access import AccessMode, CustomerAccess, record
from cspgraph.fleet.store import Store
from cspgraph.graph.limits import RequestCost
from cspgraph.graph.scope import Family

RESULTS = Path(__file__).parent / "results"
PG = os.environ.get("CSPGRAPH_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BROKER = os.environ.get("CSPGRAPH_BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
REDIS = os.environ.get("CSPGRAPH_BENCH_REDIS", "redis://127.0.0.1:6379/0")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, default=100, help="fleet size (default 100)")
    p.add_argument("--workers", default="1,2,4", help="worker processes per run (default 1,2,4)")
    p.add_argument("--concurrency", type=int, default=8, help="customers per worker at once")
    p.add_argument("--latency", default="realistic", help="the emulator's preset, or 'off'")
    p.add_argument("--throttle-scale", type=float, default=1.0, help="Graph's budgets x this")
    p.add_argument("--page-size", type=int, default=999)
    p.add_argument(
        "--dap-known", action="store_true",
        help="each customer's DAP answer in the store as a run less than a day ago left it (every "
        "run after the day's first): the workers do not ask Partner Center, which answers 500 such "
        "questions a minute per partner tenant; without it every customer is asked (a first run)",
    )  # fmt: skip
    p.add_argument(
        "--limiter", action="store_true",
        help="measure the shared budget's own cost instead: RedisLimiter against "
        "AsyncRedisLimiter, --lanes coroutines of --pairs reservations and answers each",
    )  # fmt: skip
    p.add_argument("--lanes", type=int, default=64)
    p.add_argument("--pairs", type=int, default=50)
    return p.parse_args(argv)


def database() -> tuple[str, str]:
    name = f"cspgraph_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, make_url(PG).set(database=name).render_as_string(hide_password=False)


def known_dap(url: str, customers: list[dict[str, Any]]) -> None:
    """Partner Center's word on each customer's DAP as a sync an hour ago recorded it (before
    the timed run: the store's first run would have asked)."""
    asked = datetime.now(UTC) - timedelta(hours=1)
    with Store.open(url) as store:
        for c in customers:
            mode = AccessMode.DAP if c["dap"] else AccessMode.GDAP_APP
            record(store, CustomerAccess(c["tenant_id"], mode, None, c["dap"], asked, None))


def drop(name: str) -> None:
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def run(
    emu: EmulatorProcess, work: Path, config: Path, env: dict[str, str], workers: int,
    args: argparse.Namespace, customers: list[str],
) -> dict[str, Any]:  # fmt: skip
    name, url = database()
    if args.dap_known:
        known_dap(url, emu.manifest["customers"])
    queue, namespace = f"bench-{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:8]}"
    emu.reset()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = []
    try:
        for i in range(workers):
            log = (work / f"worker-{workers}-{i}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [str(BIN / "cspgraph"), "worker", "--broker", BROKER, "--db", url,
                     "--queue", queue, "--name", f"w{i}@bench", "--concurrency",
                     str(args.concurrency), "--config", str(config), "--budget-redis", REDIS,
                     "--budget-namespace", namespace, "--budget-scale", str(args.throttle_scale)],
                    env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                )
            )  # fmt: skip
        deadline = time.monotonic() + 120
        while consumers(BROKER, queue) < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"workers did not start; see {work}")
            time.sleep(0.2)
        load_before = load_average()
        with Store.open(url) as store:
            started = time.monotonic()
            summary = asyncio.run(
                enqueue_sync(
                    load_config(config), store, BROKER, customers=customers, queue=queue,
                    page_size=args.page_size, poll=0.5,
                )
            )  # fmt: skip
            wall = time.monotonic() - started
        load_after = load_average()
        counters = emu.counters()
        records = bound.latency_log(emu.control)
        settings = emu.control("GET", "/_emulator/settings")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        drop(name)
        # Nothing of the run is left on the services: its queue (and exchange), its budgets.
        delete_queue(BROKER, queue)
        budgets = redis.Redis.from_url(REDIS)
        try:
            drop_namespace(budgets, namespace)
        finally:
            budgets.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    statuses = summary.by_status()
    graph_statuses = counters.get("statuses", {}).get("graph", {})
    hosts = bound.per_host(counters)
    budget_s = best_time(counters, emu.manifest["customers"], args.throttle_scale)["seconds"]
    # Partner Center's limit per partner tenant (bench/bound.py), from the latency log: none
    # with the latency off (nothing is logged then). The workers start before the clock does,
    # so no start-up is added.
    pc = (
        bound.partner_center_bound(records, bound.partner_center_limit(settings), 0.0)
        if records
        else None
    )
    # Which limit holds the run back: one that paced nothing (a request's latency at most) does not.
    pc_paced_s = pc["seconds"] if pc is not None and pc.get("paced_s", 0.0) > 0.0 else 0.0
    if pc_paced_s > budget_s:
        binds = "Partner Center's limit"
    else:
        binds = "Graph's budgets" if budget_s > 0.0 else "neither"
    return {
        "workers": workers,
        "concurrency": args.concurrency,
        "wall_s": round(wall, 1),
        "ok": statuses.get("ok", 0),
        "statuses": statuses,
        # Why customers did not end ok (a few): a bench run is not only its wall time.
        "not_ok": [
            f"{t.tenant_id}: {t.status.value}: {t.reason}"
            for t in summary.tenants
            if t.status.value != "ok"
        ][:5],
        "requests": summary.requests,
        "throttled": summary.throttled,
        "emulator_graph_requests": counters.get("requests", {}).get("graph"),
        "emulator_429s": graph_statuses.get("429", 0),
        # Partner Center's questions (DAP, per customer unless --dap-known): 500 a minute.
        "partner_center_requests": counters.get("requests", {}).get("partner_center", 0),
        "hosts": hosts,
        "identity_ru": round(sum(counters.get("apps", {}).values())),
        # The least wall time Graph's budgets allow this plan (bench/budgets.py).
        "budget_bound_s": round(budget_s, 1),
        "partner_center_bound_s": round(pc["seconds"], 1) if pc is not None else None,
        "partner_center_bound": pc,
        "bound_by": binds,
        "workers_cpu_s": round(
            (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 1
        ),
        "load_before": load_before,
        "load_after": load_after,
    }


# -- the shared budget's own cost: python -m bench.scale --limiter ---------------------------------


async def limiter_run(limiter: Any, lanes: int, pairs: int, asynchronous: bool) -> dict[str, Any]:
    """``lanes`` coroutines each booking and answering ``pairs`` requests (budgets so large
    nothing waits) while a ticker measures how late the event loop runs it: what the worker's
    other requests would suffer."""
    cost = RequestCost(Family.IDENTITY, 1, 0)
    late: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            due = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            late.append(time.perf_counter() - due)

    async def lane(n: int) -> None:
        for i in range(pairs):
            tenant = f"t{(n * pairs + i) % 50}"
            booked = limiter.reserve(tenant, cost)
            if asynchronous:
                await booked
            limiter.record_response(tenant, cost, resource_units=1.0)
            await asyncio.sleep(0)  # a request's own awaits, as the sender has

    tick = asyncio.create_task(ticker())
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(lane(n) for n in range(lanes)))
    if asynchronous:
        await limiter.flush()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stop.set()
    await tick
    late.sort()
    total = lanes * pairs
    return {
        "limiter": "AsyncRedisLimiter" if asynchronous else "RedisLimiter",
        "lanes": lanes,
        "pairs": total,
        "wall_us_per_pair": round(wall / total * 1e6, 1),
        "cpu_us_per_pair": round(cpu / total * 1e6, 1),
        "pairs_per_s": round(total / wall),
        "round_trips": getattr(limiter, "round_trips", 2 * total),
        "loop_late_p50_ms": round(late[len(late) // 2] * 1e3, 2) if late else None,
        "loop_late_max_ms": round(late[-1] * 1e3, 2) if late else None,
        "load": load_average(),
    }


async def limiter_bench(lanes: int, pairs: int) -> list[dict[str, Any]]:
    rows = []
    for asynchronous in (False, True):
        namespace = f"bench-{uuid.uuid4().hex[:8]}"
        limiter: Any = (
            AsyncRedisLimiter(REDIS, namespace=namespace, scale=1000.0)
            if asynchronous
            else RedisLimiter(REDIS, namespace=namespace, scale=1000.0)
        )
        try:
            rows.append(await limiter_run(limiter, lanes, pairs, asynchronous))
        finally:
            limiter.drop()
            if asynchronous:
                await limiter.aclose()
            else:
                limiter.close()
    return rows


def print_limiter_table(rows: list[dict[str, Any]]) -> None:
    print(
        "| limiter | lanes | pairs | wall µs/pair | CPU µs/pair | pairs/s | round trips "
        "| loop late p50 / max ms | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['limiter']} | {r['lanes']} | {r['pairs']:,} | {r['wall_us_per_pair']} "
            f"| {r['cpu_us_per_pair']} | {r['pairs_per_s']:,} | {r['round_trips']:,} "
            f"| {r['loop_late_p50_ms']} / {r['loop_late_max_ms']} | {r['load'][0]} |"
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.limiter:
        rows = asyncio.run(limiter_bench(args.lanes, args.pairs))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "scale-limiter-latest.json").write_text(json.dumps(rows, indent=2))
        print_limiter_table(rows)
        return
    counts = [int(n) for n in args.workers.split(",")]
    world = fleet_world_data(args.customers, throttling=True, throttle_scale=args.throttle_scale)
    if args.latency != "off":
        world.setdefault("settings", {})["latency"] = {"preset": args.latency}
    with tempfile.TemporaryDirectory(prefix="cspgraph-bench-scale-") as tmp:
        work = Path(tmp)
        with EmulatorProcess(work, world) as emu:
            env = child_env(work / "home")
            config = work / "cspgraph.toml"
            init = subprocess.run(
                [str(BIN / "cspgraph"), "config", "init", "--from-emulator",
                 str(emu.endpoints_file), "--config", str(config), "--force"],
                env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            if init.returncode != 0:
                raise SystemExit(f"cspgraph config init failed: {init.stderr}")
            os.environ.update({k: v for k, v in env.items() if k.startswith("CSPGRAPH_")})
            customers = sorted(c["tenant_id"] for c in emu.manifest["customers"])
            rows = []
            for n in counts:
                row = run(emu, work, config, env, n, args, customers)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    RESULTS.mkdir(exist_ok=True)
    meta = {
        "customers": args.customers,
        "dap_known": args.dap_known,
        "latency": args.latency,
        "throttle_scale": args.throttle_scale,
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    (RESULTS / "scale-latest.json").write_text(json.dumps(meta, indent=2))
    print(
        "| workers | × concurrency | wall s | budget bound s | Partner Center bound s | binds "
        "| customers ok | requests | identity RU | 429s | Partner Center requests "
        "| emulator's 429s Graph / PC / sign-in | workers' CPU s | load avg before → after |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        refused = " / ".join(f"{r['hosts'][h]['throttled_429']:,}" for h in bound.HOSTS)
        pc = "-" if r["partner_center_bound_s"] is None else r["partner_center_bound_s"]
        print(
            f"| {r['workers']} | {r['concurrency']} | {r['wall_s']} | {r['budget_bound_s']} "
            f"| {pc} | {r['bound_by']} | {r['ok']} | {r['requests']:,} | {r['identity_ru']:,} "
            f"| {r['throttled']} | {r['partner_center_requests']:,} | {refused} "
            f"| {r['workers_cpu_s']} "
            f"| {r['load_before'][0]} → {r['load_after'][0]} |"
        )


if __name__ == "__main__":
    main()
