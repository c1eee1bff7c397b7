"""Start-up costs: ``import cspgraph``, ``cspgraph --help`` and ``import msgraph``, each in a
fresh interpreter, median of several runs; plus ``-X importtime``'s own figure for the package."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.child import BIN, ROOT, child_env

PY = sys.executable
CASES: dict[str, list[str]] = {
    "python -c pass (interpreter alone)": [PY, "-c", "pass"],
    "import cspgraph": [PY, "-c", "import cspgraph"],
    "cspgraph --help": [str(BIN / "cspgraph"), "--help"],
    "import msgraph": [PY, "-c", "import msgraph"],
    "from msgraph import GraphServiceClient": [PY, "-c", "from msgraph import GraphServiceClient"],
}


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - started


def _importtime(module: str, env: dict[str, str]) -> float | None:
    """``-X importtime``'s cumulative microseconds for ``module``, in seconds."""
    done = subprocess.run(
        [PY, "-X", "importtime", "-c", f"import {module}"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    pattern = re.compile(rf"import time:\s+\d+ \|\s+(\d+) \|\s?{re.escape(module)}$")
    for line in done.stderr.splitlines():
        found = pattern.match(line.rstrip())
        if found:
            return int(found.group(1)) / 1e6
    return None


def measure(runs: int = 9) -> dict[str, Any]:
    env = child_env()
    out: dict[str, Any] = {"runs": runs, "wall_median_s": {}, "wall_min_s": {}, "importtime_s": {}}
    for name, cmd in CASES.items():
        _wall(cmd, env)  # one unmeasured run: the files are in the page cache like on any 2nd run
        walls = [_wall(cmd, env) for _ in range(runs)]
        out["wall_median_s"][name] = round(statistics.median(walls), 4)
        out["wall_min_s"][name] = round(min(walls), 4)
    for module in ("cspgraph", "msgraph"):
        values = [v for v in (_importtime(module, env) for _ in range(5)) if v is not None]
        out["importtime_s"][module] = round(statistics.median(values), 4) if values else None
    base = out["wall_median_s"]["python -c pass (interpreter alone)"]
    out["net_of_interpreter_s"] = {
        name: round(v - base, 4)
        for name, v in out["wall_median_s"].items()
        if not name.startswith("python")
    }
    return out
