"""One emulator per state directory: a lock held while it serves.

The state directory keeps the local CA, the signing key and (by default) the endpoints file. Two
emulators on one directory would share the key but not the world, and the second would overwrite
the first's endpoints file, so configurations made from that file talk to whichever started
last and fail once it stops. The lock (an ``flock`` on ``emulator.lock``, released by the kernel
when the process dies, so a crash never leaves a stale lock) makes the second refuse at once,
naming the first's pid.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class StateDirInUse(OSError):
    """Another emulator serves from this state directory."""


class StateLock:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "emulator.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateDirInUse(
                f"another emulator (pid {owner}) is serving from {self.path.parent}: stop it, "
                "or give this one a --state-dir of its own"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
