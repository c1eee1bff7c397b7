"""A clock the limiter tests move by hand: no sleeping, no timing."""

from __future__ import annotations


class Clock:
    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
