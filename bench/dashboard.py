"""``python -m bench.dashboard``: the dashboard over a 5,000-customer store (docs/benchmarks.md,
"Dashboard search at 5,000 customers").

Builds a store the size of a large CSP fleet without syncing it (a sync of 5,000 customers is
the fleet benchmark's business, not this one's): customers with the fleet benchmark's size mix
(bench/fleet.py: small, medium and large tenants), their users, managed devices, Global
Administrators, licences and organisation, one recorded run with each customer's figures, and
a few failing, never-synced and gone customers. Then serves it with ``cspgraph.dashboard`` on a
loopback port and times whole HTTP requests (socket to last byte) of the pages people use:
searches (also while the checks run), filters, sorts, a far page, a customer's page, needs
action; how long the checks take over the whole store, and each check alone.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, insert, select

from bench.fleet import customer_sizes
from cspgraph.dashboard.server import serve
from cspgraph.fleet.checks import CHECKS, Finding
from cspgraph.fleet.checks.facts import Facts
from cspgraph.fleet.history_schema import customer_state, run_customers, runs
from cspgraph.fleet.resources import GLOBAL_ADMIN_TEMPLATE
from cspgraph.fleet.schema import (
    customers,
    directory_roles,
    managed_devices,
    organizations,
    role_members,
    subscribed_skus,
    users,
)
from cspgraph.fleet.store import Store

RUN = "bench-run-1"
WORDS = ("Contoso", "Fabrikam", "Northwind", "Tailspin", "Adatum", "Litware", "Proseware")
KINDS = ("Ltd", "GmbH", "SA", "Inc", "BV", "AB", "Oy")
OSES = (("Windows", "10.0.26100.2605"), ("iOS", "18.2"), ("Android", "15"), ("macOS", "15.2"))
BATCH = 20_000


def tenant_id(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-{i:012x}"


def build(store: Store, count: int, seed: int) -> dict[str, Any]:
    """The store's rows; returns what was built (rows per table)."""
    rng = random.Random(f"bench-dashboard/{seed}")
    sizes = customer_sizes(count, seed)
    now = datetime.now(UTC)
    made: dict[str, int] = {}
    pending: dict[Any, list[dict[str, Any]]] = {}

    def add(table: Any, row: dict[str, Any]) -> None:
        rows = pending.setdefault(table, [])
        rows.append(row)
        if len(rows) >= BATCH:
            flush(table)

    def flush(table: Any) -> None:
        rows = pending.pop(table, [])
        if rows:
            with store.engine.begin() as conn:
                conn.execute(insert(table), rows)
            made[table.name] = made.get(table.name, 0) + len(rows)

    with store.engine.begin() as conn:
        conn.execute(
            insert(runs),
            [{"run_id": RUN, "started_at": now - timedelta(minutes=20), "finished_at": now,
              "outcome": "completed", "listed": "partner_center", "customers": count}],
        )  # fmt: skip
    for i, size in enumerate(sizes):
        t = tenant_id(i)
        name = f"{rng.choice(WORDS)} {i:04d} {rng.choice(KINDS)}"
        domain = f"{name.split()[0].lower()}{i:04d}.onmicrosoft.com"
        draw = rng.random()
        status = (
            None if draw < 0.01 else "needs_person" if draw < 0.03 else "failed" if draw < 0.07
            else "propagating" if draw < 0.08 else "ok"
        )  # fmt: skip
        synced = status is not None and (status == "ok" or rng.random() < 0.7)
        add(customers, {
            "tenant_id": t, "domain": domain, "display_name": name,
            "region": "NA" if i % 3 else "EU", "status": status,
            "status_reason": None if status in ("ok", None) else "AADSTS7000215: invalid secret",
            "error_class": None if status in ("ok", None) else "needs_person",
            "status_at": now, "last_sync_at": now - timedelta(hours=1) if synced else None,
        })  # fmt: skip
        if not synced:
            continue
        managed = size // 5
        noncompliant = guests = disabled = 0
        for u in range(size):
            guest = u % 40 == 39
            enabled = u % 25 != 24
            guests += guest
            disabled += not enabled
            add(users, {
                "tenant_id": t, "id": f"u{u}", "upn": f"user{u}@{domain}",
                "display_name": f"User {u}", "account_enabled": enabled,
                "user_type": "Guest" if guest else "Member",
                "licenses": "" if guest else "sku-e3", "raw": {"id": f"u{u}"}, "seen_run": RUN,
            })  # fmt: skip
        for d in range(managed):
            os_name, version = OSES[d % len(OSES)]
            state = "noncompliant" if d % 17 == 16 else "compliant"
            noncompliant += state == "noncompliant"
            add(managed_devices, {
                "tenant_id": t, "id": f"m{d}", "device_name": f"DEV-{d:05d}",
                "operating_system": os_name, "compliance_state": state, "user_id": f"u{d}",
                "last_sync": now - timedelta(days=d % 45), "os_version": version,
                "is_encrypted": d % 23 != 22, "raw": {"id": f"m{d}"}, "seen_run": RUN,
            })  # fmt: skip
        admins = min(size, 1 + i % 6)
        add(directory_roles, {"tenant_id": t, "role_template_id": GLOBAL_ADMIN_TEMPLATE,
                              "display_name": "Global Administrator"})  # fmt: skip
        for a in range(admins):
            add(role_members, {"tenant_id": t, "role_template_id": GLOBAL_ADMIN_TEMPLATE,
                               "member_id": f"u{a}", "member_type": "user",
                               "display_name": f"user{a}@{domain}"})  # fmt: skip
        bought = size - guests + rng.randint(0, 20)
        assigned = size - guests
        add(subscribed_skus, {
            "tenant_id": t, "id": "sku-e3", "sku_id": "sku-e3", "sku_part_number": "SPE_E3",
            "capability_status": "Enabled", "prepaid_units": bought, "consumed_units": assigned,
            "raw": {"id": "sku-e3"}, "seen_run": RUN,
        })  # fmt: skip
        add(organizations, {"tenant_id": t, "id": t, "display_name": name, "country": "US",
                            "raw": {"id": t}, "seen_run": RUN})  # fmt: skip
        add(run_customers, {
            "run_id": RUN, "tenant_id": t, "finished_at": now, "status": "ok",
            "region": "NA" if i % 3 else "EU", "modes": {}, "received": {}, "seconds": 1.0,
            "figures": {"users": size, "users_enabled": size - disabled, "guests": guests,
                        "admins": admins, "privileged": admins, "managed": managed,
                        "noncompliant": noncompliant, "unencrypted": managed // 23,
                        "licences_bought": bought, "licences_assigned": assigned},
        })  # fmt: skip
        add(customer_state, {
            "tenant_id": t, "failing_runs": 0 if status == "ok" else 1 + i % 4,
            "failing_since": None if status == "ok" else now - timedelta(days=i % 4),
            "last_run_id": RUN, "state_run_id": RUN,
            "gone_since": now - timedelta(days=3) if i % 500 == 499 else None,
        })  # fmt: skip
    for table in list(pending):
        flush(table)
    if store.engine.dialect.name == "postgresql":
        # What autovacuum does to a store in use; this machine's server runs with autovacuum
        # off, and without statistics the planner nests loops over whole tables (measured:
        # 400 ms for a search that takes 40 ms analysed).
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    return made


def timed_get(port: int, path: str) -> tuple[float, int, int]:
    """Seconds from connect to the last byte, the status and the body's size."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return time.perf_counter() - started, response.status, len(body)


def measure(store: Store, repeats: int) -> list[dict[str, Any]]:
    server = serve(store)  # starts running the checks in the background
    server.serve_in_thread()
    port = int(server.server_address[1])
    search = "/customers?q=" + quote("northwind 12")
    try:
        results = []
        # While the first check run is under way: the list must not wait for it.
        during = [timed_get(port, search)[0] * 1000 for _ in range(3)]
        busy = not server.pages.checks.wait_idle(0)
        server.pages.checks.wait_idle(3600)
        evaluated = server.pages.checks.peek()
        assert evaluated is not None
        results.append({"page": "every check over the store (background)", "path": "-",
                        "median_ms": evaluated.seconds * 1000,
                        "max_ms": evaluated.seconds * 1000, "n": 1})  # fmt: skip
        if busy:
            results.append({"page": "search while the checks run", "path": search,
                            "median_ms": statistics.median(during), "max_ms": max(during),
                            "n": len(during)})  # fmt: skip
        pages = [
            ("needs action", "/"),
            ("customers, first page", "/customers"),
            ("search: part of a name", search),
            ("search: a domain", "/customers?q=tailspin4321.onmicrosoft"),
            ("search: tenant id prefix", "/customers?q=00000fa0"),
            ("search: no match", "/customers?q=zzzz-nothing"),
            ("filter: failed, sorted by users", "/customers?status=failed&sort=users"),
            ("sort: non-compliant, the most first", "/customers?sort=noncompliant"),
            ("search + filter + sort", "/customers?q=contoso&region=EU&sort=unused"),
            ("page 80 of 100", "/customers?page=80"),
            ("a large customer's page", "/customers/" + tenant_id(largest(store))),
        ]
        for label, path in pages:
            times = []
            for _ in range(repeats):
                seconds, status, size = timed_get(port, path)
                assert status == 200, (path, status)
                times.append(seconds * 1000)
            results.append({"page": label, "path": path, "median_ms": statistics.median(times),
                            "max_ms": max(times), "n": repeats, "bytes": size})  # fmt: skip
        return results
    finally:
        server.shutdown()
        server.server_close()


def time_checks(store: Store) -> list[dict[str, Any]]:
    """Reading the facts, then each check alone over them (nothing it reads shared with the
    others: the memo is emptied between checks), in seconds, on one read transaction."""
    rows = []
    with store.reading() as conn:
        started = time.perf_counter()
        facts = Facts.read(conn, datetime.now(UTC))
        rows.append({"check": "(the facts every run reads first)",
                     "seconds": time.perf_counter() - started, "found": 0})  # fmt: skip
        for check in CHECKS:
            facts._memo.clear()
            started, cpu = time.perf_counter(), time.process_time()
            outcomes = list(check.run(facts, check))
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            findings = [o for o in outcomes if isinstance(o, Finding)]
            rows.append({"check": check.id, "seconds": seconds, "cpu": cpu,
                         "found": len(findings),
                         "objects": sum(len(f.objects) for f in findings)})  # fmt: skip
    return rows


def largest(store: Store) -> int:
    with store.reading() as conn:
        tenant = conn.execute(
            select(users.c.tenant_id).group_by(users.c.tenant_id).order_by(func.count().desc())
        ).first()
    assert tenant is not None
    return int(tenant[0].split("-")[0], 16)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    p.add_argument("--customers", type=int, default=5000)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--db", help="a store URL to fill (default: a new SQLite file)")
    p.add_argument("--reuse", action="store_true",
                   help="measure the store --db names as an earlier run filled it, without "
                   "building it (to compare two versions of the code on one store)")  # fmt: skip
    p.add_argument("--checks-only", action="store_true",
                   help="with --reuse: time the checks alone, not the pages")  # fmt: skip
    args = p.parse_args(argv)
    if args.reuse and not args.db:
        p.error("--reuse needs --db")
    if args.checks_only:
        if not args.reuse:
            p.error("--checks-only needs --reuse")
        with Store.open(args.db) as store:
            print_checks(time_checks(store))
        print(f"load average: {os.getloadavg()[0]:.1f} (2 cores)")
        return
    with tempfile.TemporaryDirectory(prefix="cspgraph-bench-dashboard-") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'fleet.db'}"
        with Store.open(url) as store:
            if not args.reuse:
                started = time.perf_counter()
                made = build(store, args.customers, args.seed)
                print(f"built {args.customers:,} customers in "
                      f"{time.perf_counter() - started:.1f} s: "
                      + ", ".join(f"{k} {v:,}" for k, v in made.items()))  # fmt: skip
            results = measure(store, args.repeats)
            checks = time_checks(store)
        print(f"load average during the run: {os.getloadavg()[0]:.1f} (2 cores)")
        print(f"\n{'page':<40} {'median ms':>10} {'max ms':>9} {'n':>3}  path")
        for r in results:
            print(f"{r['page']:<40} {r['median_ms']:>10.1f} {r['max_ms']:>9.1f} {r['n']:>3}  "
                  f"{r['path']}")  # fmt: skip
        print_checks(checks)


def print_checks(checks: list[dict[str, Any]]) -> None:
    # CPU: this process's (SQLite's work included; PostgreSQL's server is another process).
    head = f"{'check, alone over the store':<36} {'seconds':>8} {'CPU s':>6} {'findings':>9}"
    head += f" {'objects':>8}"
    print(f"\n{head}")
    for c in checks:
        cpu = f"{c['cpu']:>6.2f}" if "cpu" in c else " " * 6
        print(f"{c['check']:<36} {c['seconds']:>8.2f} {cpu} {c['found']:>9,} "
              f"{c.get('objects', 0):>8,}")  # fmt: skip


if __name__ == "__main__":
    main()
