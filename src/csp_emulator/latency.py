"""The latency model: how long each emulated host takes to answer, and what it actually applied.

Per host (``login``, ``graph``, ``partner_center``; :class:`~csp_emulator.world.model.HostLatency`)
a request waits::

    (base + per_object × objects) × uniform(1 − jitter, 1 + jitter) × (tail_factor if slow)

where ``objects`` counts what a list or delta page carries (Graph's ``value`` items and their
``members@delta`` entries, ``$batch`` items' pages, Partner Center's customers) and a share
``tail_share`` of answers is slow. The wait is asynchronous (the answer is held, the server keeps
serving others) and happens after the host has built its answer, errors and 429s included. Draws
come from a seeded generator per host, reseeded on reset, like the faults' draws.

Every wait is recorded (:class:`LatencyState`): host, tenant, method, path, status, objects, the
seconds applied, whether it was a slow one, and when it began (``at``, the emulator's monotonic
clock: how many answers were held at once can be counted from the record). The benchmark
computes its lower bound from these (each customer's longest chain of dependent requests × what
was applied to them); the control API serves them at ``/_emulator/latency/log``.

The ``realistic`` preset's figures and their sources are in docs/emulator.md ("Latency"); the
ones not taken from a public measurement are marked *unverified* there and here.
"""

from __future__ import annotations

import base64
import math
import random
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import orjson

from csp_emulator.world.model import HostLatency, LatencySettings

HOSTS = ("login", "graph", "partner_center")
RNG_SEED = 20_261_127
# The emulator's own header from a host to its latency middleware: how many objects the answer
# carries. The middleware removes it; it never reaches a client.
OBJECTS_HEADER = "x-csp-emulator-objects"
OBJECTS_HEADER_BYTES = OBJECTS_HEADER.encode()
# Records kept at most (oldest dropped first): a 5,000-customer benchmark run is ~100,000.
MAX_RECORDS = 1_000_000

# Presets by name. "realistic": Entra's token endpoint ~0.3 s a call (MSAL Node's performance
# guide: ~700 ms for a token from the network, two HTTP calls, against ~100 ms from the cache);
# Graph ~0.15 s before the page's content (one captured Graph answer's Duration header: 171 ms),
# 1.5 ms an object (unverified: a 200-user delta page ~0.45 s, a 500-member groups page ~0.9 s);
# Partner Center 0.4 s + 1 ms a customer (unverified); ±25 % jitter and 1 % of answers 5× slower
# on every host (unverified).
PRESETS: dict[str, dict[str, HostLatency]] = {
    "off": {h: HostLatency() for h in HOSTS},
    "realistic": {
        "login": HostLatency(base=0.3, jitter=0.25, tail_share=0.01, tail_factor=5.0),
        "graph": HostLatency(
            base=0.15, per_object=0.0015, jitter=0.25, tail_share=0.01, tail_factor=5.0
        ),
        "partner_center": HostLatency(
            base=0.4, per_object=0.001, jitter=0.25, tail_share=0.01, tail_factor=5.0
        ),
    },
}

_LIMITS: dict[str, tuple[float, float]] = {
    "base": (0.0, 600.0),
    "per_object": (0.0, 10.0),
    "jitter": (0.0, 0.99),
    "tail_share": (0.0, 1.0),
    "tail_factor": (1.0, 1000.0),
}


def preset(name: str) -> LatencySettings:
    """A fresh copy of a named preset; ValueError names the known ones."""
    hosts = PRESETS.get(name)
    if hosts is None:
        raise ValueError(f"unknown latency preset {name!r}; expected one of {sorted(PRESETS)}")
    return LatencySettings({h: HostLatency(**asdict(m)) for h, m in hosts.items()}, name)


def latency_settings(body: Any, current: LatencySettings | None = None) -> LatencySettings:
    """Latency settings from a world file's ``[settings.latency]`` or the control API's
    ``{"latency": …}``: an optional ``preset`` to start from (else ``current``, else all zero),
    then per host the figures to change. Everything is checked before anything changes."""
    if not isinstance(body, Mapping):
        raise ValueError("latency takes {'preset': name, 'graph': {'base': seconds, …}, …}")
    unknown = set(body) - {"preset", *HOSTS}
    if unknown:
        raise ValueError(
            f"latency: unknown key(s) {sorted(unknown)}; expected 'preset' or a host of "
            f"{', '.join(HOSTS)}"
        )
    if "preset" in body:
        if not isinstance(body["preset"], str):
            raise ValueError(f"latency.preset must be a name, not {body['preset']!r}")
        settings = preset(body["preset"])
    elif current is not None:
        settings = LatencySettings(
            {h: HostLatency(**asdict(m)) for h, m in current.hosts.items()}, current.preset
        )
    else:
        settings = preset("off")
    for host in HOSTS:
        if host not in body:
            continue
        values = body[host]
        if not isinstance(values, Mapping) or set(values) - set(_LIMITS):
            raise ValueError(f"latency.{host} takes some of {sorted(_LIMITS)}")
        figures = asdict(settings.hosts[host])
        for key, value in values.items():
            low, high = _LIMITS[key]
            number = not isinstance(value, bool) and isinstance(value, int | float)
            if not number or not math.isfinite(value) or not low <= value <= high:
                raise ValueError(
                    f"latency.{host}.{key} must be a number from {low:g} to {high:g}, not {value!r}"
                )
            figures[key] = float(value)
        settings.hosts[host] = HostLatency(**figures)
        settings.preset = None  # figures of its own now
    return settings


def settings_json(settings: LatencySettings) -> dict[str, Any]:
    return {"preset": settings.preset, **{h: asdict(m) for h, m in settings.hosts.items()}}


def objects_in(body: Any) -> int:
    """How many objects a Graph answer carries: ``value`` items and their ``members@delta``
    entries, and the same inside ``$batch`` answers."""
    if not isinstance(body, dict):
        return 0
    value = body.get("value")
    if isinstance(value, list):
        links = 0
        for item in value:
            if isinstance(item, dict):
                members = item.get("members@delta")
                if isinstance(members, list):
                    links += len(members)
        return len(value) + links
    responses = body.get("responses")
    if isinstance(responses, list):
        return sum(objects_in(r.get("body")) for r in responses if isinstance(r, dict))
    return 0


@dataclass(frozen=True, slots=True)
class Applied:
    """One wait the emulator applied."""

    seq: int
    host: str
    tenant: str  # GUID, or what the request named when it is no tenant of this world; "" if none
    method: str
    path: str
    status: int
    objects: int
    seconds: float
    slow: bool
    # When the wait began: seconds on the emulator's monotonic clock (not the world clock, which
    # tests move). With ``seconds``, the interval the answer was held: requests in flight at
    # once, counted on the server's side.
    at: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class LatencyState:
    """The seeded draws per host and the record of every wait applied."""

    def __init__(self) -> None:
        self.rngs = {h: random.Random(f"{RNG_SEED}/{h}") for h in HOSTS}
        # Oldest first; the oldest half goes when MAX_RECORDS is reached.
        self.records: list[Applied] = []
        self.seq = 0
        self._tenant_of_token: dict[bytes, str] = {}

    def reset(self) -> None:
        for host, rng in self.rngs.items():
            rng.seed(f"{RNG_SEED}/{host}")
        self.clear()

    def clear(self) -> None:
        self.records.clear()

    def draw(self, host: str, model: HostLatency, objects: int) -> tuple[float, bool]:
        """Seconds to wait for one answer of ``objects`` objects, and whether it is a slow one."""
        rng = self.rngs[host]
        seconds = model.base + model.per_object * objects
        if model.jitter > 0.0:
            seconds *= rng.uniform(1.0 - model.jitter, 1.0 + model.jitter)
        slow = model.tail_share > 0.0 and rng.random() < model.tail_share
        if slow:
            seconds *= model.tail_factor
        return seconds, slow

    def record(
        self,
        host: str,
        tenant: str,
        method: str,
        path: str,
        status: int,
        objects: int,
        seconds: float,
        slow: bool,
    ) -> Applied:
        self.seq += 1
        applied = Applied(
            self.seq, host, tenant, method, path, status, objects, seconds, slow, time.monotonic()
        )
        records = self.records
        if len(records) >= MAX_RECORDS:
            del records[: MAX_RECORDS // 2]
        records.append(applied)
        return applied

    def after(self, seq: int, limit: int) -> list[Applied]:
        """Up to ``limit`` records newer than ``seq``, oldest first."""
        records = self.records
        if not records or records[-1].seq <= seq:
            return []
        # Sequence numbers are consecutive within the list, so the position is arithmetic.
        start = max(0, seq - records[0].seq + 1)
        return records[start : start + limit]

    def tenant_of_token(self, authorization: bytes) -> str:
        """The ``tid`` claim of a bearer token, read without checking it (bookkeeping only: the
        host itself checks every token), remembered per token."""
        found = self._tenant_of_token.get(authorization)
        if found is not None:
            return found
        tenant = ""
        parts = authorization.split(b".")
        if len(parts) == 3:
            payload = parts[1] + b"=" * (-len(parts[1]) % 4)
            try:
                claims = orjson.loads(base64.urlsafe_b64decode(payload))
                tenant = str(claims.get("tid", "")) if isinstance(claims, dict) else ""
            except ValueError:
                tenant = ""
        if len(self._tenant_of_token) >= 100_000:
            self._tenant_of_token.clear()
        self._tenant_of_token[authorization] = tenant
        return tenant
