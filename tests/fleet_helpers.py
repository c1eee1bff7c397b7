"""What the fleet sync tests share: a small generated world, a configuration for it, the
emulator's control API, and the comparison of the store with the world.

The world is read from the emulator itself (between requests, on its loop) or through its control
API, never from what the client received, so "store equals world" is a real check.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from csp_emulator.server import Emulator
from csp_emulator.world.model import World
from csp_emulator.world.worldfile import DEMO_PARTNERS, demo_world_data, load_world_data
from cspgraph.config import Config, config_from_data
from cspgraph.fleet import store as store_tables
from cspgraph.fleet.history_schema import HISTORY_TABLES
from cspgraph.fleet.resources import PULLS
from cspgraph.fleet.store import GLOBAL_ADMIN_ROLE_TEMPLATE, Store
from cspgraph.fleet.sync import SyncSummary, sync_fleet

SECRET_ENV = {f"CSPGRAPH_SECRET_{r}": p["client_secret"] for r, p in DEMO_PARTNERS.items()}
CUSTOMERS = 7
# Small pages, so that every tenant takes several of them and an interruption lands mid-pull.
PAGE_SIZE = 20


def fleet_world(
    customers: int = CUSTOMERS, *, admins: bool = True, sizes: dict[str, int] | None = None
) -> Callable[[], World]:
    """The demo world with fewer customers; with ``admins`` the partner apps may also read
    directory roles, so Global Administrators are synced too. ``sizes`` sets what every customer
    is generated with (``users``, ``groups``, ``devices``, ``managed_devices``) instead of the
    demo's varied sizes."""
    # The DAP fleet: these tests sync every customer tenant of the world by name.
    data = demo_world_data(customers, seed=11, gdap=False)
    if admins:
        for tenant in data["tenant"]:
            for app in tenant.get("app", []):
                app["application_permissions"] = [
                    *app["application_permissions"],
                    "RoleManagement.Read.Directory",
                ]
    if sizes:
        for tenant in data["tenant"]:
            if tenant["kind"] == "customer":
                tenant["generate"].update(sizes)

    def factory() -> World:
        return load_world_data(data, source="<sync test world>")

    return factory


def config_for(
    emu: Emulator, tmp_path: Path, regions: tuple[str, ...] = ("NA", "EU"), **extra: Any
) -> Config:
    """The emulator's partner configuration for ``regions``; ``extra``: more top-level keys
    (``token_timeout``, ``token_retries``)."""
    data: dict[str, Any] = {
        "emulator": str(emu.endpoints_file),
        "token_cache": "memory",
        "discovery_cache": "memory",
        "regions": {
            r: {
                "partner_tenant": DEMO_PARTNERS[r]["domain"],
                "client_id": DEMO_PARTNERS[r]["client_id"],
                "client_secret_env": f"CSPGRAPH_SECRET_{r}",
            }
            for r in regions
        },
        **extra,
    }
    return config_from_data(data, base_dir=tmp_path, env=SECRET_ENV)


class Control:
    """The emulator's control API."""

    def __init__(self, emu: Emulator) -> None:
        self.base = f"{emu.endpoints.control}/_emulator"
        self.tls = ssl.create_default_context(cafile=emu.endpoints.ca_bundle)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self.calls([(method, path, body)])[0]

    def calls(self, requests: list[tuple[str, str, Any]]) -> list[Any]:
        """Several calls over one connection (a world change of hundreds of objects)."""
        answers = []
        with httpx.Client(verify=self.tls) as client:
            for method, path, body in requests:
                response = client.request(method, f"{self.base}/{path}", json=body)
                response.raise_for_status()
                answers.append(response.json() if response.content else None)
        return answers

    def customers(self) -> list[dict[str, Any]]:
        world = self.call("GET", "world")
        return [t for t in world["tenants"] if t["kind"] == "customer"]


# -- what the world holds, and what the store holds ----------------------------------------------

Snapshot = dict[str, Any]


def world_snapshot(emu: Emulator, tenant_ids: list[str]) -> Snapshot:
    """Ids per resource, memberships and Global Administrators of these tenants, read from the
    world itself (between requests, on the server's loop)."""

    def read() -> Snapshot:
        out: Snapshot = {}
        for tid in tenant_ids:
            tenant = emu.world.tenants[tid]
            objects = tenant.objects
            ga = [
                r for r in objects["directoryRoles"].values()
                if r.get("roleTemplateId") == GLOBAL_ADMIN_ROLE_TEMPLATE
            ]  # fmt: skip
            out[tid] = {
                "users": sorted(objects["users"]),
                "groups": sorted(objects["groups"]),
                "devices": sorted(objects["devices"]),
                "managedDevices": sorted(objects["managedDevices"]),
                "organization": [tid],
                "subscribedSkus": sorted(objects["subscribedSkus"]),
                "licences": {
                    uid: ",".join(sorted(a["skuId"] for a in u.get("assignedLicenses", [])))
                    for uid, u in objects["users"].items()
                },
                "members": sorted(
                    (g, m)
                    for g, group in objects["groups"].items()
                    for m in group.get("_members", [])
                ),
                "admins": sorted(m for role in ga for m in role.get("_members", [])),
                "compliance": {
                    i: d.get("complianceState") for i, d in objects["managedDevices"].items()
                },
            }
        return out

    return emu.call(read)


def store_snapshot(store: Store, tenant_ids: list[str]) -> Snapshot:
    out: Snapshot = {}
    with store.engine.connect() as conn:
        for tid in tenant_ids:
            snap: dict[str, Any] = {}
            for resource, table in store_tables.OBJECT_TABLES.items():
                rows = conn.execute(select(table.c.id).where(table.c.tenant_id == tid))
                snap[resource] = sorted(rows.scalars())
            gm = store_tables.group_members.c
            snap["members"] = sorted(
                tuple(r) for r in conn.execute(
                    select(gm.group_id, gm.member_id).where(gm.tenant_id == tid)
                )
            )  # fmt: skip
            rm = store_tables.role_members.c
            snap["admins"] = sorted(
                conn.execute(
                    select(rm.member_id).where(
                        rm.tenant_id == tid, rm.role_template_id == GLOBAL_ADMIN_ROLE_TEMPLATE
                    )
                ).scalars()
            )
            u = store_tables.users.c
            snap["licences"] = dict(
                conn.execute(select(u.id, u.licenses).where(u.tenant_id == tid)).all()
            )
            md = store_tables.managed_devices.c
            snap["compliance"] = dict(
                conn.execute(
                    select(md.id, md.compliance_state).where(md.tenant_id == tid)
                ).all()
            )  # fmt: skip
            out[tid] = snap
    return out


def full_dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the bookkeeping (marks, timestamps, checkpoints) and the
    history of runs (each run adds to it); the security state is the inventory's, kept."""
    dump: dict[str, list[tuple[Any, ...]]] = {}
    skip = {"seen_run", "status_at", "last_sync_at", "updated_at"}
    history = {t.name for t in HISTORY_TABLES} - {"security_state"}
    with store.engine.connect() as conn:
        for name, table in store_tables.metadata.tables.items():
            if name == "checkpoints" or name in history:
                continue
            columns = [c for c in table.columns if c.name not in skip]
            rows = conn.execute(select(*columns)).all()
            dump[name] = sorted(
                (tuple(json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for v in r)
                 for r in rows),
                key=repr,
            )  # fmt: skip
    return dump


def customer_ids(control: Control) -> list[str]:
    return sorted(t["id"] for t in control.customers())


def assert_store_matches_world(
    store: Store, emu: Emulator, tenant_ids: list[str], parts: tuple[str, ...] | None = None
) -> None:
    """The store holds exactly what the world holds for these tenants: every part of the
    snapshot, or only ``parts`` (e.g. ``("users",)`` after a sync of users only)."""
    expected = world_snapshot(emu, tenant_ids)
    actual = store_snapshot(store, tenant_ids)
    for tid in tenant_ids:
        want, got = expected[tid], actual[tid]
        if parts is not None:
            want = {k: v for k, v in want.items() if k in parts}
            got = {k: v for k, v in got.items() if k in parts}
        if got != want:
            differences = {
                k: f"store {_size(got.get(k))}, world {_size(want.get(k))}"
                for k in want
                if got.get(k) != want.get(k)
            }
            raise AssertionError(f"tenant {tid} differs from the world: {differences}")


def _size(value: Any) -> str:
    return f"{len(value)} entries" if isinstance(value, list | dict) else repr(value)


async def run_sync(config: Config, store: Store, **kwargs: Any) -> SyncSummary:
    kwargs.setdefault("page_size", PAGE_SIZE)
    kwargs.setdefault("concurrency", 4)
    return await sync_fleet(config, store, **kwargs)


def open_pulls(store: Store) -> int:
    """Pulls of delta resources that an interruption left under way: a rerun resumes these
    (a resource without delta starts its pull again instead)."""
    c = store_tables.checkpoints.c
    delta = [p.resource for p in PULLS if p.delta]
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(c.tenant_id).where(c.next_link.is_not(None), c.resource.in_(delta))
        ).all()
    return len(rows)


KILLER = textwrap.dedent(
    """
    import asyncio, json, os, signal, sys
    from cspgraph.config import config_from_data
    from cspgraph.fleet.progress import NullProgress
    from cspgraph.fleet.store import Store
    from cspgraph.fleet.sync import sync_fleet

    data, db = json.loads(sys.argv[1]), sys.argv[2]
    stop_after, page_size = int(sys.argv[3]), int(sys.argv[4])
    extra = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    counted = extra.pop("count_only", None)  # count the pages of this resource only

    class KillAfter(NullProgress):
        pages = 0
        def page_written(self, tenant_id, resource, objects):
            if counted is None or resource == counted:
                self.pages += 1
            if self.pages >= stop_after:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: a crash

    store = Store.open(db)
    asyncio.run(sync_fleet(config_from_data(data), store, progress=KillAfter(),
                           page_size=page_size, concurrency=4, **extra))
    """
)


async def run_killed(
    config: Config,
    db: str,
    tmp_path: Path,
    *,
    after_pages: int,
    page_size: int = PAGE_SIZE,
    count_only: str | None = None,
    **sync_options: Any,
) -> None:
    """Run a sync in a child process that kills itself with SIGKILL once ``after_pages`` pages
    (of ``count_only`` alone, when given) are written: no cleanup, no flush, as a crash."""
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    data = config.model.model_dump(exclude_none=True)
    extra = {**sync_options, "count_only": count_only}
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(script), json.dumps(data), db, str(after_pages), str(page_size),
        json.dumps(extra),
        env={**os.environ, **SECRET_ENV},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await child.communicate()
    assert child.returncode == -signal.SIGKILL, stderr.decode()
