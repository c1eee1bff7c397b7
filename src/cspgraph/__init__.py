"""cspgraph: Microsoft Graph for Cloud Solution Provider partners, and an offline emulator.

Importing the package is cheap on purpose: the client, the emulator and the fleet job live in
subpackages that load only when a caller needs them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
