"""Managed devices that need a look: silent for a month, non-compliant, unencrypted, or on an
operating system version that no longer gets security updates."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import and_

from cspgraph.fleet import inventory
from cspgraph.fleet.checks import os_support
from cspgraph.fleet.checks.facts import Facts
from cspgraph.fleet.checks.model import Check, FoundObject, Outcome, Severity, day, plural
from cspgraph.fleet.schema import managed_devices

STALE_DAYS = 30
MANAGED = "managedDevices"
# Versions per IN (...) list: well under SQLite's limit of bound parameters per statement.
IN_LIST = 500


def _intune_known(facts: Facts, check: Check) -> tuple[set[str], list[Outcome]]:
    """The checkable customers whose Intune the store knows; the others as unknowns."""
    known = set()
    unknowns: list[Outcome] = []
    for customer in facts.checkable():
        why = facts.unknown_reason(customer.tenant_id, MANAGED)
        if why is None:
            known.add(customer.tenant_id)
        else:
            unknowns.append(check.unknown(customer.tenant_id, why))
    return known, unknowns


def _collect(
    facts: Facts,
    known: set[str],
    where: Any,
    detail: Callable[[inventory.DeviceRow], str],
    into: dict[str, list[FoundObject]],
) -> None:
    """The devices the database finds for ``where``, per customer whose Intune is known."""
    for device in inventory.managed_devices_of(facts.conn, where=where):
        if device.tenant_id in known:
            into[device.tenant_id].append(FoundObject(device.id, device.name, detail(device)))


def _per_customer(
    facts: Facts,
    check: Check,
    where: Any,
    detail: Callable[[inventory.DeviceRow], str],
    summary: Callable[[int], str],
) -> Iterable[Outcome]:
    known, unknowns = _intune_known(facts, check)
    yield from unknowns
    found: dict[str, list[FoundObject]] = defaultdict(list)
    _collect(facts, known, where, detail, found)
    for tenant, objects in found.items():
        yield check.finding(tenant, summary(len(objects)), objects)


def _os(device: inventory.DeviceRow) -> str:
    return " ".join(p for p in (device.operating_system, device.os_version) if p) or "unknown OS"


def stale(facts: Facts, check: Check) -> Iterable[Outcome]:
    cutoff = facts.now - timedelta(days=STALE_DAYS)
    md = managed_devices.c
    return _per_customer(
        facts,
        check,
        md.last_sync < cutoff,
        lambda d: f"last check-in {day(d.last_sync)}, {_os(d)}",
        lambda n: f"{plural(n, 'device')} silent for more than {STALE_DAYS} days",
    )


def noncompliant(facts: Facts, check: Check) -> Iterable[Outcome]:
    return _per_customer(
        facts,
        check,
        managed_devices.c.compliance_state == "noncompliant",
        lambda d: f"{_os(d)}; user {d.user or 'none'}",
        lambda n: f"{plural(n, 'device')} not compliant",
    )


def unencrypted(facts: Facts, check: Check) -> Iterable[Outcome]:
    return _per_customer(
        facts,
        check,
        managed_devices.c.is_encrypted.is_(False),
        lambda d: f"{_os(d)}; user {d.user or 'none'}",
        lambda n: f"{plural(n, 'device')} not encrypted",
    )


def unsupported_os(facts: Facts, check: Check) -> Iterable[Outcome]:
    """HIGH where some device is out of support in every edition, MEDIUM where only Home and
    Pro editions are (Enterprise and Education are serviced a year longer).

    The table is asked once per distinct (system, version) the fleet has, and the database
    then returns only the devices on a version out of support."""
    table = os_support.table()
    today = facts.now.date()
    out: dict[tuple[str, str], os_support.Verdict] = {}
    for os_name, version in inventory.os_versions(facts.conn, os_support.OPERATING_SYSTEMS):
        verdict = table.verdict(os_name, version, today)
        if verdict is not None:
            out[os_name, version] = verdict
    known, unknowns = _intune_known(facts, check)
    yield from unknowns
    found: dict[str, list[FoundObject]] = defaultdict(list)
    by_os: dict[str, list[str]] = defaultdict(list)
    for os_name, version in out:
        by_os[os_name].append(version)
    md = managed_devices.c
    everywhere: set[str] = set()
    texts = {key: verdict.text for key, verdict in out.items()}  # one per version, not device

    def detail(d: inventory.DeviceRow) -> str:
        key = (d.operating_system or "", d.os_version or "")
        if out[key].everywhere:
            everywhere.add(d.tenant_id)
        return texts[key]

    for os_name, versions in by_os.items():
        for at in range(0, len(versions), IN_LIST):
            chunk = versions[at : at + IN_LIST]
            where = and_(md.operating_system == os_name, md.os_version.in_(chunk))
            _collect(facts, known, where, detail, found)
    for tenant, objects in found.items():
        yield check.finding(
            tenant,
            f"{plural(len(objects), 'device')} on a version without security updates",
            objects,
            severity=Severity.HIGH if tenant in everywhere else Severity.MEDIUM,
        )


CHECKS = (
    Check(
        "devices.stale",
        f"Managed devices silent for {STALE_DAYS} days",
        Severity.MEDIUM,
        "A device that no longer checks in gets no policies, no updates and no compliance "
        "evaluation: it may be lost, stolen or wiped, and still counts as managed.",
        "Find out whether the device is still in use; retire or wipe it in Intune if not.",
        stale,
    ),
    Check(
        "devices.noncompliant",
        "Non-compliant devices",
        Severity.MEDIUM,
        "A device that fails the customer's compliance policy is one the customer decided not "
        "to trust; with Conditional Access it is locked out, without it, it is not.",
        "Open the device in Intune, see which setting fails and fix it with its user.",
        noncompliant,
    ),
    Check(
        "devices.unencrypted",
        "Unencrypted devices",
        Severity.MEDIUM,
        "A lost unencrypted laptop or phone gives its data to whoever finds it.",
        "Turn on BitLocker or FileVault through an Intune disk encryption policy; make "
        "encryption part of the compliance policy.",
        unencrypted,
    ),
    Check(
        "devices.os_unsupported",
        "Devices on an operating system without security updates",
        Severity.HIGH,
        "A version past its end of servicing gets no more security fixes: every new flaw stays "
        "open.",
        "Update the devices to a supported version (Windows Update for Business or a feature "
        "update policy in Intune); replace those that cannot run one.",
        unsupported_os,
    ),
)
