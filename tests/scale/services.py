"""The real services the scale suite runs against: Redis, RabbitMQ and PostgreSQL on this machine.

Each is used where it answers, else started the way .ci/run starts it (docs/scale.md). A service
that cannot be reached even then FAILS the test that needs it, with what was tried: the scale
suite proves things about the real broker and the real shared budget, and a silent skip would let
`make test` pass without ever having proved them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from urllib.parse import urlsplit

import pytest

REDIS_URL = os.environ.get("CSPGRAPH_TEST_REDIS", "redis://127.0.0.1:6379/0")
BROKER_URL = os.environ.get("CSPGRAPH_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672//")

# The commands this machine kind starts its services with (/work/.library machine notes; the same
# ones .ci/run uses).
START = {
    "redis": [
        "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
        "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
        "--logfile", "/var/log/redis/ci.log",
    ],
    "rabbitmq": ["rabbitmq-server", "-detached"],
}  # fmt: skip


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2):
            return True
    except OSError:
        return False


def require(name: str, url: str, wait: float = 60.0) -> str:
    """``url`` once its service answers (starting it if it is local and down); else fail."""
    if _answers(url):
        return url
    command = START[name]
    tried = "nothing could be tried"
    if shutil.which(command[0]) is not None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        tried = f"`{' '.join(command)}` exited {done.returncode}"
        deadline = time.monotonic() + wait  # RabbitMQ's node takes seconds to open its port
        while time.monotonic() < deadline:
            if _answers(url):
                return url
            time.sleep(0.5)
    else:
        tried = f"{command[0]} is not installed"
    pytest.fail(
        f"{name} does not answer at {url} and could not be started ({tried}); "
        "the scale suite needs the real service: start it as docs/scale.md says",
        pytrace=False,
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
