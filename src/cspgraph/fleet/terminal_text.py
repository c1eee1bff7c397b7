"""Text from customers made harmless for a terminal.

Company names, display names, device names, error messages: a customer (or anybody who can
rename an object in a customer tenant) chooses them. Written raw to a terminal, ``ESC ] 0 ;`` sets
its title, ``ESC ] 8 ;;`` makes a link, ``ESC [ 2 J`` clears it, and some terminals answer escape
sequences by typing into the shell. :func:`printable` shows every control character as its
escape instead (``\\x1b``), and the bidirectional overrides that reorder what a line appears to
say (``\\u202e``); Rich's markup and emoji codes are switched off where customer text is
printed (:mod:`cspgraph.fleet.safe_console`).
"""

from __future__ import annotations

import re

# C0 controls (newline and tab are kept where asked), DEL, C1 controls, and the bidirectional
# embeddings, overrides and isolates (Unicode "Trojan Source", CVE-2021-42574).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROLS_AND_LINES = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with every control character written as its escape; ``lines``: keep newlines
    and tabs (a message of several lines), otherwise they are escaped too (a table cell)."""
    return (_CONTROLS if lines else _CONTROLS_AND_LINES).sub(_shown, text)
