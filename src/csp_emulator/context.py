"""What every emulated host shares: the world, the signing keys, where each host listens, and what
each host keeps between requests."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from csp_emulator.faults import FaultState
from csp_emulator.graph.state import GraphState
from csp_emulator.identity.state import IdentityState
from csp_emulator.identity.tokens import SigningKeys
from csp_emulator.latency import LatencyState
from csp_emulator.partner_center.model import PartnerCenterState
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
        # Whole or not at all: whoever waits for the file (tests, scripts, `config init`) must
        # never read it empty or half written, which a plain write_text allowed (seen under load).
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(self.to_json() + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @property
    def graph_host(self) -> str:
        """`host:port` of the emulated Graph, as discovery's `msgraph_host` names it."""
        return self.graph.split("://", 1)[1]


@dataclass
class HostStates:
    """What the hosts keep between requests besides the world, one typed object per host."""

    graph: GraphState  # throttling budgets; token, query and projection memos
    identity: IdentityState = field(default_factory=IdentityState)  # codes, refresh tokens
    partner_center: PartnerCenterState = field(default_factory=PartnerCenterState)
    faults: FaultState = field(default_factory=FaultState)  # shared by every host's injector
    latency: LatencyState = field(default_factory=LatencyState)  # draws and what was applied

    @classmethod
    def for_world(cls, world: World) -> HostStates:
        return cls(graph=GraphState(world))

    def reset(self, world: World) -> None:
        """Every host forgets what it kept; Graph's budgets start afresh on ``world``."""
        self.graph.reset(world)
        self.identity.reset()
        self.partner_center.reset()
        self.faults.reset()
        self.latency.reset()


@dataclass
class EmulatorContext:
    world: World
    keys: SigningKeys
    endpoints: Endpoints
    # Rebuilds the world from its source (world file or demo parameters) for the control API.
    world_factory: Callable[[], World]
    state: HostStates = field(init=False)

    def __post_init__(self) -> None:
        self.state = HostStates.for_world(self.world)

    def reset(self) -> None:
        """A new world from its source, and every host's state forgotten with the old one."""
        self.world = self.world_factory()
        self.state.reset(self.world)
