"""Lazy re-exports for package ``__init__`` modules.

A package that re-exports names from its submodules would import all of them on first touch; with
these, each name's submodule is imported when the name is first read (PEP 562 module
``__getattr__``), so ``import cspgraph.graph.scope`` does not load aiohttp and the client.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose names in ``exports`` (name -> submodule)
    load on first use. A submodule is named relative to ``package``, or absolutely when it lives
    in a lower layer (``cspgraph.http.errors``). Usage, at the end of the package's
    ``__init__``::

        __getattr__, __dir__ = lazy_exports(__name__, {"GraphClient": "client"})
    """

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        absolute = module.startswith("cspgraph.")
        value = getattr(
            importlib.import_module(module if absolute else f"{package}.{module}"), name
        )
        sys.modules[package].__dict__[name] = value  # later look-ups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted({*sys.modules[package].__dict__, *exports})

    return __getattr__, __dir__
