"""Managed devices that need a look: silent for a month, non-compliant, unencrypted, or on an
operating system version that no longer gets security updates."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from cspgraph.fleet import inventory
from cspgraph.fleet.checks import os_support
from cspgraph.fleet.checks.facts import Facts
from cspgraph.fleet.checks.model import Check, FoundObject, Outcome, Severity, day, plural
from cspgraph.fleet.schema import managed_devices

STALE_DAYS = 30
MANAGED = "managedDevices"


def _matching(
    facts: Facts,
    check: Check,
    where: Any,
    keep: Callable[[inventory.DeviceRow], str | None],
) -> tuple[dict[str, list[FoundObject]], list[Outcome]]:
    """Devices matching ``where`` (SQL) and ``keep`` (which returns the object's detail, or
    None to leave it out), per customer; unknowns where Intune is not readable."""
    known = set()
    unknowns: list[Outcome] = []
    for customer in facts.checkable():
        why = facts.unknown_reason(customer.tenant_id, MANAGED)
        if why is None:
            known.add(customer.tenant_id)
        else:
            unknowns.append(check.unknown(customer.tenant_id, why))
    found: dict[str, list[FoundObject]] = defaultdict(list)
    for device in inventory.managed_devices_of(facts.conn, where=where):
        if device.tenant_id not in known:
            continue
        detail = keep(device)
        if detail is not None:
            found[device.tenant_id].append(FoundObject(device.id, device.name, detail))
    return found, unknowns


def _per_customer(
    facts: Facts,
    check: Check,
    where: Any,
    keep: Callable[[inventory.DeviceRow], str | None],
    summary: Callable[[int], str],
) -> Iterable[Outcome]:
    found, unknowns = _matching(facts, check, where, keep)
    yield from unknowns
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
    Pro editions are (Enterprise and Education are serviced a year longer)."""
    table = os_support.table()
    today = facts.now.date()
    verdicts: dict[tuple[str | None, str | None], os_support.Verdict | None] = {}
    everywhere: set[str] = set()

    def keep(d: inventory.DeviceRow) -> str | None:
        key = (d.operating_system, d.os_version)
        if key not in verdicts:
            verdicts[key] = table.verdict(d.operating_system, d.os_version, today)
        found = verdicts[key]
        if found is None:
            return None
        if found.everywhere:
            everywhere.add(d.tenant_id)
        return found.text

    md = managed_devices.c
    where = md.operating_system.in_(["Windows", "iOS", "iPadOS", "Android"])
    found, unknowns = _matching(facts, check, where, keep)
    yield from unknowns
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
