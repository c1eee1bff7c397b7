"""A local, HTTPS, wire-compatible emulator of Entra ID, Microsoft Graph and Partner Center that
enforces the CSP rules. Its own package: it never imports the client (cspgraph), and the client
reaches it only through ``cspgraph emulator``, ``cspgraph demo`` and the tests.

    server           HTTPS listeners (one origin per host), local CA, endpoints file; Emulator
    context          what the hosts share: world, signing keys, endpoints, per-host state
    identity/        login.microsoftonline.com (discovery, sign-in, tokens, the CSP rules)
    graph/           graph.microsoft.com (directory and Intune, OData, delta, $batch)
    partner_center/  api.partnercenter.microsoft.com (customers)
    control/         the emulator's own /_emulator API
    world/           the emulated world: tenants, objects, the clock; the world file
    routing          route tables for the Starlette-routed hosts; http: JSON helpers
    limits, faults   Graph's throttling model; injected faults (fault_injection: the middleware)
    wellknown        Microsoft's public constants, written down here (never taken from cspgraph)
    cli              ``csp-emulator serve`` / ``python -m csp_emulator serve``

It is its own distribution, ``csp-emulator`` (packaging/csp-emulator), built from this tree.
"""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # VERSION at the repository's root is the one source of both distributions; the installed
    # metadata carries it.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("csp-emulator")
        except PackageNotFoundError:  # a source tree that was never installed
            return "unknown"
    raise AttributeError(f"module 'csp_emulator' has no attribute {name!r}")
