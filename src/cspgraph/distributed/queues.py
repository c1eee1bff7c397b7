"""A run's queue on the broker, seen and removed from outside Celery: how many workers consume
it (benchmarks and tests wait for their workers), and deleting it with its exchange once nothing
will use it again (Celery declares both, named after the queue, and deletes neither)."""

from __future__ import annotations

import contextlib
from typing import Any

from kombu.connection import Connection as _Connection

# kombu has no type hints.
Connection: Any = _Connection

__all__ = ["consumers", "delete_queue"]


def consumers(broker: str, queue: str) -> int:
    """How many workers consume ``queue`` now (0 while it does not exist yet)."""
    with Connection(broker) as connection:
        channel = connection.channel()
        try:
            _, _, count = channel.queue_declare(queue, passive=True)
        except Exception:  # not declared yet: no worker has started on it
            return 0
        finally:
            # A passive declare of a missing queue has closed the channel itself.
            with contextlib.suppress(Exception):
                channel.close()
    return int(count)


def delete_queue(broker: str, queue: str) -> None:
    """Delete ``queue`` and the exchange of the same name, with any messages still in it."""
    with Connection(broker) as connection:
        for delete in ("queue_delete", "exchange_delete"):
            channel = connection.channel()
            # Already gone (or never declared): nothing to delete; the failure closed the channel.
            with contextlib.suppress(Exception):
                getattr(channel, delete)(queue)
            with contextlib.suppress(Exception):
                channel.close()
