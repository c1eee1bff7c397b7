"""What every emulated host shares: the world, the signing keys, and where each host listens."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from csp_emulator.identity.tokens import SigningKeys
from csp_emulator.world.model import World


@dataclass(frozen=True)
class Endpoints:
    """Where each emulated host listens; written to the endpoints file clients read."""

    authority_host: str  # stands in for https://login.microsoftonline.com
    graph: str  # https://graph.microsoft.com
    partner_center: str  # https://api.partnercenter.microsoft.com
    control: str  # the emulator's own control API
    ca_bundle: str  # absolute path of the local CA certificate (PEM)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    @property
    def graph_host(self) -> str:
        """`host:port` of the emulated Graph, as discovery's `msgraph_host` names it."""
        return self.graph.split("://", 1)[1]


@dataclass
class EmulatorContext:
    world: World
    keys: SigningKeys
    endpoints: Endpoints
    # Rebuilds the world from its source (world file or demo parameters) for the control API.
    world_factory: Callable[[], World]
    # Per-host state other modules hang on the context (throttling counters, auth codes, ...),
    # dropped on reset.
    state: dict[str, Any] = field(default_factory=dict)

    def reset(self) -> None:
        self.world = self.world_factory()
        self.state.clear()
