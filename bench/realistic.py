"""The realistic regime (``python -m bench``, the default): Graph's latency and budgets on.

The emulator answers with its ``realistic`` latency preset (docs/emulator.md: ~0.15 s + 1.5 ms an
object per Graph page, ~0.3 s per sign-in request, ±25 % jitter, 1 % of answers 5× slower) and
Graph's published budgets, delta pages capped as Graph caps them (200 objects, 500 memberships).
Fleets of 200 and 5,000 customers; the 5,000 include a few very large tenants (50,000 users
each), whose delta chains are long. Rows, each from a cold process:

* ``cspgraph sync`` into a fresh SQLite file, with its defaults (``--concurrency`` is a cap);
* the raw client (aiohttp + orjson, pre-fetched tokens) with no limit on connections;
* the docs sample (MSAL + requests, sequential) on a sample of customers spread over the fleet's
  sizes, scaled to the fleet by objects (sequential at Graph's latency, the whole fleet would
  take hours; the sample leaves out the very large tenants, so its scaled figure flatters it);
* msgraph-sdk as its docs show it, sampled and scaled the same way.

Every run gets its own lower bound (:mod:`bench.bound`): the longest of its customers' chains of
dependent requests × the latency the emulator applied to them (+ start-up), Graph's budget
arithmetic (:mod:`bench.budgets`) or Partner Center's 500 requests a minute per partner tenant,
whichever is largest; the requests in flight are counted on the emulator's side, and the requests
and 429s of every host (Graph, Partner Center, sign-in) from the emulator's counters. The
machine's load average is recorded beside each run: on a shared machine the wall times are
disturbed, which the table says.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import bound, report_realistic
from bench.budgets import best_time
from bench.child import BIN, ROOT, child_env
from bench.emulator import EmulatorProcess, load_average
from bench.fleet import fleet_world_data
from bench.harness import Bench, cleanup

RESULTS = Path(__file__).parent / "results"
ROWS = ("cspgraph", "raw", "sample", "sdk")
# "A few very large tenants" in the 5,000 fleet: three of 50,000 users.
LARGE_USERS = (50_000, 50_000, 50_000)
LARGE_FROM = 1000  # fleets at least this big get them
# What each row's process costs before its first request (imports): the least of a few runs.
STARTUP = {
    "cspgraph": [str(BIN / "cspgraph"), "--help"],
    "raw": [sys.executable, "-c", "import aiohttp, orjson"],
    "sample": [sys.executable, "-c", "import msal, requests"],
    "sdk": [sys.executable, "-c", "import msgraph, azure.identity"],
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fleets", default=None, help="fleet sizes (default 200,5000; 40 with --quick)")
    p.add_argument(
        "--sample-size",
        type=int,
        default=None,
        help="customers the docs sample runs on, scaled (default 8; 3 with --quick); the SDK "
        "runs on half as many",
    )
    p.add_argument("--rows", default=",".join(ROWS), help=f"rows, of {','.join(ROWS)}")


def realistic_world(customers: int, seed: int) -> dict[str, Any]:
    """The bench fleet (bench.fleet) with the latency preset, Graph's budgets, and for a big
    fleet a few very large tenants in place of as many ordinary ones (the size stays)."""
    data = fleet_world_data(customers, seed=seed, throttling=True, throttle_scale=1.0)
    data["settings"]["latency"] = {"preset": "realistic"}
    if customers >= LARGE_FROM:
        generated = [t for t in data["tenant"] if t.get("kind") == "customer"]
        for tenant, users in zip(generated[: len(LARGE_USERS)], LARGE_USERS, strict=True):
            devices = int(users * 0.4)
            # Two groups: the generator puts up to half the users in each group, and a few
            # groups of 25,000 members already make the groups delta the longest chain.
            tenant["generate"].update(
                users=users, groups=2, devices=devices, managed_devices=int(devices * 0.72)
            )
    return data


def startup_seconds(name: str) -> float:
    env = child_env()
    walls = []
    for _ in range(3):
        started = time.perf_counter()
        done = subprocess.run(STARTUP[name], env=env, cwd=ROOT, capture_output=True, check=False)
        if done.returncode != 0:
            return 0.0  # not installed: the run itself will say so
        walls.append(time.perf_counter() - started)
    return min(walls)


def with_bound(bench: Bench, record: dict[str, Any], startup_s: float) -> dict[str, Any]:
    """The run's lower bound and its requests in flight, from the emulator's latency log."""
    records = bound.latency_log(bench.emu.control)
    if record.get("logs"):  # kept with --keep, for looking at a run's timeline
        (Path(record["logs"]) / "latency-log.json").write_text(json.dumps(records))
    budgets = record.get("best_time") or best_time({}, [], 1.0)
    settings = bench.emu.control("GET", "/_emulator/settings")
    record["bound"] = bound.of_run(records, startup_s, budgets, settings)
    record["chain_gaps"] = bound.chain_gaps(records, record["bound"]["chain"])
    # Every host's requests and 429s (the counters are the run's until the next run resets them).
    record["hosts"] = bound.per_host(bench.emu.counters())
    record["in_flight_peak"] = bound.in_flight_peak(records)
    record["login_in_flight_peak"] = bound.in_flight_peak(records, "login")
    if record.get("sampled"):
        # The bound of the sample's own run; the scaled wall is compared with the fleet's.
        record["bound"]["of_sample"] = True
    return record


def run_fleet(size: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    say = report_realistic.say
    say(f"[{size}] building the world (latency preset realistic, Graph's budgets on) ...")
    world = realistic_world(size, args.seed)
    out: dict[str, Any] = {"customers": size, "runs": [], "load_at_start": load_average()}
    with EmulatorProcess(workdir, world, name=f"emulator-{size}") as emu:
        totals = emu.manifest["expected"]["totals"]
        out["fleet"] = {
            "totals": totals,
            "items": sum(totals.values()),
            "world_build_s": round(emu.build_seconds, 1),
            "emulator_rss_mb": round(emu.rss_mb(), 1),
            "large_tenants": list(LARGE_USERS) if size >= LARGE_FROM else [],
        }
        say(f"[{size}] emulator up in {emu.build_seconds:.0f} s: {totals}")
        bench = Bench(emu, workdir / f"fleet-{size}", concurrency=None, timeout=args.row_timeout)
        bench.emu_scale = 1.0
        plan: list[tuple[str, str, Any]] = []
        if "cspgraph" in args.row_set:
            plan.append(("cspgraph", "cspgraph", lambda: bench.cspgraph(fixed_cost=False)))
        if "raw" in args.row_set:
            plan.append(("raw", "raw", lambda: bench.raw("delta")))
        if "sample" in args.row_set:
            plan.append(("sample", "sample", lambda: bench.sample_scaled(args.sample_size)))
        if "sdk" in args.row_set:
            # Half the sample: the SDK spends ~15 ms of CPU an object (the CPU view).
            plan.append(("sdk", "sdk", lambda: bench.sdk(max(2, args.sample_size // 2))))
        for name, startup_key, run in plan:
            say(f"[{size}] {name} ...")
            startup_s = startup_seconds(startup_key)
            try:
                record = with_bound(bench, run(), startup_s)
            except Exception as exc:  # a broken client is a failed row, not a failed bench
                say(f"[{size}] {name} failed: {exc}")
                out["runs"].append({"runner": name, "ok": False, "problems": [repr(exc)]})
                continue
            record["row"] = name
            out["runs"].append(record)
            say(report_realistic.one_line(size, record))
    return out


def main(args: argparse.Namespace) -> int:
    if args.fleets is None:
        args.fleets = "40" if args.quick else "200,5000"
    if args.sample_size is None:
        args.sample_size = 3 if args.quick else 8
    args.row_set = {r.strip() for r in args.rows.split(",") if r.strip()}
    args.row_timeout = min(args.timeout, 900.0)  # a row that takes longer is a failed row
    unknown = args.row_set - set(ROWS)
    if unknown:
        raise SystemExit(f"--rows: unknown {sorted(unknown)}; expected some of {','.join(ROWS)}")
    out_path = args.out or RESULTS / ("realistic-quick.json" if args.quick else "realistic.json")
    if args.render is not None:
        saved = json.loads(args.render.read_text())
        print(report_realistic.text(saved, markdown=False))
        if not args.no_docs:
            report_realistic.update_docs(saved)
        return 0
    started = time.time()
    workdir = Path(args.workdir) if args.workdir else Path(os.environ.get("TMPDIR", "/tmp"))
    workdir = workdir / f"cspgraph-bench-realistic-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "machine": {"nproc": os.cpu_count(), "load_at_start": load_average()},
        "quick": args.quick,
        "fleets": {},
    }
    try:
        for size in [int(s) for s in args.fleets.split(",") if s.strip()]:
            results["fleets"][str(size)] = run_fleet(size, args, workdir)
        results["targets"] = report_realistic.targets(results)
        results["seconds"] = round(time.time() - started, 1)
        report_realistic.write_json(results, out_path)
        print(report_realistic.text(results, markdown=False))
        print(f"\nraw figures: {out_path}")
        if not (args.quick or args.no_docs):
            report_realistic.update_docs(results)
            print(f"summary: {report_realistic.DOCS}")
    finally:
        if not args.keep:
            cleanup(workdir)
    return 0
