"""Running a program as a cold child process and measuring it from the outside.

Wall time is the child's whole life (start-up included); CPU is the child's own user+sys time and
peak RSS its own maximum resident set, both from ``wait4`` on that child alone, so the emulator's
work (another process) and the other engineers' jobs on this machine never count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULT_PREFIX = "BENCH-RESULT "


@dataclass
class ChildRun:
    returncode: int
    wall: float
    user: float
    system: float
    max_rss_mb: float
    stdout: str
    stderr: str

    @property
    def cpu(self) -> float:
        return self.user + self.system


def child_env(home: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # A CA bundle in the environment would override the clients' own trust settings (traps §3).
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        env.pop(name, None)
    # Clients run as installed ones do, with their bytecode cached (pip compiles it at install
    # time). A PYTHONDONTWRITEBYTECODE in the environment (this machine sets one) would make
    # every cold process recompile the project's own modules: 40-60 ms more per run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    if home is not None:
        for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
            env[name] = str(home / name.lower())
    return env


def run_child(cmd: list[str], *, env: dict[str, str], logdir: Path, timeout: float) -> ChildRun:
    logdir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logdir / "stdout.txt", logdir / "stderr.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildRun(
        returncode=proc.returncode,
        wall=wall,
        user=usage.ru_utime,
        system=usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


def reported_line(stdout: str) -> dict[str, Any] | None:
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])  # type: ignore[no-any-return]
    return None
