"""The emulator's speed (issue "Emulator II" §Speed): requests per second for an authenticated
page of users at a few concurrency levels, the emulator's CPU per request, and where that CPU
goes (cProfile inside the emulator process while it serves the load)."""

from __future__ import annotations

import json
import pstats
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from io import StringIO
from pathlib import Path
from typing import Any

from bench.child import child_env, reported_line, run_child
from bench.emulator import EmulatorProcess


def _page_tenant(emu: EmulatorProcess, page: int) -> dict[str, Any]:
    """A customer with at least a page of users (the smallest such, for a stable page)."""
    fits = [c for c in emu.manifest["customers"] if c["users"] >= page]
    return (
        min(fits, key=lambda c: c["users"])
        if fits
        else max(emu.manifest["customers"], key=lambda c: c["users"])
    )


def requests_per_second(
    emu: EmulatorProcess,
    workdir: Path,
    levels: list[int],
    seconds: float,
    page: int = 100,
    profile: bool = False,
) -> dict[str, Any]:
    customer = _page_tenant(emu, page)
    token = emu.fetch_tokens([customer])[customer["tenant_id"]]
    url = f"{emu.endpoints['graph']}/v1.0/users?$top={page}"
    rows = []
    for level in levels:
        where = workdir / f"rps-c{level}"
        where.mkdir(parents=True, exist_ok=True)
        job = where / "job.json"
        job.write_text(
            json.dumps({"ca_bundle": emu.endpoints["ca_bundle"], "url": url, "token": token,
                        "concurrency": level, "seconds": seconds})
        )  # fmt: skip
        emu.reset()
        before = emu.cpu()
        child = run_child(
            [sys.executable, "-m", "bench.runners.rps", str(job)],
            env=child_env(), logdir=where, timeout=seconds * 4 + 60,
        )  # fmt: skip
        emu_cpu = emu.cpu() - before
        line = reported_line(child.stdout) or {}
        served = emu.counters()["requests"].get("graph", 0)
        rows.append(
            {
                "concurrency": level,
                "rps": line.get("rps"),
                "p50_ms": line.get("p50_ms"),
                "p99_ms": line.get("p99_ms"),
                "requests": line.get("requests"),
                "statuses": line.get("statuses"),
                "emulator_cpu_ms_per_request": round(emu_cpu / served * 1000, 3)
                if served
                else None,
                "emulator_cpu_share": round(emu_cpu / max(line.get("seconds") or seconds, 1e-9), 2),
                "client_cpu_s": round(child.cpu, 2),
            }
        )
    out: dict[str, Any] = {
        "page": page,
        "tenant_users": customer["users"],
        "url": f"/v1.0/users?$top={page}",
        "levels": rows,
    }
    if profile:
        out["profile"] = profile_under_load(emu, workdir, url, token, seconds)
    return out


def profile_under_load(
    emu: EmulatorProcess, workdir: Path, url: str, token: str, seconds: float
) -> dict[str, Any]:
    where = workdir / "rps-profile"
    where.mkdir(parents=True, exist_ok=True)
    job = where / "job.json"
    job.write_text(
        json.dumps({"ca_bundle": emu.endpoints["ca_bundle"], "url": url, "token": token,
                    "concurrency": 16, "seconds": seconds})
    )  # fmt: skip
    cmd = [sys.executable, "-m", "bench.runners.rps", str(job)]
    return profile_emulator(emu, where, cmd, timeout=seconds * 4 + 60)


def profile_emulator(
    emu: EmulatorProcess, where: Path, cmd: list[str], timeout: float, rounds: int = 1
) -> dict[str, Any]:
    """Where the emulator's CPU goes while ``cmd`` loads it (``rounds`` times, the emulator's
    caches dropped before each): py-spy (sampling from outside the process, so the emulator runs
    at full speed) when it is installed, else cProfile inside."""

    def load() -> None:
        for _ in range(rounds):
            emu.reset()
            run_child(cmd, env=child_env(), logdir=where, timeout=timeout)

    pyspy = py_spy()
    if pyspy:
        out = where / "emulator.pyspy.txt"
        with PySpy(pyspy, emu.ps.pid, out):
            load()
        if out.exists() and out.stat().st_size:
            return summarize_pyspy(out)
    stats_file = where / "emulator.prof"
    emu.profile_start()
    load()
    emu.profile_stop(stats_file)
    return summarize_profile(stats_file)


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class PySpy:
    """``py-spy record`` on a process for as long as the block runs (stopped with SIGINT)."""

    def __init__(self, exe: str, pid: int, out: Path, rate: int = 500) -> None:
        self.cmd = [exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                    "--nonblocking", "-o", str(out)]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PySpy:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _frame_key(frame: str) -> str:
    found = _FRAME.match(frame.strip())
    if not found:
        return frame.strip()
    return f"{_short(found.group('file'))}({found.group('name')})"


# Where a client's CPU goes, by the first rule a sample's stack matches (root to leaf does not
# matter: a rule matches if any frame of the stack contains its marker).
CLIENT_AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("imports (start-up)", ("importlib._bootstrap",)),
    ("tokens (MSAL, discovery)", ("msal/", "cspgraph/identity/", "cspgraph/discovery.py")),
    (
        "store (SQLAlchemy, SQLite)",
        ("cspgraph/fleet/store.py", "cspgraph/fleet/schema.py", "sqlalchemy/", "sqlite3"),
    ),
    ("Graph client: JSON parse", ("cspgraph/http/sender.py(parse_json)",)),
    (
        "Graph client: HTTP, TLS, paging",
        ("cspgraph/graph/", "cspgraph/http/", "aiohttp/", "ssl.py", "sslproto"),
    ),
    ("sync orchestration", ("cspgraph/fleet/",)),
)


def summarize_pyspy(
    raw: Path, top: int = 30, areas: tuple[tuple[str, tuple[str, ...]], ...] = ()
) -> dict[str, Any]:
    """Own and inclusive shares of samples per function (line numbers folded together), and
    optionally the share of each area (``CLIENT_AREAS``)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_area: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_key(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for key in set(frames):
            inclusive[key] += count
        if areas:
            joined = ";".join(frames)
            area = next((name for name, marks in areas if any(m in joined for m in marks)), None)
            by_area[area or "other (event loop, CLI, runtime)"] += count

    def share(n: int) -> float:
        return round(n / total, 4) if total else 0.0

    by_own = [
        {"function": key, "samples": n, "share": share(n), "inclusive": share(inclusive[key])}
        for key, n in own.most_common(top)
    ]
    # Inclusive time is telling for the project's own functions; the frames every sample passes
    # through (event loop, ASGI stack, CLI, thread pool) say nothing.
    telling = [
        (k, n)
        for k, n in inclusive.most_common()
        if k.startswith(("cspgraph/", "bench/")) and not k.startswith(_FRAMEWORK)
    ]
    by_inclusive = [{"function": k, "samples": n, "share": share(n)} for k, n in telling[:top]]
    out = {"tool": "py-spy", "file": str(raw), "samples": total, "by_own": by_own,
           "by_inclusive": by_inclusive}  # fmt: skip
    if areas:
        out["areas"] = [{"area": k, "share": share(n)} for k, n in by_area.most_common()]
    return out


def profile_client(
    cmd: list[str], where: Path, env: dict[str, str], timeout: float
) -> dict[str, Any]:
    """py-spy on a client from its start (``--gil``: only samples holding the GIL, i.e. Python
    CPU time, not threads waiting on sockets), summarized by function and by area."""
    pyspy = py_spy()
    if pyspy is None:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    out = where / "client.pyspy.txt"
    wrapped = [pyspy, "record", "--gil", "--rate", "200", "--format", "raw", "-o", str(out), "--",
               *cmd]  # fmt: skip
    child = run_child(wrapped, env=env, logdir=where, timeout=timeout)
    if not out.exists():
        return {"error": f"py-spy wrote nothing (exit {child.returncode}): {child.stderr[-300:]}"}
    summary = summarize_pyspy(out, areas=CLIENT_AREAS)
    summary["cpu_s_under_profiler"] = round(child.cpu, 2)
    return summary


_FRAMEWORK = ("bench/serve.py", "csp_emulator/server.py", "cspgraph/cli/main.py", "cspgraph(")


def summarize_profile(stats_file: Path, top: int = 30) -> dict[str, Any]:
    stats = pstats.Stats(str(stats_file))
    total = stats.total_tt  # type: ignore[attr-defined]
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_cc, nc, tt, ct, _callers) in raw.items():
        rows.append(
            {
                "function": f"{_short(filename)}:{line}({name})",
                "calls": nc,
                "tottime_s": round(tt, 4),
                "cumtime_s": round(ct, 4),
                "tottime_share": round(tt / total, 4) if total else None,
                "cumtime_share": round(ct / total, 4) if total else None,
            }
        )
    by_tot = sorted(rows, key=lambda r: r["tottime_s"], reverse=True)[:top]
    by_cum = sorted(rows, key=lambda r: r["cumtime_s"], reverse=True)[:top]
    text = StringIO()
    pstats.Stats(str(stats_file), stream=text).sort_stats("cumulative").print_stats(40)
    (stats_file.parent / "emulator-profile.txt").write_text(text.getvalue())
    return {
        "file": str(stats_file),
        "total_s": round(total, 3),
        "by_tottime": by_tot,
        "by_cumtime": by_cum,
    }


def _short(filename: str) -> str:
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename
