"""The bench's clients, one after another against one emulator, and their figures.

Each client runs as a cold child process measured from the outside (:mod:`bench.child`). Each
runner also reports its own counters in one ``BENCH-RESULT`` JSON line; the emulator's counters
are read after the run and are the ones the table shows for requests and 429s.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.budgets import best_time
from bench.child import BIN, ROOT, child_env, reported_line, run_child
from bench.emulator import EmulatorProcess, load_average, partners
from bench.emulator_speed import profile_client
from bench.fleet import COUNT_KEYS
from bench.runners.common import KINDS

# The pull every runner makes (the plan): cspgraph sync's directoryRoles (admins) is left
# out, since no baseline fetches it.
SYNC_RESOURCES = ["--resources", ",".join(KINDS)]


def expected_for(manifest: dict[str, Any], customers: list[dict[str, Any]]) -> dict[str, int]:
    per = manifest["expected"]["tenants"]
    return {k: sum(per[c["tenant_id"]][k] for c in customers) for k in COUNT_KEYS}


def stratified_sample(
    manifest: dict[str, Any], customers: list[dict[str, Any]], n: int
) -> list[dict[str, Any]]:
    """``n`` customers evenly spaced through the fleet ranked by size, smallest to largest."""
    if n >= len(customers):
        return list(customers)
    per = manifest["expected"]["tenants"]
    ranked = sorted(customers, key=lambda c: (sum(per[c["tenant_id"]].values()), c["tenant_id"]))
    step = len(ranked) / n
    return [ranked[int(step * i + step / 2)] for i in range(n)]


def sqlite_counts(path: Path) -> dict[str, int]:
    """Rows a cspgraph sync stored, by the runners' names."""
    tables = {
        "users": "users",
        "groups": "groups",
        "devices": "devices",
        "organization": "organizations",
        "managedDevices": "managed_devices",
        "members": "group_members",
    }
    out: dict[str, int] = dict.fromkeys(tables, 0)
    if not path.exists():
        return out
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        for kind, table in tables.items():
            try:
                (out[kind],) = db.execute(f'SELECT count(*) FROM "{table}"').fetchone()
            except sqlite3.Error:
                out[kind] = -1
    return out


class Bench:
    """Runs each client against one emulator, one after another, and records the figures."""

    def __init__(
        self, emu: EmulatorProcess, workdir: Path, *, concurrency: int | None, timeout: float
    ) -> None:
        """``concurrency``: customers at once for ``cspgraph sync`` (``--concurrency``) and
        connections for the raw client; None: cspgraph's own default (an upper bound only: it
        adapts) and a raw client without any limit."""
        self.emu = emu
        self.emu_scale = 1.0  # the throttling scale in force, for the budget arithmetic
        self._fixed_cost: float | None = None
        self.workdir = workdir
        self.concurrency = concurrency
        self.timeout = timeout
        self.customers: list[dict[str, Any]] = emu.manifest["customers"]
        self.serial = 0

    def _dir(self, label: str) -> Path:
        self.serial += 1
        path = self.workdir / f"{self.serial:02d}-{label}"
        shutil.rmtree(path, ignore_errors=True)  # a reused work directory: no stale caches
        path.mkdir(parents=True)
        return path

    def _job(self, where: Path, customers: list[dict[str, Any]], plan: str, tokens: bool) -> Path:
        job: dict[str, Any] = {
            "endpoints": self.emu.endpoints,
            "partners": partners(),
            "customers": customers,
            "plan": plan,
            # Without a setting: no limit for the raw client (it shows what the emulator serves
            # at most); the SDK keeps the 16 customers at once its baseline was written with.
            "concurrency": self.concurrency or (0 if tokens else 16),
        }
        if tokens:
            job["tokens"] = self.emu.fetch_tokens(customers)
        path = where / "job.json"
        path.write_text(json.dumps(job))
        return path

    @staticmethod
    def _work(record: dict[str, Any]) -> None:
        startup = record.get("startup_cpu_s")
        work = None if startup is None else max(record["cpu_s"] - startup, 0.0)
        record["work_cpu_s"] = None if work is None else round(work, 3)
        items = record["items"]
        record["work_cpu_s_per_10k_items"] = (
            round(work / items * 10_000, 3) if work is not None and items else None
        )
        # Fetching and parsing alone: the work without token acquisition, which is what the raw
        # client does with the tokens it is given.
        fetch = None if work is None else max(work - (record.get("token_cpu_s") or 0.0), 0.0)
        record["fetch_cpu_s_per_10k_items"] = (
            round(fetch / items * 10_000, 4) if fetch is not None and items else None
        )

    def sync_fixed_cost(self, repeat: int = 3) -> float:
        """CPU of a ``cspgraph sync`` run that has almost nothing to pull (the smallest customer
        only): start-up, configuration, store creation and one tenant; the median of ``repeat``."""
        if self._fixed_cost is None:
            smallest = min(self.customers, key=lambda c: c["users"])
            samples = []
            for _ in range(repeat):
                where = self._dir("cspgraph-fixed-cost")
                config, env = self._config(where)
                db = where / "fleet.sqlite"
                cmd = [
                    str(BIN / "cspgraph"), "sync", "--config", str(config), "--db",
                    f"sqlite:///{db}", "--json", "--no-progress", *SYNC_RESOURCES,
                    "--customers", smallest["tenant_id"],
                ]  # fmt: skip
                child = run_child(cmd, env=env, logdir=where, timeout=self.timeout)
                samples.append(child.cpu)
            self._fixed_cost = round(sorted(samples)[len(samples) // 2], 3)
        return self._fixed_cost

    def job_file(self, where: Path, plan: str, *, tokens: bool) -> Path:
        return self._job(where, self.customers, plan, tokens)

    def measure(
        self,
        label: str,
        cmd: list[str],
        customers: list[dict[str, Any]],
        where: Path,
        env: dict[str, str],
        counts_from: Any = None,
    ) -> dict[str, Any]:
        self.emu.reset()
        load_before = load_average()
        emu_cpu = self.emu.cpu()
        child = run_child(cmd, env=env, logdir=where, timeout=self.timeout)
        emu_cpu = self.emu.cpu() - emu_cpu
        counters = self.emu.counters()
        reported = reported_line(child.stdout) or {}
        counts = counts_from() if counts_from else reported.get("counts", {})
        expected = expected_for(self.emu.manifest, customers)
        missing = {
            k: expected[k] - counts.get(k, 0) for k in COUNT_KEYS if counts.get(k) != expected[k]
        }
        items = sum(expected.values())
        graph_statuses = counters["statuses"].get("graph", {})
        problems = []
        if child.returncode != 0:
            problems.append(f"exit status {child.returncode}: {child.stderr.strip()[-400:]}")
        if missing:
            problems.append(f"objects missing (expected - got): {missing}")
        if reported.get("errors"):
            problems.append(f"errors: {reported['errors'][:3]}")
        record = {
            "runner": label,
            "ok": not problems,
            "problems": problems,
            "customers": len(customers),
            "wall_s": round(child.wall, 3),
            "cpu_s": round(child.cpu, 3),
            "user_s": round(child.user, 3),
            "sys_s": round(child.system, 3),
            # Start-up (interpreter, imports, set-up) as the runner reports it; the rest is work.
            "startup_cpu_s": reported.get("startup_cpu"),
            # Token acquisition inside the work, for runners that acquire their own (the raw
            # client's tokens are handed to it).
            "token_cpu_s": reported.get("token_cpu"),
            "http_versions": reported.get("http_versions"),
            "peak_rss_mb": round(child.max_rss_mb, 1),
            "items": items,
            "expected": expected,
            "counts": counts,
            "cpu_s_per_10k_items": round(child.cpu / items * 10_000, 3) if items else None,
            "requests_graph": counters["requests"].get("graph", 0),
            "requests_login": counters["requests"].get("authority_host", 0),
            "requests_partner_center": counters["requests"].get("partner_center", 0),
            "partner_center_statuses": counters["statuses"].get("partner_center", {}),
            "requests_reported": reported.get("requests"),
            "throttled_429": graph_statuses.get("429", 0),
            "throttled_reported": reported.get("throttled"),
            "graph_statuses": graph_statuses,
            "emulator_cpu_s": round(emu_cpu, 3),
            "load_before": load_before,
            "load_after": load_average(),
            "best_time": best_time(counters, customers, self.emu_scale),
            "logs": str(where),
        }
        self._work(record)
        r429 = record["throttled_429"]
        total = record["requests_graph"] or 1
        record["throttled_share"] = round(r429 / total, 4)
        return record

    # -- the runners ----------------------------------------------------------------------------
    def raw(self, plan: str, library: str = "aiohttp") -> dict[str, Any]:
        label = f"raw-{plan}" if library == "aiohttp" else f"raw-{library}-{plan}"
        where = self._dir(label)
        job = self._job(where, self.customers, plan, tokens=True)
        cmd = [sys.executable, "-m", "bench.runners.raw", str(job), library]
        return self.measure(label, cmd, self.customers, where, child_env())

    def sample(self) -> dict[str, Any]:
        where = self._dir("sample")
        job = self._job(where, self.customers, "list", tokens=False)
        cmd = [sys.executable, "-m", "bench.runners.sample", str(job)]
        return self.measure("sample", cmd, self.customers, where, child_env())

    def sample_scaled(self, sample: int) -> dict[str, Any]:
        """The docs sample on ``sample`` customers spread over the fleet's sizes, scaled to the
        fleet (sequential by design: the whole fleet would take hours at Graph's latency)."""
        where = self._dir("sample")
        chosen = stratified_sample(self.emu.manifest, self.customers, sample)
        job = self._job(where, chosen, "list", tokens=False)
        cmd = [sys.executable, "-m", "bench.runners.sample", str(job)]
        return self._scaled(self.measure("sample", cmd, chosen, where, child_env()), chosen)

    def sdk(self, sample: int) -> dict[str, Any]:
        where = self._dir("sdk")
        chosen = stratified_sample(self.emu.manifest, self.customers, sample)
        job = self._job(where, chosen, "list", tokens=False)
        cmd = [sys.executable, "-m", "bench.runners.sdk", str(job)]
        return self._scaled(self.measure("sdk", cmd, chosen, where, child_env()), chosen)

    def _scaled(self, record: dict[str, Any], chosen: list[dict[str, Any]]) -> dict[str, Any]:
        """A sampled run's figures scaled to the whole fleet by the objects pulled."""
        full = expected_for(self.emu.manifest, self.customers)
        factor = sum(full.values()) / max(record["items"], 1)
        record["sampled"] = len(chosen) < len(self.customers)
        record["scale_factor"] = round(factor, 3)
        startup = record["startup_cpu_s"] or 0.0
        # Start-up is paid once; everything after it grows with the objects pulled.
        record["scaled"] = {
            "customers": len(self.customers),
            "items": sum(full.values()),
            "cpu_s": round(startup + (record["cpu_s"] - startup) * factor, 1),
            "wall_s": round(record["wall_s"] * factor, 1),
            "requests_graph": round(record["requests_graph"] * factor),
        }
        return record

    def _concurrency_option(self) -> list[str]:
        return [] if self.concurrency is None else ["--concurrency", str(self.concurrency)]

    def _config(self, where: Path) -> tuple[Path, dict[str, str]]:
        """A fresh cspgraph configuration for the emulator's demo partners, and a fresh home."""
        config = where / "config" / "cspgraph.toml"
        env = child_env(where / "home")
        init = subprocess.run(
            [str(BIN / "cspgraph"), "config", "init", "--from-emulator",
             str(self.emu.endpoints_file), "--config", str(config), "--force"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"cspgraph config init failed: {init.stderr or init.stdout}")
        return config, env

    def cspgraph(
        self, *, label: str = "cspgraph", extra: list[str] | None = None, fixed_cost: bool = True
    ) -> dict[str, Any]:
        where = self._dir(label)
        config, env = self._config(where)
        db = where / "fleet.sqlite"
        cmd = [
            str(BIN / "cspgraph"), "sync", "--config", str(config), "--db", f"sqlite:///{db}",
            "--json", "--no-progress", *SYNC_RESOURCES, *self._concurrency_option(),
            *(extra or []),
        ]  # fmt: skip
        record = self.measure(
            label, cmd, self.customers, where, env, counts_from=lambda: sqlite_counts(db)
        )
        if record["ok"] and fixed_cost:
            # The CLI cannot report its own start-up; a near-empty sync measures it.
            record["startup_cpu_s"] = self.sync_fixed_cost()
            record["startup_estimated"] = True
            self._work(record)
        try:
            summary = json.loads((where / "stdout.txt").read_text())
            record["sync_summary"] = {k: v for k, v in summary.items() if k != "tenants"}
        except (ValueError, OSError):
            record["sync_summary"] = None
        record["db_mb"] = round(db.stat().st_size / 2**20, 1) if db.exists() else None
        return record

    def profile_sync(self) -> dict[str, Any]:
        """Where ``cspgraph sync``'s CPU goes (py-spy from outside the process)."""
        where = self._dir("cspgraph-profile")
        config, env = self._config(where)
        db = where / "fleet.sqlite"
        cmd = [
            str(BIN / "cspgraph"), "sync", "--config", str(config), "--db", f"sqlite:///{db}",
            "--json", "--no-progress", *SYNC_RESOURCES, *self._concurrency_option(),
        ]  # fmt: skip
        self.emu.reset()
        return profile_client(cmd, where, env, self.timeout)

    def cspgraph_fetch(self) -> dict[str, Any]:
        where = self._dir("cspgraph-fetch")
        config, env = self._config(where)
        job = self._job(where, self.customers, "delta", tokens=False)
        cmd = [sys.executable, "-m", "bench.runners.cspgraph_fetch", str(job), str(config)]
        return self.measure("cspgraph-fetch", cmd, self.customers, where, env)


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
