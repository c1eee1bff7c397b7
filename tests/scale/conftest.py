"""What the scale suite shares: the real services, a PostgreSQL database per test, a config file
for the workers, and `cspgraph worker` processes (started and always stopped here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import tomli_w

from cspgraph.config import Config
from cspgraph.distributed.queues import consumers, delete_queue
from cspgraph.distributed.redis_limiter import drop_namespace
from tests.fleet_helpers import SECRET_ENV
from tests.scale.services import BROKER_URL, REDIS_URL, require, unique
from tests.unit.pg_fixture import SERVER_URL, _reachable, _start_local_cluster, fresh_database

CSPGRAPH = str(Path(sys.executable).parent / "cspgraph")


@pytest.fixture
def pg_store_url() -> Iterator[str]:
    """A PostgreSQL database of its own for one test (dropped afterwards); fails (never skips)
    when PostgreSQL cannot be reached or started."""
    why = _reachable(SERVER_URL)
    if why is not None:
        why = _start_local_cluster() or _reachable(SERVER_URL)
    if why is not None:
        pytest.fail(f"PostgreSQL unavailable at {SERVER_URL}: {why}", pytrace=False)
    with fresh_database("cspgraph_scale") as url:
        yield url


@pytest.fixture
def broker() -> str:
    return require("rabbitmq", BROKER_URL)


@pytest.fixture
def redis_url() -> str:
    return require("redis", REDIS_URL)


@pytest.fixture
def queue(broker: str) -> Iterator[str]:
    """A queue of this test's own (nothing left over from another test or helper reaches it),
    deleted afterwards."""
    name = unique("cspgraph-test")
    yield name
    delete_queue(broker, name)
    assert consumers(broker, name) == 0


@pytest.fixture
def budget_namespace(redis_url: str) -> Iterator[Callable[[str], str]]:
    """Budget namespaces of this test's own (``budget_namespace("one")``), whose keys are all
    deleted afterwards: Redis keeps nothing of a test."""
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(unique(prefix))
        return made[-1]

    yield make
    client = redis.Redis.from_url(redis_url)
    try:
        for namespace in made:
            drop_namespace(client, namespace)
            assert not list(client.scan_iter(match=f"{namespace}:*"))
    finally:
        client.close()


def write_config(config: Config, where: Path) -> Path:
    """The configuration as a file for the worker processes (secrets stay in their environment,
    as the configuration names them)."""
    path = where / "cspgraph.toml"
    path.write_text(tomli_w.dumps(config.model.model_dump(mode="json", exclude_none=True)))
    path.chmod(0o600)
    return path


class Workers:
    """`cspgraph worker` processes for one test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self,
        name: str,
        *,
        config: Path,
        db: str,
        broker: str,
        queue: str,
        budget: str | None,
        namespace: str,
        scale: float = 1.0,
        concurrency: int = 2,
    ) -> subprocess.Popen[bytes]:
        command = [
            CSPGRAPH, "worker", "--broker", broker, "--db", db, "--queue", queue,
            "--name", name, "--concurrency", str(concurrency), "--config", str(config),
            "--budget-namespace", namespace, "--budget-scale", str(scale),
        ]  # fmt: skip
        if budget is not None:
            command += ["--budget-redis", budget]
        log = (self.tmp_path / f"{name.split('@')[0]}.log").open("wb")
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **SECRET_ENV},
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def wait_consuming(self, broker: str, queue: str, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while consumers(broker, queue) < count:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError(f"worker {name} exited: {self.log(name)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} workers did not start on {queue} in {timeout} s")
            time.sleep(0.2)

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name.split('@')[0]}.log").read_text(errors="replace")[-3000:]

    def kill(self, name: str) -> None:
        process = self.processes[name]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    started = Workers(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


WaitFor = Callable[[Callable[[], bool], float], None]
