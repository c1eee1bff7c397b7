"""`cspgraph setup`, `cspgraph customers list|create`, `cspgraph onboard`: the partner's side.

Thin: each command reads its options, calls :mod:`cspgraph.partner`, prints. Output is a Rich
table or progress display on a terminal, JSON when piped or with ``--json``. A secret or a
customer's first admin password is shown once, on the terminal, and never logged.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from cspgraph.config import Config
    from cspgraph.partner.center import CreatedCustomer, NewCustomer, Secret

customers_app = typer.Typer(help="Partner Center customers of every region.", no_args_is_help=True)

CONFIG_OPTION = typer.Option(
    None, "--config", help="Configuration file (default: $CSPGRAPH_CONFIG or ~/.config/...)."
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON (the default when piped).")
REGION_HELP = "The region (as configured: NA, EU, …); needed when several are configured."

# Billing address used against the emulator only, which does not check addresses.
_EMULATOR_ADDRESS = {"address_line1": "1 Emulator Way", "city": "Redmond", "state": "WA",
                     "postal_code": "98052"}  # fmt: skip


# -- shared plumbing -------------------------------------------------------------------------------


def _console(err: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=err, highlight=False)


def _wants_json(flag: bool) -> bool:
    return flag or not sys.stdout.isatty()


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@contextmanager
def _errors() -> Iterator[None]:
    """Library errors end the command with their message and an exit code (2: a person must
    act; 1: anything else)."""
    from cspgraph.config import ConfigError
    from cspgraph.http.errors import CspGraphError, ErrorClass

    try:
        yield
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except CspGraphError as exc:
        typer.echo(f"error: {exc}", err=True)
        if exc.reason and exc.reason not in str(exc):
            typer.echo(f"  ({exc.error_class}: {exc.reason})", err=True)
        raise typer.Exit(2 if exc.error_class is ErrorClass.NEEDS_PERSON else 1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted; run the same command again to continue", err=True)
        raise typer.Exit(130) from None


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``"45s"``, ``"3m"``, ``"1h30m"``."""
    value = text.strip().lower()
    try:
        return float(value)
    except ValueError:
        pass
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", value)
    if not value or match is None or not any(match.groups()):
        raise typer.BadParameter(f"expected a duration like 90, 45s, 3m or 1h, got {text!r}")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _load(config_path: Path | None) -> Config:
    from cspgraph.config import load_config

    return load_config(config_path, required=True)


def _show_once(label: str, secret: Secret | str, password_file: Path | None = None) -> None:
    """Show a secret once, on the terminal (stderr, so stdout can stay JSON), or put it in a
    0600 file."""
    from cspgraph.config import write_private_file

    value = secret if isinstance(secret, str) else secret.reveal()
    if password_file is not None:
        write_private_file(password_file, value + "\n")
        typer.echo(f"{label}: written to {password_file} (readable by you only)", err=True)
        return
    typer.echo(f"{label} (shown once, keep it now): {value}", err=True)


# -- cspgraph setup --------------------------------------------------------------------------------


def setup(
    region: str = typer.Option(..., "--region", help="The region this partner tenant serves."),
    tenant: str | None = typer.Option(
        None, "--tenant", help="The partner tenant (domain or ID); default: the configured one."
    ),
    name: str | None = typer.Option(None, "--name", help="The app's display name."),
    for_: str | None = typer.Option(
        None, "--for", help="Least privilege for an operation set: sync, smoke-test."
    ),
    operation: list[str] = typer.Option(
        [], "--operation", help='Least privilege for an operation, e.g. "GET /users" (repeat).'
    ),
    permissions: str | None = typer.Option(
        None, "--permissions", help="Graph permissions by name, comma-separated (Group.Read.All)."
    ),
    delegated: str | None = typer.Option(
        None, "--delegated", help="Delegated permissions, if not the same as --permissions."
    ),
    secret: bool = typer.Option(False, "--secret", help="A client secret instead of a cert."),
    secret_env: str | None = typer.Option(
        None,
        "--secret-env",
        help="Show the secret once for this environment variable instead "
        "of keeping it in a 0600 file.",
    ),
    credential_path: Path | None = typer.Option(
        None, "--credential-path", help="Where the PEM (or secret file) is kept."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan, change nothing."),
    device_code: bool = typer.Option(
        False, "--device-code", help="Sign in with a code on another device (no browser here)."
    ),
    json_out: bool = JSON_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Register (or check) the partner-managed app of a region, as the seed describes it."""
    from cspgraph.config import ConfigFile
    from cspgraph.graph.client import GraphClient
    from cspgraph.http.sessions import requests_session
    from cspgraph.partner.auth import AdminSignIn, DeviceCodePrompt
    from cspgraph.partner.setup import (
        DEFAULT_APP_NAME,
        SetupOptions,
        SetupStep,
        plan_permissions,
        setup_partner_app,
    )

    err = _console(err=True)
    with _errors():
        file = ConfigFile.read(config)
        path = file.path
        cloud = file.cloud()
        configured = file.region(region)
        partner_tenant = tenant or configured.get("partner_tenant")
        if not partner_tenant:
            raise typer.BadParameter(
                f"regions.{region} is not configured yet: name its partner tenant with --tenant "
                "(e.g. --tenant partner.onmicrosoft.com)"
            )
        names = [p for p in (permissions or "").split(",") if p.strip()]
        plan = plan_permissions(
            preset=for_ or (None if names or operation else "sync"),
            operations=operation,
            permissions=names,
            delegated=[p for p in delegated.split(",")] if delegated is not None else None,
        )
        options = SetupOptions(
            name=name or str(configured.get("app_name") or DEFAULT_APP_NAME),
            permissions=plan,
            credential="secret" if secret or secret_env else "certificate",
            secret_storage="env" if secret_env else "file",
            secret_env=secret_env,
            credential_path=credential_path,
            dry_run=dry_run,
        )
        session = requests_session(cloud.ca_bundle)
        admin = AdminSignIn(cloud, partner_tenant, session=session)

        def prompt(p: DeviceCodePrompt) -> None:
            err.print(p.message or f"Open {p.verification_uri} and enter {p.user_code}")

        err.print(f"Sign in as an administrator of {partner_tenant} …")
        if device_code:
            account = admin.sign_in_device_code(prompt)
        else:
            account = admin.sign_in_interactive(
                show_url=lambda url: err.print(f"Open this address to sign in:\n{url}")
            )
        err.print(f"Signed in as {account.username}")

        def step(item: SetupStep) -> None:
            if not _wants_json(json_out):
                mark = {"already done": "✓", "changed": "✚", "would change": "…"}[item.status]
                err.print(f"{mark} {item.name}: {item.status} — {item.detail}")

        def show_secret(env_name: str, value: str) -> None:
            _show_once(f"client secret for ${env_name}", value)

        async def go() -> Any:
            async with GraphClient(admin, graph_url=cloud.graph, ca_bundle=cloud.ca_bundle) as g:
                return await setup_partner_app(
                    g,
                    partner_tenant,
                    region=region,
                    config_path=path,
                    options=options,
                    on_step=step,
                    show_secret=show_secret,
                    graph_resource=cloud.graph_resource,
                )

        try:
            import asyncio  # imported where used: keeps `cspgraph --help` fast

            report = asyncio.run(go())
        finally:
            session.close()
    if _wants_json(json_out):
        _print_json(report.as_dict())
        return
    verdict = (
        "dry run: nothing was changed"
        if dry_run
        else "everything was already in place"
        if not report.changed
        else f"done; regions.{region} is in {path}"
    )
    err.print(f"{verdict} (app {report.client_id or '(not registered)'})")


# -- cspgraph customers list / create --------------------------------------------------------------


@customers_app.command("list")
def customers_list(
    region: str | None = typer.Option(None, "--region", help="Only this region."),
    json_out: bool = JSON_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Every customer of every configured region, from Partner Center."""
    from cspgraph.identity import TokenProvider
    from cspgraph.partner.center import PartnerCenterClient

    rows: list[dict[str, Any]] = []
    with _errors():
        cfg = _load(config)
        regions = [cfg.region_identity(region).region] if region else list(cfg.identities)

        async def listing() -> None:
            async with TokenProvider(cfg, workers=1) as provider:
                for name in regions:
                    async with PartnerCenterClient.for_region(provider, name) as client:
                        async for customer in client.list_customers():
                            rows.append({"region": name, **customer.as_dict()})

        import asyncio  # imported where used: keeps `cspgraph --help` fast

        asyncio.run(listing())
    if _wants_json(json_out):
        _print_json(rows)
        return
    from rich.table import Table

    table = Table(title=f"{len(rows)} customer(s)")
    for column in ("region", "domain", "company", "tenant id", "relationship"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["region"],
            row["domain"],
            row["company_name"] or "",
            row["tenant_id"],
            row["relationship"] or "",
        )
    _console().print(table)


def _new_customer(
    cfg: Config,
    *,
    domain: str,
    name: str,
    email: str | None,
    country: str,
    address_line1: str | None,
    city: str | None,
    state: str | None,
    postal_code: str | None,
    first_name: str | None,
    last_name: str | None,
    phone: str | None,
    culture: str,
    language: str,
) -> NewCustomer:
    from cspgraph.partner.center import BillingAddress, NewCustomer

    address: dict[str, Any] = {
        "address_line1": address_line1,
        "city": city,
        "state": state,
        "postal_code": postal_code,
    }
    if cfg.model.emulator:
        address = {k: v or _EMULATOR_ADDRESS[k] for k, v in address.items()}
    missing = [k.replace("_", "-") for k in ("address_line1", "city") if not address[k]]
    if missing:
        raise typer.BadParameter(
            "Partner Center needs the customer's billing address: pass "
            + " ".join(f"--{m} …" for m in missing)
            + " (and --state, --postal-code where the country has them)"
        )
    return NewCustomer(
        domain=domain,
        company_name=name,
        email=email or f"admin@{domain}",
        address=BillingAddress(
            address_line1=str(address["address_line1"]),
            city=str(address["city"]),
            country=country,
            state=address["state"],
            postal_code=address["postal_code"],
            first_name=first_name,
            last_name=last_name,
            phone_number=phone,
        ),
        culture=culture,
        language=language,
    )


# Billing options shared by `customers create` and `onboard`.
EMAIL = typer.Option(None, "--email", help="Billing contact email (default: admin@DOMAIN).")
COUNTRY = typer.Option("US", "--country", help="ISO country code of the billing address.")
ADDRESS = typer.Option(None, "--address-line1", envvar="CSPGRAPH_BILLING_ADDRESS")
CITY = typer.Option(None, "--city", envvar="CSPGRAPH_BILLING_CITY")
STATE = typer.Option(None, "--state", envvar="CSPGRAPH_BILLING_STATE")
POSTAL = typer.Option(None, "--postal-code", envvar="CSPGRAPH_BILLING_POSTAL_CODE")
FIRST = typer.Option(None, "--first-name", help="Billing contact's first name.")
LAST = typer.Option(None, "--last-name", help="Billing contact's last name.")
PHONE = typer.Option(None, "--phone", help="Billing phone (required in some countries).")
CULTURE = typer.Option("en-US", "--culture")
LANGUAGE = typer.Option("en", "--language")
PASSWORD_FILE = typer.Option(
    None, "--password-file", help="Put the new admin's password in this 0600 file, not on screen."
)


@customers_app.command("create")
def customers_create(
    domain: str = typer.Option(..., "--domain", help="e.g. contoso-new.onmicrosoft.com"),
    name: str = typer.Option(..., "--name", help="The company's name."),
    region: str | None = typer.Option(None, "--region", help=REGION_HELP),
    email: str | None = EMAIL,
    country: str = COUNTRY,
    address_line1: str | None = ADDRESS,
    city: str | None = CITY,
    state: str | None = STATE,
    postal_code: str | None = POSTAL,
    first_name: str | None = FIRST,
    last_name: str | None = LAST,
    phone: str | None = PHONE,
    culture: str = CULTURE,
    language: str = LANGUAGE,
    password_file: Path | None = PASSWORD_FILE,
    json_out: bool = JSON_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Create a customer in Partner Center (or find it: the same domain is never created twice)."""
    from cspgraph.identity import TokenProvider
    from cspgraph.partner.center import PartnerCenterClient

    with _errors():
        cfg = _load(config)
        identity = cfg.region_identity(region)
        new = _new_customer(
            cfg, domain=domain, name=name, email=email, country=country,
            address_line1=address_line1, city=city, state=state, postal_code=postal_code,
            first_name=first_name, last_name=last_name, phone=phone, culture=culture,
            language=language,
        )  # fmt: skip

        async def create() -> CreatedCustomer:
            async with (
                TokenProvider(cfg, workers=1) as provider,
                PartnerCenterClient.for_region(provider, identity.region) as client,
            ):
                return await client.ensure_customer(new)

        import asyncio  # imported where used: keeps `cspgraph --help` fast

        created = asyncio.run(create())
    data = {"region": identity.region, "created": created.created, **created.customer.as_dict()}
    if created.admin_username:
        data["admin_username"] = created.admin_username
    if _wants_json(json_out):
        _print_json(data)
    else:
        verb = "created" if created.created else "already a customer"
        _console().print(
            f"{domain}: {verb} — tenant {created.customer.tenant_id} ({identity.region})"
        )
    if created.admin_password is not None:
        _show_once(f"password of {created.admin_username}", created.admin_password, password_file)


# -- cspgraph onboard ------------------------------------------------------------------------------


def onboard(
    domain: str = typer.Option(..., "--domain", help="e.g. contoso-new.onmicrosoft.com"),
    name: str = typer.Option(..., "--name", help="The company's name."),
    region: str | None = typer.Option(None, "--region", help=REGION_HELP),
    initial_wait: str = typer.Option("3m", "--initial-wait", help="No token before this."),
    retry_every: str = typer.Option("60s", "--retry-every", help="Between denied attempts."),
    budget: str = typer.Option("15m", "--budget", help="Give up this long after creation."),
    state_dir: Path | None = typer.Option(
        None, "--state-dir", help="Where the per-domain state files are kept."
    ),
    emulator_clock: bool = typer.Option(
        False,
        "--emulator-clock",
        help="Move the emulator's world clock instead of waiting (emulator configurations).",
    ),
    email: str | None = EMAIL,
    country: str = COUNTRY,
    address_line1: str | None = ADDRESS,
    city: str | None = CITY,
    state: str | None = STATE,
    postal_code: str | None = POSTAL,
    first_name: str | None = FIRST,
    last_name: str | None = LAST,
    phone: str | None = PHONE,
    culture: str = CULTURE,
    language: str = LANGUAGE,
    password_file: Path | None = PASSWORD_FILE,
    json_out: bool = JSON_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Create a customer, wait for the partner relationship, prove Graph works (resumable)."""
    from cspgraph.identity import TokenProvider
    from cspgraph.partner.onboarding import (
        Clock,
        EmulatorClock,
        OnboardingResult,
        OnboardingSettings,
        OnboardingStore,
        SystemClock,
        onboard,
    )

    settings = OnboardingSettings(
        initial_wait=parse_duration(initial_wait),
        retry_every=parse_duration(retry_every),
        budget=parse_duration(budget),
        # A countdown by the second in real time; on the world clock each tick is a request.
        progress_every=15.0 if emulator_clock else 1.0,
    )
    err = _console(err=True)
    with _errors():
        cfg = _load(config)
        identity = cfg.region_identity(region)
        new = _new_customer(
            cfg, domain=domain, name=name, email=email, country=country,
            address_line1=address_line1, city=city, state=state, postal_code=postal_code,
            first_name=first_name, last_name=last_name, phone=phone, culture=culture,
            language=language,
        )  # fmt: skip
        endpoints = cfg.emulator_endpoints()
        if emulator_clock and endpoints is None:
            raise typer.BadParameter("--emulator-clock needs a configuration with `emulator = …`")

        async def go() -> OnboardingResult:
            clock: Clock = SystemClock()
            emulated: EmulatorClock | None = None
            if emulator_clock and endpoints is not None:
                clock = emulated = await EmulatorClock.of(endpoints)
            try:
                async with TokenProvider(cfg, workers=2) as provider:
                    with _live(err, not _wants_json(json_out)) as show:
                        return await onboard(
                            provider,
                            new,
                            region=identity.region,
                            store=OnboardingStore(state_dir),
                            clock=clock,
                            settings=settings,
                            on_progress=show,
                        )
            finally:
                if emulated is not None:
                    await emulated.aclose()

        import asyncio  # imported where used: keeps `cspgraph --help` fast

        result = asyncio.run(go())
    if _wants_json(json_out):
        _print_json(result.as_dict())
    else:
        _console().print(result.summary)
    if result.admin_password is not None:
        _show_once(f"password of {result.admin_username}", result.admin_password, password_file)


@contextmanager
def _live(console: Console, enabled: bool) -> Iterator[Any]:
    """A progress callback: a Rich status line with the state and the time left on a terminal,
    plain lines on stderr otherwise."""
    from cspgraph.partner.onboarding import OnboardingProgress

    if not enabled:

        def quiet(event: OnboardingProgress) -> None:
            if event.until is None:
                typer.echo(f"{event.state}: {event.message}", err=True)

        yield quiet
        return
    with console.status("starting …") as status:

        def show(event: OnboardingProgress) -> None:
            if event.until is None:
                console.print(f"[bold]{event.state}[/bold]: {event.message}")
            status.update(f"{event.state}: {event.message}")

        yield show
