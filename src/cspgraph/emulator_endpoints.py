"""The endpoints file a running emulator writes, as the client reads it.

``cspgraph emulator serve`` writes a JSON file naming where each emulated host listens and the CA
that signs their certificates::

    {"authority_host": "https://127.0.0.1:…", "graph": "https://127.0.0.1:…",
     "partner_center": "https://127.0.0.1:…", "control": "https://127.0.0.1:…",
     "ca_bundle": "/…/ca.pem"}

The client never imports the emulator package: this is its own reader of that file (the
configuration's ``emulator = …``, ``cspgraph config init --from-emulator``, the demo, tests).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

_KEYS = ("authority_host", "graph", "partner_center", "control", "ca_bundle")
_WHICH = "use the endpoints file a running `cspgraph emulator serve` prints"


class EndpointsFileError(ValueError):
    """The file is missing or is not an emulator endpoints file; the message says which."""


@dataclass(frozen=True)
class EmulatorEndpoints:
    authority_host: str  # stands in for https://login.microsoftonline.com
    graph: str  # https://graph.microsoft.com
    partner_center: str  # https://api.partnercenter.microsoft.com
    control: str  # the emulator's own control API (/_emulator/…)
    ca_bundle: str  # the emulator's CA certificate (PEM)
    source: Path

    @classmethod
    def read(cls, path: Path) -> EmulatorEndpoints:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise EndpointsFileError(
                f"no endpoints file at {path}; start the emulator (`cspgraph emulator serve`) "
                "and use the endpoints file it prints"
            ) from None
        except (OSError, ValueError) as exc:
            raise EndpointsFileError(
                f"cannot read {path} as an endpoints file ({exc}); {_WHICH}"
            ) from None
        fields = data if isinstance(data, dict) else {}
        missing = [key for key in _KEYS if not isinstance(fields.get(key), str)]
        if missing:
            raise EndpointsFileError(
                f"{path} is not an emulator endpoints file (missing {', '.join(missing)}); {_WHICH}"
            )
        return cls(**{key: str(fields[key]) for key in _KEYS}, source=path)

    def hosts(self) -> dict[str, str]:
        """The emulated hosts and CA, as :meth:`cspgraph.clouds.Cloud.with_hosts` takes them."""
        return {
            "login": self.authority_host,
            "graph": self.graph,
            "partner_center": self.partner_center,
            "ca_bundle": self.ca_bundle,
        }
