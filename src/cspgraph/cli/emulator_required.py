"""The emulator is a distribution of its own (csp-emulator): the commands that start it say so,
in one line, when it is not installed, instead of a ModuleNotFoundError's traceback.

`pip install cspgraph` is the client only; `cspgraph demo` and `cspgraph emulator serve` run the
emulator in this process and so need `pip install csp-emulator` beside it (DESIGN.md).
"""

from __future__ import annotations

from cspgraph.cli.common import UsageError

INSTALL_HINT = (
    "the emulator is not installed: it is a distribution of its own, `pip install csp-emulator` "
    "(in a checkout of this repository `make demo` or `make test` installs it)"
)


def require_emulator() -> None:
    """Load the emulator's server (its package and its server stack: Starlette, uvicorn,
    httptools), or raise :class:`UsageError` (exit 2) saying how to install it."""
    try:
        import csp_emulator.server  # noqa: F401  (the command uses it next; loading it is the check)
    except ModuleNotFoundError as exc:
        # A source tree can have the package without its dependencies: name what is missing.
        missing = "" if exc.name in (None, "csp_emulator") else f" (no module {exc.name!r})"
        raise UsageError(f"{INSTALL_HINT}{missing}") from None
