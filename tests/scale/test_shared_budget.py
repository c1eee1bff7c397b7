"""The shared budget holds across processes: against the emulator's Graph with its budgets scaled
down until the app's identity budget binds, two worker processes sharing the Redis budget get no
more 429s than one process doing the same work alone — while two processes that each pace
themselves (a limiter of their own, each believing the whole app budget is theirs) overrun it.

The work is 1.2 times the app's identity budget per window, spread over 60 small tenants (all of
them the NA region's: one app) so that the app's budget binds before any tenant's does; each run
therefore lasts about one window. Time is compressed, not faked: the emulator's budget windows
and the limiters' are 0.15 of Graph's (the identity app window 3 s instead of 20), so the
same arithmetic binds in a seventh of the wall time.
As on Celery workers, each tenant is one worker's: with two processes, one takes the even
requests (the even tenants), the other the odd ones, so that together they send what one process
sends alone, in the same order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import MakeEmulator
from tests.fleet_helpers import SECRET_ENV, Control, config_for, fleet_world
from tests.scale.conftest import write_config

REPO = Path(__file__).resolve().parents[2]
SCALE = 0.002  # the app's identity budget: 150,000 x 0.002 = 300 RU per window
WINDOWS = 0.15  # ... per 3 s instead of 20 (every budget's window, in the emulator and limiters)
TENANTS = 60
WORK = 360  # requests of 1 RU: 1.2 times the budget
WINDOW = 20.0 * WINDOWS


def run_workers(
    control: Control, config: Path, parts: int, mode: list[str], tenants: list[str]
) -> int:
    """``parts`` processes sharing the work, started together at the start of one of the
    emulator's budget windows; the 429s they saw, all together."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.scale.load", str(config), str(WORK), str(SCALE),
             str(WINDOWS), str(part), str(parts), *mode, *tenants],
            cwd=REPO, env={**os.environ, **SECRET_ENV},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for part in range(parts)
    ]  # fmt: skip
    try:
        for process in processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line == b"ready\n", (line, process.stderr and process.stderr.read()[-3000:])
        # Every run alike: the world clock moves past all earlier windows, to the start of a
        # window of the identity app budget (the global budget's shorter windows start there too).
        now = control.call("GET", "clock")["epoch"]
        control.call("POST", "clock", {"seconds": 600 + WINDOW - now % WINDOW})
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            process.stdin.flush()
        throttled = 0
        for process in processes:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err.decode()[-3000:]
            seen = json.loads(out)
            assert seen["requests"] >= WORK // parts
            throttled += seen["throttled"]
        return throttled
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_two_workers_sharing_the_budget_get_no_more_429s_than_one_where_separate_limiters_overrun(
    make_emulator: MakeEmulator,
    tmp_path: Path,
    redis_url: str,
    budget_namespace: Callable[[str], str],
) -> None:
    sizes = {"users": 1, "groups": 0, "devices": 0, "managed_devices": 0}
    # Graph's app budgets are per app: every tenant here is reached through the NA partner's.
    emu = make_emulator(fleet_world(110, admins=False, sizes=sizes))
    control = Control(emu)
    tenants = sorted(t["id"] for t in control.customers() if t["region"] == "NA")[:TENANTS]
    assert len(tenants) == TENANTS
    config = write_config(config_for(emu, tmp_path), tmp_path)

    control.call("PUT", "settings", {"throttling": {"scale": SCALE, "window_scale": WINDOWS}})
    alone = run_workers(control, config, 1, ["shared", redis_url, budget_namespace("one")], tenants)
    together = run_workers(
        control, config, 2, ["shared", redis_url, budget_namespace("two")], tenants
    )
    separate = run_workers(control, config, 2, ["own"], tenants)
    print(f"429s: one worker {alone}, two sharing {together}, two separate {separate}")
    # Noise: a request's cost is settled only when its answer arrives, a few at the window edge.
    assert together <= alone + 3
    assert separate > together + 10
