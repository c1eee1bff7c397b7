"""Private files (the signing key, the TLS key): mode 0600 from the moment they exist.

Writing a file and then ``chmod``-ing it leaves a window in which the key is readable by anyone
the umask lets in; here the file is created 0600 under a fresh name nobody else can have made
(``O_EXCL``, never following a link), filled, synced and then renamed into place.
(The client has its own, ``cspgraph.config.write_private_file``: the two packages never import
each other.)
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_private_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
