"""`cspgraph check`: what needs action, from the store, for cron and CI."""

from __future__ import annotations

import typer

from cspgraph.cli import common

FAIL_ON_HELP = (
    "Exit with status 3 when a finding of this severity or worse exists: high, medium, low "
    "(for cron and CI)."
)


def check(
    db: str = common.DB_OPTION,
    customer: str | None = typer.Option(
        None,
        "--customer",
        metavar="CUSTOMER",
        help="Only this customer: a tenant ID, a domain or (part of) its name.",
    ),
    fail_on: str | None = typer.Option(None, "--fail-on", metavar="SEVERITY", help=FAIL_ON_HELP),
    list_checks: bool = typer.Option(False, "--list", help="List the checks and exit."),
    json_out: bool = common.JSON_OPTION,
) -> None:
    """Run the checks over the synced fleet: findings (worst first), what is unknown and why,
    and what changed since the last sync. Never calls Graph."""
    with common.command():
        from cspgraph.fleet.checks import CHECKS, GAPS, Severity, match_customers, run_checks

        threshold = None
        if fail_on is not None:
            try:
                threshold = Severity.parse(fail_on)
            except ValueError as exc:
                raise common.UsageError(f"--fail-on: {exc}") from None
        as_json = common.wants_json(json_out)
        if list_checks:
            if as_json:
                common.print_json({"checks": [c.as_dict() for c in CHECKS], "not_yet": GAPS})
            else:
                from cspgraph.fleet.check_view import checks_view

                common.console().print(checks_view(CHECKS, GAPS))
            return
        with common.existing_store(db) as store:
            results = run_checks(store)
            if customer is not None:
                tenants = match_customers(results.customers, customer)
                if not tenants:
                    raise common.UsageError(
                        f"--customer {customer}: no such customer in the store (give a tenant "
                        "ID, a domain or part of its name)"
                    )
                results = run_checks(store, now=results.evaluated_at, tenants=tenants)
        if as_json:
            common.print_json(results.as_dict())
        else:
            from cspgraph.fleet.check_view import results_view

            console = common.console()
            console.print(results_view(results, console.width))
    if threshold is not None and (worse := results.at_or_above(threshold)):
        # Exit 3 says "somebody must act"; the findings above are the result, printed even so.
        common.fail(
            common.Exit.NEEDS_PERSON,
            f"error: needs_person: {len(worse)} finding(s) at or above {threshold.label}",
        )
