"""What every runner shares: the job file, the request plans, and the result line.

Stdlib only, so importing it costs a runner nothing it would not pay anyway.

The plans name the same pull for every client: users, groups with their members, devices, the
organization and Intune managed devices of every customer, all pages, each with ``$select`` of
what a sync keeps (the lists mirror ``cspgraph.fleet.resources``, written down here rather than
imported: a baseline must not borrow the client under test).

* ``list``: plain collection reads with ``$top=999``, then ``/groups/{id}/members?$select=id``
  per group: what the msgraph-sdk and the docs sample do.
* ``delta``: the request plan of ``cspgraph sync``: ``/users/delta``, ``/groups/delta`` with
  ``members`` (memberships arrive inline as ``members@delta``), ``/devices/delta`` with
  ``Prefer: odata.maxpagesize=999``; organization and managed devices as plain lists.
"""

from __future__ import annotations

import collections
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAGE = 999
# Attempts per request before a runner gives up; each waits Graph's Retry-After, so under budgets
# that bind (``--throttling on:SCALE``) a baseline still completes instead of losing pages.
MAX_ATTEMPTS = 100
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
RESULT_PREFIX = "BENCH-RESULT "

SELECT = {
    "users": "id,displayName,userPrincipalName,mail,accountEnabled,userType,createdDateTime,"
    "assignedLicenses",
    "groups": "id,displayName,securityEnabled,mailEnabled,groupTypes,isAssignableToRole",
    "devices": "id,deviceId,displayName,operatingSystem,operatingSystemVersion,accountEnabled,"
    "trustType,approximateLastSignInDateTime",
    "organization": "id,displayName,countryLetterCode,tenantType,verifiedDomains",
    "managedDevices": "id,deviceName,operatingSystem,osVersion,complianceState,userId,"
    "userPrincipalName,lastSyncDateTime,managedDeviceOwnerType,azureADDeviceId,isEncrypted",
}
PATHS = {
    "users": "/users",
    "groups": "/groups",
    "devices": "/devices",
    "organization": "/organization",
    "managedDevices": "/deviceManagement/managedDevices",
}
KINDS = ("users", "groups", "devices", "organization", "managedDevices")
DELTA_KINDS = ("users", "groups", "devices")


def list_url(graph: str, kind: str) -> str:
    """First page of ``kind`` in the list plan."""
    top = "" if kind == "organization" else f"&$top={PAGE}"
    return f"{graph}/v1.0{PATHS[kind]}?$select={SELECT[kind]}{top}"


def members_url(graph: str, group_id: str) -> str:
    return f"{graph}/v1.0/groups/{group_id}/members?$select=id&$top={PAGE}"


def delta_url(graph: str, kind: str) -> str:
    """First page of ``kind`` in the delta plan (plain list for organization and Intune)."""
    if kind not in DELTA_KINDS:
        return list_url(graph, kind)
    select = SELECT[kind] + (",members" if kind == "groups" else "")
    return f"{graph}/v1.0{PATHS[kind]}/delta?$select={select}"


DELTA_HEADERS = {"Prefer": f"odata.maxpagesize={PAGE}"}


@dataclass
class Job:
    graph: str
    authority: str
    ca_bundle: str
    partners: dict[str, dict[str, str]]  # region -> client_id, secret
    customers: list[dict[str, Any]]  # tenant_id, region, users
    plan: str = "list"
    concurrency: int = 16
    tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str) -> Job:
        data = json.loads(Path(path).read_text())
        e = data["endpoints"]
        return cls(
            graph=e["graph"],
            authority=e["authority_host"],
            ca_bundle=e["ca_bundle"],
            partners=data["partners"],
            customers=data["customers"],
            plan=data.get("plan", "list"),
            concurrency=int(data.get("concurrency", 16)),
            tokens=data.get("tokens", {}),
        )


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass
class Tally:
    """A runner's own counters."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*KINDS, "members"), 0))
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    # Answers by HTTP version ("HTTP/1.1", "HTTP/2"), where the client says (httpx).
    http_versions: collections.Counter[str] = field(default_factory=collections.Counter)
    started_cpu: float = 0.0
    started_wall: float = 0.0

    def start(self) -> None:
        """Mark the end of start-up (imports, set-up): work begins now."""
        self.started_cpu = cpu_seconds()
        self.started_wall = time.perf_counter()

    def error(self, text: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(text[:300])

    def emit(self, runner: str, **extra: Any) -> None:
        line = {
            "runner": runner,
            "counts": self.counts,
            "requests": self.requests,
            "throttled": self.throttled,
            "retries": self.retries,
            "errors": self.errors,
            "startup_cpu": round(self.started_cpu, 4),
            "work_cpu": round(cpu_seconds() - self.started_cpu, 4),
            "work_wall": round(time.perf_counter() - self.started_wall, 4),
            **extra,
        }
        sys.stdout.write(RESULT_PREFIX + json.dumps(line) + "\n")
        sys.stdout.flush()


def retry_after(value: str | None, attempt: int) -> float:
    """Seconds to wait before retrying a 429/5xx: Graph's (decimal) Retry-After, else backoff."""
    try:
        return max(0.0, float(value)) if value else min(0.5 * 2**attempt, 8.0)
    except ValueError:
        return min(0.5 * 2**attempt, 8.0)
