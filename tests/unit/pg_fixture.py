"""Store fixtures for the unit tests: a store on SQLite or PostgreSQL, and a small fleet with
known numbers.

PostgreSQL: the local server (``CSPGRAPH_TEST_PG`` overrides where) is used when reachable, else
started with pg_ctlcluster; only when that is impossible are the PostgreSQL cases skipped. Each
test session gets its own database (dropped afterwards), whose tables are emptied after each test.

A test module binds the fixtures it uses at module level (``store = pg_fixture.store``, and the
fixtures that one depends on), which is where pytest looks for them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cspgraph.fleet.store import GLOBAL_ADMIN_ROLE_TEMPLATE, Store

SERVER_URL = os.environ.get(
    "CSPGRAPH_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgresql")


def _reachable(url: str) -> str | None:
    """None when the server answers, else why not."""
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # any failure to connect means "not reachable" here
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        engine.dispose()


def _start_local_cluster() -> str | None:
    """Start the machine's PostgreSQL cluster; None on success, else why it could not."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return "no PostgreSQL cluster is installed (pg_ctlcluster, /etc/postgresql)"
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    if not versions:
        return "/etc/postgresql holds no cluster"
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"]
    # pg_ctlcluster waits until the server accepts connections before it returns.
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        return f"{' '.join(command)} failed: {(done.stderr or done.stdout).strip()}"
    return None


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a database created for this test session (dropped at its end)."""
    why = _reachable(SERVER_URL)
    if why is not None:
        start_failure = _start_local_cluster()
        why = start_failure or _reachable(SERVER_URL)
    if why is not None:
        pytest.skip(f"PostgreSQL unavailable at {SERVER_URL} and could not be started: {why}")

    with fresh_database("cspgraph_test") as url:
        yield url


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """URL of a new database on the server (named ``prefix`` and a random part), dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        admin.dispose()


@pytest.fixture(scope="session")
def pg_schema_url(pg_database: str) -> str:
    """URL of a schema of the session database, made its search_path."""
    schema = "fleet"
    engine = create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    url = make_url(pg_database).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def pg_url(pg_schema_url: str) -> Iterator[str]:
    """The session schema, emptied after each test (TRUNCATE is much faster than a schema per
    test, which made the PostgreSQL cases most of this suite's time)."""
    yield pg_schema_url
    engine = create_engine(pg_schema_url)
    with engine.begin() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ).scalars()
        names = ", ".join(f'"{name}"' for name in tables)
        if names:
            conn.execute(text(f"TRUNCATE {names}"))
    engine.dispose()


def store_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=BACKENDS)
def store_backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on each backend in turn (the store is not opened yet)."""
    return store_url(request, request.param, tmp_path)


@pytest.fixture
def store(store_backend_url: str) -> Iterator[Store]:
    """An open, empty store on each backend in turn."""
    opened = Store.open(store_backend_url)
    try:
        yield opened
    finally:
        opened.close()


# --- a small fleet with known numbers ---------------------------------------------------------

ALPHA, BRAVO, CHARLIE, DELTA, ECHO, FOXTROT = (
    f"0000000{n}-0000-0000-0000-000000000000" for n in range(1, 7)
)


def user(uid: str, *, enabled: bool = True, guest: bool = False) -> dict[str, Any]:
    return {
        "id": uid,
        "userPrincipalName": f"{uid}@example.com",
        "displayName": uid.title(),
        "accountEnabled": enabled,
        "userType": "Guest" if guest else "Member",
    }


def managed(mid: str, os_name: str, state: str) -> dict[str, Any]:
    return {
        "id": mid,
        "deviceName": mid.upper(),
        "operatingSystem": os_name,
        "complianceState": state,
        "userId": "",
        "lastSyncDateTime": "2026-01-02T03:04:05Z",
    }


def _page(store: Store, tenant: str, resource: str, objects: list[dict[str, Any]]) -> None:
    store.write_page(tenant, resource, objects, [], next_link=None, delta_link=None, full_pull=True)


def build_known_fleet(store: Store) -> None:
    """Six customers; the expected numbers are spelled out in the tests that use this.

    alpha   ok            5 users (1 disabled, 1 guest), 2 admins, 2 groups, 3 devices,
                          managed: Windows compliant x2, iOS noncompliant x1
    bravo   failed        2 users, roles never synced, managed: Android compliant x1
    charlie ok            3 users, 1 admin, managed: macOS compliant x2, Windows inGracePeriod x1
    delta   ok            1 user, managed: Windows noncompliant x3
    echo    never synced  nothing
    foxtrot needs_person  nothing
    """
    names = {
        ALPHA: "Alpha Ltd",
        BRAVO: "Bravo GmbH",
        CHARLIE: "Charlie SA",
        DELTA: "Delta Inc",
        ECHO: "Echo BV",
        FOXTROT: "Foxtrot AB",
    }
    for tenant, name in names.items():
        domain = name.split()[0].lower() + ".example"
        store.upsert_customer(tenant, domain=domain, display_name=name, region="EU")

    _page(store, ALPHA, "users", [
        user("a1"), user("a2"), user("a3"), user("a4", enabled=False), user("a5", guest=True),
    ])  # fmt: skip
    _page(store, ALPHA, "groups", [
        {"id": "g-admins", "displayName": "Admins", "securityEnabled": True},
        {"id": "g-all", "displayName": "All", "securityEnabled": False},
    ])  # fmt: skip
    store.replace_members(ALPHA, "g-admins", ["a2"])
    store.replace_members(ALPHA, "g-all", ["a1", "a2", "a3", "a4", "a5"])
    # a1 directly, a2 through the role-assignable group; a service principal is not a user.
    store.upsert_role_members(
        ALPHA, GLOBAL_ADMIN_ROLE_TEMPLATE, "Global Administrator", ["a1", "g-admins", "sp-1"]
    )
    _page(store, ALPHA, "devices", [
        {"id": f"d{i}", "displayName": f"D{i}", "operatingSystem": "Windows"} for i in range(3)
    ])  # fmt: skip
    _page(store, ALPHA, "managedDevices", [
        managed("am1", "Windows", "compliant"), managed("am2", "Windows", "compliant"),
        managed("am3", "iOS", "noncompliant"),
    ])  # fmt: skip
    _page(store, ALPHA, "organization", [
        {"id": ALPHA, "displayName": "Alpha Ltd", "countryLetterCode": "GB"},
    ])  # fmt: skip
    store.set_status(ALPHA, "ok")

    _page(store, BRAVO, "users", [user("b1"), user("b2")])
    _page(store, BRAVO, "managedDevices", [managed("bm1", "Android", "compliant")])
    store.set_status(BRAVO, "failed", reason="HTTP 500 from Graph", error_class="transient")

    _page(store, CHARLIE, "users", [user("c1"), user("c2"), user("c3")])
    store.upsert_role_members(CHARLIE, GLOBAL_ADMIN_ROLE_TEMPLATE, "Global Administrator", ["c1"])
    _page(store, CHARLIE, "managedDevices", [
        managed("cm1", "macOS", "compliant"), managed("cm2", "macOS", "compliant"),
        managed("cm3", "Windows", "inGracePeriod"),
    ])  # fmt: skip
    store.set_status(CHARLIE, "ok")

    _page(store, DELTA, "users", [user("x1")])
    _page(store, DELTA, "managedDevices", [
        managed(f"dm{i}", "Windows", "noncompliant") for i in range(3)
    ])  # fmt: skip
    store.set_status(DELTA, "ok")

    store.set_status(FOXTROT, "needs_person", reason="GDAP relationship missing")
