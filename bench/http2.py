"""HTTP/1.1 with many connections, or HTTP/2: measured at Graph's latency (issue 16).

``python -m bench.http2 [--customers 200] [--rows aiohttp,httpx,httpx2] [--keep]``

The realistic world (:mod:`bench.realistic`: the latency preset, Graph's budgets, capped delta
pages), its Graph host served by hypercorn (:mod:`bench.h2_server`: ``h2`` and ``http/1.1`` by
ALPN on one TLS socket, the same ASGI app), and the raw client (tokens handed to it, no limit
on connections, every customer's every resource at once) in three forms, each from a cold
process against the same server:

* ``aiohttp``: HTTP/1.1, a connection per request in flight (cspgraph's HTTP stack);
* ``httpx``: HTTP/1.1 the same way, on httpx;
* ``httpx2``: httpx with ``http2=True``: one connection to the Graph host, requests as streams
  (at most the server's ``SETTINGS_MAX_CONCURRENT_STREAMS`` at once, 100 here).

Each row gets the realistic regime's lower bound (:func:`bench.realistic.with_bound`), so the
figures are wall ÷ bound, client CPU, peak RSS and the requests in flight seen by the server.
Nothing here goes into docs/benchmarks.md by itself: the figures are written there by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.emulator import EmulatorProcess, load_average
from bench.harness import Bench, cleanup
from bench.realistic import realistic_world, startup_seconds, with_bound

ROWS = ("aiohttp", "httpx", "httpx2")
RESULTS = Path(__file__).parent / "results" / "http2.json"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.http2", description=__doc__.split("\n")[0])
    p.add_argument("--customers", type=int, default=200)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--rows", default=",".join(ROWS), help=f"of {','.join(ROWS)}")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per row")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    rows = [r for r in args.rows.split(",") if r]
    unknown = set(rows) - set(ROWS)
    if unknown:
        raise SystemExit(f"--rows: unknown {sorted(unknown)}; expected some of {','.join(ROWS)}")
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"cspgraph-bench-http2-{os.getpid()}"
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "python -m bench.http2 " + " ".join(sys.argv[1:] if argv is None else argv),
        "customers": args.customers,
        "load_at_start": load_average(),
        "runs": [],
    }
    world = realistic_world(args.customers, args.seed)
    startup = startup_seconds("raw")
    try:
        with EmulatorProcess(workdir, world, serve_args=("--graph-http2",)) as emu:
            bench = Bench(emu, workdir / "runs", concurrency=None, timeout=args.timeout)
            for row in rows:
                record = with_bound(bench, bench.raw("delta", row), startup)
                record["row"] = row
                out["runs"].append(record)
                print(one_line(record), flush=True)
    finally:
        if not args.keep:
            cleanup(workdir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"raw figures: {args.out}")
    return 0


def one_line(r: dict[str, Any]) -> str:
    bound = r["bound"]["seconds"]
    return (
        f"{r['row']}: wall {r['wall_s']:.1f} s, bound {bound:.1f} s ({r['wall_s'] / bound:.2f}×), "
        f"client CPU {r['cpu_s']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB, "
        f"peak in flight {r['in_flight_peak']}, requests {r['requests_graph']}, "
        f"versions {r.get('http_versions')}, complete {'yes' if r['ok'] else r['problems']}, "
        f"load {r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
