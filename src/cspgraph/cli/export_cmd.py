"""`cspgraph export`: the store as CSV files or an Excel workbook."""

from __future__ import annotations

from pathlib import Path

import typer

from cspgraph.cli import common

TABLES = "customers, findings, admins, devices, licences"


def export(
    format: str = typer.Option(
        "csv", "--format", metavar="FORMAT", help="csv (a folder of files) or xlsx (a workbook)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        metavar="PATH",
        help="Where to write: a folder for csv (default cspgraph-export), a file for xlsx "
        "(default cspgraph-export.xlsx).",
    ),
    only: str | None = typer.Option(
        None, "--only", metavar="LIST", help=f"Only these tables, comma-separated: {TABLES}."
    ),
    customer: str | None = typer.Option(
        None,
        "--customer",
        metavar="CUSTOMER",
        help="Only this customer: a tenant ID, a domain or (part of) its name.",
    ),
    db: str = common.DB_OPTION,
    json_out: bool = common.JSON_OPTION,
) -> None:
    """Export customers, findings, admins, devices and licences from the store (0600 files; an
    unknown value is an empty cell, never 0)."""
    with common.command():
        from cspgraph.fleet.checks import match_customers, run_checks
        from cspgraph.fleet.export import DATASETS, XlsxUnavailable, tables, write_csv, write_xlsx

        kind = format.strip().lower()
        if kind not in ("csv", "xlsx"):
            raise common.UsageError(f"--format {format}: expected csv or xlsx")
        wanted = [t.strip() for t in only.split(",") if t.strip()] if only else list(DATASETS)
        unknown = sorted(set(wanted) - set(DATASETS))
        if unknown:
            raise common.UsageError(f"--only: unknown {unknown}; expected some of: {TABLES}")
        target = out or Path("cspgraph-export" + (".xlsx" if kind == "xlsx" else ""))
        if kind == "csv" and target.exists() and not target.is_dir():
            raise common.UsageError(f"--out {target}: a file; csv needs a folder")
        with common.existing_store(db) as store:
            tenants = None
            if customer is not None:
                found = match_customers(run_checks(store).customers, customer)
                if not found:
                    raise common.UsageError(f"--customer {customer}: no such customer in the store")
                tenants = set(found)
            data = tables(store, only=wanted, tenants=tenants)
        try:
            written = write_csv(data, target) if kind == "csv" else [write_xlsx(data, target)]
        except XlsxUnavailable as exc:
            raise common.UsageError(str(exc)) from None
        except OSError as exc:
            raise common.UsageError(f"--out {target}: {exc.strerror or exc}") from None
        rows = {d.name: len(d.rows) for d in data}
        if common.wants_json(json_out):
            common.print_json({"format": kind, "written": [str(p) for p in written], "rows": rows})
        else:
            for path in written:
                common.say(f"written: {path}")
            common.say(", ".join(f"{name} {n:,}" for name, n in rows.items()))
