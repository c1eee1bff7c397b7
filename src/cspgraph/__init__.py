"""cspgraph: Microsoft Graph for Cloud Solution Provider partners, and an offline emulator.

Importing the package is cheap on purpose: the client, the emulator and the fleet job live in
subpackages that load only when a caller needs them.
"""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # The version lives in VERSION at the repository's root, the one source of both
    # distributions; the installed metadata carries it. Read on demand: importlib.metadata is
    # not free, and `import cspgraph` is under everything.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("cspgraph")
        except PackageNotFoundError:  # a source tree that was never installed
            return "unknown"
    raise AttributeError(f"module 'cspgraph' has no attribute {name!r}")
