"""Running the installed `cspgraph` on a pseudo-terminal, as a person at a terminal runs it.

Typer's CliRunner never looks like a terminal (its stdout is a buffer), which is how the tests see
a command's piped output; what a person sees — tables, colours, live progress — needs stdout to
*be* a terminal, so the command runs in a child process on a pty here.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CSPGRAPH = str(Path(sys.executable).parent / "cspgraph")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@dataclass(frozen=True)
class TerminalRun:
    returncode: int
    output: str  # stdout and stderr as the terminal showed them, escape codes removed
    raw: str = ""  # the same with every escape code the command wrote


def run_on_terminal(
    args: list[str],
    *,
    env: Mapping[str, str] | None = None,
    columns: int = 160,
    timeout: float = 120,
) -> TerminalRun:
    """``cspgraph ARGS`` with stdin, stdout and stderr on one pseudo-terminal ``columns`` wide."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    environ = {**os.environ, **(env or {}), "TERM": "xterm-256color", "COLUMNS": str(columns)}
    environ.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [CSPGRAPH, *args], stdin=child, stdout=child, stderr=child, env=environ, close_fds=True
    )
    os.close(child)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                data = os.read(main, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        returncode = proc.wait(timeout=timeout)
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
    text = b"".join(chunks).decode("utf-8", errors="replace").replace("\r\n", "\n")
    return TerminalRun(returncode, _ANSI.sub("", text), text)
