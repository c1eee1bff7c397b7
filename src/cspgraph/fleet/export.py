"""The store as spreadsheets: customers, findings, admins, devices, licences.

:func:`tables` reads the store (and runs the checks) once and returns the five tables as rows;
:func:`write_csv` writes one CSV file per table into a folder, :func:`write_xlsx` one workbook
with a sheet per table (XlsxWriter, the ``xlsx`` extra). An unknown value is an empty cell,
never 0. The files hold tenant data: they are created readable by their owner only (0600).

A cell that starts like a formula (``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is
written as text: in CSV with a leading apostrophe (OWASP's advice against formula injection: a
tenant's display name is chosen by whoever administers the tenant), in the workbook as a string
cell, which spreadsheet programs never evaluate.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cspgraph.config import write_private_file
from cspgraph.fleet import inventory
from cspgraph.fleet.checks import CheckResults, run_checks
from cspgraph.fleet.checks.os_support import table as os_table
from cspgraph.fleet.needs_action import needs_action
from cspgraph.fleet.report import in_action_order
from cspgraph.fleet.store import Store

DATASETS = ("customers", "findings", "admins", "devices", "licences")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | float | bool | datetime | None


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


def tables(
    store: Store, *, only: Sequence[str] = DATASETS, tenants: set[str] | None = None
) -> list[Dataset]:
    """The chosen tables, read in one go (``tenants`` limits them to these customers)."""
    unknown = sorted(set(only) - set(DATASETS))
    if unknown:
        raise ValueError(f"unknown tables {unknown}; expected some of {list(DATASETS)}")
    results = run_checks(store, tenants=tenants)
    summaries = in_action_order(store.customer_summaries(), needs_action(results))
    if tenants is not None:
        summaries = [s for s in summaries if s.tenant_id in tenants]
    names = {s.tenant_id: s.display_name for s in summaries}
    out: list[Dataset] = []
    with store.reading() as conn:
        for name in only:
            if name == "customers":
                out.append(_customers(summaries, results))
            elif name == "findings":
                out.append(_findings(results))
            elif name == "admins":
                holders = [h for h in inventory.role_holders(conn) if h.tenant_id in names]
                out.append(_admins(holders, names))
            elif name == "devices":
                devices = inventory.managed_devices_of(conn)
                out.append(_devices((d for d in devices if d.tenant_id in names), names, results))
            else:
                skus = [s for s in inventory.licences(conn) if s.tenant_id in names]
                out.append(_licences(skus, names))
    return out


def _customers(summaries: Iterable[Any], results: CheckResults) -> Dataset:
    worst: dict[str, str] = {}
    count: dict[str, int] = {}
    for f in results.findings:
        if f.tenant_id is None:
            continue
        count[f.tenant_id] = count.get(f.tenant_id, 0) + 1
        worst.setdefault(f.tenant_id, f.severity.label)  # findings come worst first
    rows: list[tuple[Cell, ...]] = []
    for s in summaries:
        known = s.synced
        intune = known and s.intune_unknown is None
        rows.append(
            (
                s.display_name, s.domain, s.tenant_id, s.region, s.status, s.status_reason,
                s.last_sync_at, s.gone_since, worst.get(s.tenant_id), count.get(s.tenant_id, 0),
                s.users if known else None, s.users_disabled if known else None,
                s.guests if known else None, s.admins, s.devices if known else None,
                s.managed_devices if intune else None, s.noncompliant if intune else None,
                s.licences_bought, s.licences_unused,
            )
        )  # fmt: skip
    columns = (
        "customer", "domain", "tenant_id", "region", "sync_status", "sync_reason",
        "last_sync_at", "gone_since", "worst_finding", "findings", "users", "users_disabled",
        "guests", "global_admins", "devices", "managed_devices", "noncompliant",
        "licences_bought", "licences_unused",
    )  # fmt: skip
    return Dataset("customers", columns, rows)


def _findings(results: CheckResults) -> Dataset:
    rows: list[tuple[Cell, ...]] = []
    for f in results.findings:
        customer = results.customers.get(f.tenant_id or "")
        objects = "; ".join(
            (o.name or o.id) + (f" ({o.detail})" if o.detail else "") for o in f.objects
        )
        rows.append(
            (
                f.severity.label, f.check_id, f.title, results.name_of(f.tenant_id),
                customer.domain if customer else None, f.tenant_id, f.subject or None,
                f.summary, f.fix, len(f.objects), objects, f.key,
            )
        )  # fmt: skip
    columns = (
        "severity", "check", "title", "customer", "domain", "tenant_id", "subject", "finding",
        "next_step", "objects", "object_names", "key",
    )  # fmt: skip
    return Dataset("findings", columns, rows)


def _admins(holders: Iterable[inventory.RoleHolder], names: dict[str, str]) -> Dataset:
    rows: list[tuple[Cell, ...]] = [
        (
            names[h.tenant_id], h.tenant_id, h.role, h.name, h.holder_id, h.kind, h.enabled,
            h.via_group,
        )
        for h in holders
    ]  # fmt: skip
    columns = (
        "customer",
        "tenant_id",
        "role",
        "holder",
        "holder_id",
        "kind",
        "enabled",
        "through_group",
    )
    return Dataset("admins", columns, rows)


def _devices(
    devices: Iterable[inventory.DeviceRow], names: dict[str, str], results: CheckResults
) -> Dataset:
    table = os_table()
    today = results.evaluated_at.date()
    rows: list[tuple[Cell, ...]] = []
    for d in devices:
        verdict = table.verdict(d.operating_system, d.os_version, today)
        rows.append(
            (
                names[d.tenant_id], d.tenant_id, d.name, d.id, d.operating_system, d.os_version,
                verdict.text if verdict else None, d.compliance_state, d.is_encrypted,
                d.last_sync, d.user,
            )
        )  # fmt: skip
    columns = (
        "customer", "tenant_id", "device", "device_id", "os", "os_version", "os_support",
        "compliance", "encrypted", "last_check_in", "user",
    )  # fmt: skip
    return Dataset("devices", columns, rows)


def _licences(skus: Iterable[inventory.LicenceRow], names: dict[str, str]) -> Dataset:
    rows: list[tuple[Cell, ...]] = [
        (
            names[s.tenant_id], s.tenant_id, s.part_number, s.sku_id, s.status, s.bought,
            s.assigned, s.unused, s.on_disabled_users,
        )
        for s in skus
    ]  # fmt: skip
    columns = (
        "customer", "tenant_id", "sku", "sku_id", "status", "bought", "assigned", "unused",
        "on_disabled_users",
    )  # fmt: skip
    return Dataset("licences", columns, rows)


# --- writing -------------------------------------------------------------------------------------


def safe_text(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START) else value


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return safe_text(value)


def write_csv(datasets: Iterable[Dataset], folder: Path) -> list[Path]:
    """One ``<table>.csv`` per table (UTF-8 with a byte order mark, which Excel needs to read
    UTF-8); returns the files written."""
    written = []
    for data in datasets:
        path = folder / f"{data.name}.csv"
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(data.columns)
        writer.writerows([_csv_cell(v) for v in row] for row in data.rows)
        # Tenant data: 0600 from creation, and a link at the path is replaced, never followed.
        write_private_file(path, "\ufeff" + text.getvalue())
        written.append(path)
    return written


class XlsxUnavailable(RuntimeError):
    """XlsxWriter is not installed (the ``xlsx`` extra)."""


def write_xlsx(datasets: Iterable[Dataset], path: Path) -> Path:
    """One workbook, a sheet per table: header row frozen and filterable, dates as dates."""
    try:
        import xlsxwriter  # the xlsx extra only: most installs never write a workbook
    except ImportError:
        raise XlsxUnavailable(
            "writing .xlsx needs XlsxWriter: pip install 'cspgraph[xlsx]'"
        ) from None
    book = io.BytesIO()  # written whole below, as the CSV files are (0600, links replaced)
    workbook = xlsxwriter.Workbook(
        book,
        {
            "in_memory": True,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
        },
    )
    bold = workbook.add_format({"bold": True})
    when = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    try:
        for data in datasets:
            sheet = workbook.add_worksheet(data.name)
            widths = [len(c) for c in data.columns]
            for col, name in enumerate(data.columns):
                sheet.write_string(0, col, name, bold)
            for r, row in enumerate(data.rows, start=1):
                for col, value in enumerate(row):
                    _xlsx_cell(sheet, r, col, value, when)
                    if isinstance(value, str):
                        widths[col] = max(widths[col], min(len(value), 60))
            for col, width in enumerate(widths):
                sheet.set_column(col, col, width + 2)
            sheet.freeze_panes(1, 0)
            sheet.autofilter(0, 0, max(len(data.rows), 1), len(data.columns) - 1)
    finally:
        workbook.close()
    write_private_file(path, book.getvalue())
    return path


def _xlsx_cell(sheet: Any, row: int, col: int, value: Cell, when: Any) -> None:
    if value is None:
        sheet.write_blank(row, col, None)
    elif isinstance(value, bool):
        sheet.write_boolean(row, col, value)
    elif isinstance(value, int | float):
        sheet.write_number(row, col, value)
    elif isinstance(value, datetime):
        # Excel has no time zones: the store's times are UTC, written as such.
        sheet.write_datetime(row, col, value.replace(tzinfo=None), when)
    else:
        sheet.write_string(row, col, value)
