"""The device checks' filtering done by the database, on SQLite and PostgreSQL alike: each check
finds exactly the devices it should, names them with their primary user (read out of the stored
object by the database), and the out-of-support check asks the database only for the versions
the dated table rules out, however many IN lists that takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cspgraph.fleet.checks import devices, run_checks
from cspgraph.fleet.store import Store
from tests.unit import pg_fixture

pg_database = pg_fixture.pg_database
pg_schema_url = pg_fixture.pg_schema_url
pg_url = pg_fixture.pg_url
store_backend_url = pg_fixture.store_backend_url
store = pg_fixture.store

T = "0000d0d0-0000-0000-0000-000000000001"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
# name: (os, version, compliance, encrypted, days since the last check-in; None: Intune's never)
DEVICES: dict[str, tuple[str, str, str, bool, int | None]] = {
    "CURRENT-WIN": ("Windows", "10.0.26200.7171", "compliant", True, 1),
    "OLD-WIN10": ("Windows", "10.0.19045.5131", "compliant", True, 1),
    "ANCIENT-WIN": ("Windows", "10.0.10074.0", "compliant", True, 1),  # older than the table
    "CURRENT-IOS": ("iOS", "18.6.2", "compliant", True, 1),
    "OLD-IOS": ("iOS", "16.7.10", "compliant", True, 1),
    "OLD-ANDROID": ("Android", "11", "compliant", True, 1),
    "MAC": ("macOS", "15.6", "compliant", False, 1),
    "SILENT": ("Windows", "10.0.26200.7171", "noncompliant", True, 60),
    "NEVER-SEEN": ("Android", "15", "compliant", True, None),
}


def device(name: str) -> dict[str, Any]:
    os_name, version, state, encrypted, days = DEVICES[name]
    last = "0001-01-01T00:00:00Z" if days is None else (NOW - timedelta(days=days)).isoformat()
    return {
        "id": f"id-{name}", "deviceName": name, "operatingSystem": os_name,
        "osVersion": version, "complianceState": state, "isEncrypted": encrypted,
        "lastSyncDateTime": last, "userId": "u1", "userPrincipalName": f"{name.lower()}@x.test",
    }  # fmt: skip


def fleet(store: Store) -> None:
    store.upsert_customer(T, domain="devices.test", display_name="Devices Co", region="NA")
    store.write_page(
        T, "managedDevices", [device(n) for n in DEVICES], [], next_link=None, delta_link=None,
        full_pull=True,
    )  # fmt: skip
    store.set_status(T, "ok")


def objects(store: Store) -> dict[str, dict[str, str | None]]:
    """check -> {device name: detail}"""
    results = run_checks(store, now=NOW, checks=devices.CHECKS)
    assert results.unknowns == []
    return {f.check_id: {o.name or "": o.detail for o in f.objects} for f in results.findings}


@pytest.mark.parametrize("in_list", [devices.IN_LIST, 1])
def test_each_device_check_finds_its_devices_and_names_their_users(
    store: Store, in_list: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices, "IN_LIST", in_list)  # one version per IN list: several queries
    fleet(store)
    found = objects(store)
    assert set(found["devices.os_unsupported"]) == {
        "OLD-WIN10", "ANCIENT-WIN", "OLD-IOS", "OLD-ANDROID",
    }  # fmt: skip
    assert (found["devices.os_unsupported"]["ANCIENT-WIN"] or "").startswith("Windows build 10074")
    assert set(found["devices.stale"]) == {"SILENT", "NEVER-SEEN"}
    assert "last check-in never" in (found["devices.stale"]["NEVER-SEEN"] or "")
    assert found["devices.noncompliant"] == {
        "SILENT": "Windows 10.0.26200.7171; user silent@x.test"
    }
    assert found["devices.unencrypted"] == {"MAC": "macOS 15.6; user mac@x.test"}
