"""`cspgraph setup`, `cspgraph customers list|create`, `cspgraph onboard`: the partner's side.

Thin: each command reads its options, calls :mod:`cspgraph.partner`, prints. Output is a Rich
table or progress display on a terminal, JSON when piped or with ``--json``. A secret or a
customer's first admin password is shown once, on the terminal, and never logged.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cspgraph.cli import common

if TYPE_CHECKING:
    from rich.console import Console

    from cspgraph.config import Config
    from cspgraph.partner.center import CreatedCustomer, NewCustomer, Secret
    from cspgraph.partner.onboarding import OnboardingResult, OnboardingSettings

customers_app = typer.Typer(
    help="Partner Center customers of every region.",
    no_args_is_help=True,
    context_settings=common.CONTEXT_SETTINGS,
)

CONFIG_OPTION = common.CONFIG_OPTION
JSON_OPTION = common.JSON_OPTION
REGION_HELP = "The region (as configured: NA, EU, …); needed when several are configured."

# Billing address used against the emulator only, which does not check addresses.
_EMULATOR_ADDRESS = {"address_line1": "1 Emulator Way", "city": "Redmond", "state": "WA",
                     "postal_code": "98052"}  # fmt: skip


# -- shared plumbing -------------------------------------------------------------------------------


# Ctrl-C during set-up or onboarding: each step is idempotent, or resumable from its state file.
AGAIN = "interrupted; run the same command again to continue"


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


def _password_goes_somewhere(password_file: Path | None) -> None:
    """Before a customer is created: its first admin's password will be shown on a terminal or
    written to ``--password-file``, never to a pipe or a log (``2>>cron.log`` would keep it)."""
    if password_file is None:
        if not sys.stderr.isatty():
            raise common.UsageError(
                "the new customer's admin password is shown only on a terminal, and stderr is "
                "not one: pass --password-file FILE to have it written there (0600)"
            )
        return
    if password_file.is_dir():
        raise common.UsageError(f"--password-file {password_file}: is a directory")
    if password_file.exists() or password_file.is_symlink():
        # A new password goes to a new file: overwriting one (a typo'd path, a link to
        # /etc/passwd) would destroy what was there.
        raise common.UsageError(
            f"--password-file {password_file}: exists; name a new file (nothing is overwritten)"
        )
    parent = next((p for p in password_file.absolute().parents if p.exists()), None)
    if parent is None or not os.access(parent, os.W_OK | os.X_OK):
        raise common.UsageError(f"--password-file {password_file}: cannot be written here")


def _show_once(label: str, secret: Secret | str, password_file: Path | None = None) -> None:
    """Show a secret once, on the terminal (stderr, so stdout can stay JSON), or put it in a
    0600 file."""
    from cspgraph.config import write_private_file

    value = secret if isinstance(secret, str) else secret.reveal()
    if password_file is not None:
        try:
            write_private_file(password_file, value + "\n", exclusive=True)
        except OSError as exc:
            if not sys.stderr.isatty():  # checked writable before; the secret cannot go anywhere
                common.fail(
                    common.Exit.PARTLY_DONE,
                    f"error: {label}: cannot write {password_file} ({exc.strerror}); it is not "
                    "shown off a terminal: reset it in the admin centre",
                )
            typer.echo(f"{label}: cannot write {password_file} ({exc.strerror})", err=True)
        else:
            typer.echo(f"{label}: written to {password_file} (readable by you only)", err=True)
            return
    if not sys.stderr.isatty():  # callers check first; a pipe or a log never gets a secret
        common.fail(common.Exit.PARTLY_DONE, f"error: {label}: not shown (stderr is no terminal)")
    typer.echo(f"{label} (shown once, keep it now): {value}", err=True)


# -- cspgraph setup --------------------------------------------------------------------------------


def setup(
    region: str = typer.Option(
        ..., "--region", metavar="REGION", help="The region this partner tenant serves."
    ),
    tenant: str | None = typer.Option(
        None,
        "--tenant",
        metavar="TENANT",
        help="The partner tenant (domain or ID); default: the configured one.",
    ),
    name: str | None = typer.Option(None, "--name", metavar="NAME", help="The app's display name."),
    for_: str | None = typer.Option(
        None, "--for", metavar="SET", help="Least privilege for an operation set: sync, smoke-test."
    ),
    operation: list[str] = typer.Option(
        [],
        "--operation",
        metavar="'METHOD PATH'",
        help='Least privilege for an operation, e.g. "GET /users" (repeat).',
    ),
    permissions: str | None = typer.Option(
        None,
        "--permissions",
        metavar="LIST",
        help="Graph permissions by name, comma-separated (Group.Read.All).",
    ),
    delegated: str | None = typer.Option(
        None,
        "--delegated",
        metavar="LIST",
        help="Delegated permissions, if not the same as --permissions.",
    ),
    secret: bool = typer.Option(False, "--secret", help="A client secret instead of a cert."),
    secret_env: str | None = typer.Option(
        None,
        "--secret-env",
        metavar="VAR",
        help="Show the secret once for this environment variable instead "
        "of keeping it in a 0600 file.",
    ),
    credential_path: Path | None = typer.Option(
        None, "--credential-path", metavar="PATH", help="Where the PEM (or secret file) is kept."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan, change nothing."),
    device_code: bool = typer.Option(
        False, "--device-code", help="Sign in with a code on another device (no browser here)."
    ),
    json_out: bool = JSON_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Register (or check) the partner-managed app of a region, as the seed describes it."""
    from cspgraph.config import ConfigFile, config_origin, describe_config_path
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

    with common.command(interrupted=AGAIN):
        if secret_env and not sys.stderr.isatty():
            raise common.UsageError(
                "--secret-env shows the new client secret once, on a terminal, and stderr is not "
                "one: run it on a terminal, or use --secret alone (kept in a 0600 file)"
            )
        file = ConfigFile.read(config)
        path = file.path
        label = describe_config_path(path, config_origin(config))
        settings = file.settings()
        cloud = settings.cloud()
        configured = file.region(region)
        partner_tenant = tenant or configured.get("partner_tenant")
        if not partner_tenant:
            raise common.UsageError(
                f"regions.{region} is not configured yet in {label}: name its partner tenant "
                "with --tenant (e.g. --tenant partner.onmicrosoft.com)"
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
        # The permission plan above needed no network; the sign-in below does.
        common.check_emulator(settings.emulator_endpoints(), label)
        session = requests_session(cloud.ca_bundle)
        admin = AdminSignIn(cloud, partner_tenant, session=session)

        def prompt(p: DeviceCodePrompt) -> None:
            common.say(p.message or f"Open {p.verification_uri} and enter {p.user_code}")

        common.say(f"Sign in as an administrator of {partner_tenant} …")
        if device_code:
            account = admin.sign_in_device_code(prompt)
        else:
            # Never wrapped (common.say): a URL broken at 80 columns cannot be pasted.
            account = admin.sign_in_interactive(
                show_url=lambda url: common.say(f"Open this address to sign in:\n{url}")
            )
        common.say(f"Signed in as {account.username}")

        def step(item: SetupStep) -> None:
            if not common.wants_json(json_out):
                mark = {"already done": "✓", "changed": "✚", "would change": "…"}[item.status]
                common.say(f"{mark} {item.name}: {item.status} — {item.detail}")

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
    if common.wants_json(json_out):
        common.print_json(report.as_dict())
        return
    verdict = (
        "dry run: nothing was changed"
        if dry_run
        else "everything was already in place"
        if not report.changed
        else f"done; regions.{region} is in {path}"
    )
    common.say(f"{verdict} (app {report.client_id or '(not registered)'})")


# -- cspgraph customers list / create --------------------------------------------------------------


@customers_app.command("list")
def customers_list(
    region: str | None = typer.Option(None, "--region", metavar="REGION", help="Only this region."),
    json_out: bool = JSON_OPTION,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Every customer of every configured region, from Partner Center."""
    from cspgraph.identity import TokenProvider
    from cspgraph.partner.center import PartnerCenterClient

    rows: list[dict[str, Any]] = []
    with common.command() as run:
        cfg = run.load_config(config)
        regions = [cfg.region_identity(region).region] if region else list(cfg.identities)

        async def listing() -> None:
            async with TokenProvider(cfg, workers=1) as provider:
                for name in regions:
                    async with PartnerCenterClient.for_region(provider, name) as client:
                        async for customer in client.list_customers():
                            rows.append({"region": name, **customer.as_dict()})

        import asyncio  # imported where used: keeps `cspgraph --help` fast

        asyncio.run(listing())
    if common.wants_json(json_out):
        common.print_json(rows)
        return
    from rich.table import Table

    table = Table("region", "domain", "company", title=f"{len(rows)} customer(s)")
    table.add_column("tenant id", no_wrap=True, min_width=36)  # copied into portals: never cut
    table.add_column("relationship")
    for row in rows:
        table.add_row(
            row["region"],
            row["domain"],
            row["company_name"] or "",
            row["tenant_id"],
            row["relationship"] or "",
        )
    common.console().print(table)


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
        raise common.UsageError(
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
DOMAIN = typer.Option(..., "--domain", metavar="DOMAIN", help="e.g. contoso-new.onmicrosoft.com")
COMPANY = typer.Option(..., "--name", metavar="NAME", help="The company's name.")
REGION = typer.Option(None, "--region", metavar="REGION", help=REGION_HELP)
EMAIL = typer.Option(
    None, "--email", metavar="EMAIL", help="Billing contact email (default: admin@DOMAIN)."
)
COUNTRY = typer.Option(
    "US", "--country", metavar="CC", help="ISO country code of the billing address."
)
ADDRESS = typer.Option(
    None, "--address-line1", metavar="TEXT", envvar="CSPGRAPH_BILLING_ADDRESS",
    help="Billing address, first line.",
)  # fmt: skip
CITY = typer.Option(
    None, "--city", metavar="CITY", envvar="CSPGRAPH_BILLING_CITY", help="Billing city."
)
STATE = typer.Option(
    None, "--state", metavar="STATE", envvar="CSPGRAPH_BILLING_STATE",
    help="Billing state or province, where the country has them.",
)  # fmt: skip
POSTAL = typer.Option(
    None, "--postal-code", metavar="CODE", envvar="CSPGRAPH_BILLING_POSTAL_CODE",
    help="Billing postal code.",
)  # fmt: skip
FIRST = typer.Option(None, "--first-name", metavar="NAME", help="Billing contact's first name.")
LAST = typer.Option(None, "--last-name", metavar="NAME", help="Billing contact's last name.")
PHONE = typer.Option(
    None, "--phone", metavar="PHONE", help="Billing phone (required in some countries)."
)
CULTURE = typer.Option("en-US", "--culture", metavar="CULTURE", help="The customer's culture.")
LANGUAGE = typer.Option("en", "--language", metavar="LANG", help="The customer's language.")
PASSWORD_FILE = typer.Option(
    None,
    "--password-file",
    metavar="PATH",
    help="Put the new admin's password in this 0600 file, not on screen.",
)


@customers_app.command("create")
def customers_create(
    domain: str = DOMAIN,
    name: str = COMPANY,
    region: str | None = REGION,
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

    with common.command(interrupted=AGAIN) as run:
        if domain is None or name is None:
            raise common.UsageError(
                "onboard needs --domain and --name (or --existing, --gdap, or --status)"
            )
        cfg = run.load_config(config)
        identity = cfg.region_identity(region)
        new = _new_customer(
            cfg, domain=domain, name=name, email=email, country=country,
            address_line1=address_line1, city=city, state=state, postal_code=postal_code,
            first_name=first_name, last_name=last_name, phone=phone, culture=culture,
            language=language,
        )  # fmt: skip
        _password_goes_somewhere(password_file)

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
    if common.wants_json(json_out):
        common.print_json(data)
    else:
        verb = "created" if created.created else "already a customer"
        typer.echo(f"{domain}: {verb} — tenant {created.customer.tenant_id} ({identity.region})")
    if created.admin_password is not None:
        _show_once(f"password of {created.admin_username}", created.admin_password, password_file)


# -- cspgraph onboard ------------------------------------------------------------------------------


def onboard(
    domain: str | None = typer.Option(
        None, "--domain", metavar="DOMAIN", help="e.g. contoso-new.onmicrosoft.com (required)."
    ),
    name: str | None = typer.Option(
        None, "--name", metavar="NAME", help="The company's name (required without --gdap)."
    ),
    existing: str | None = typer.Option(
        None,
        "--existing",
        metavar="DOMAIN",
        help="An existing tenant invited with `cspgraph customers invite`: wait for its "
        "acceptance, then for its relationship as for a new customer.",
    ),
    accept_wait: str = typer.Option(
        "0s",
        "--accept-wait",
        metavar="DURATION",
        help="With --existing: how long to wait for the acceptance (default: look once, and "
        "exit 3 while it has not come).",
    ),
    region: str | None = REGION,
    gdap: bool = typer.Option(
        False,
        "--gdap",
        help="An existing tenant, through GDAP: invite, approval, assignments, "
        "consent, propagation, smoke test (docs/gdap.md).",
    ),
    roles: list[str] = typer.Option(
        [], "--roles", metavar="ROLES", help="With --gdap: the roles (default: cspgraph)."
    ),
    create_groups: bool = typer.Option(
        False, "--create-groups", help="With --gdap: make one security group per role."
    ),
    group: list[str] = typer.Option(
        [], "--group", metavar="ROLE=GROUP", help="With --gdap: give ROLE to this group."
    ),
    agent_user: str | None = typer.Option(
        None,
        "--agent-user",
        metavar="UPN",
        help="With --gdap: the signed-in technician to act as, if several.",
    ),
    status: bool = typer.Option(
        False, "--status", help="List every onboarding in flight (DAP and GDAP) and exit."
    ),
    initial_wait: str = typer.Option(
        "3m", "--initial-wait", metavar="DURATION", help="No token before this."
    ),
    retry_every: str = typer.Option(
        "60s", "--retry-every", metavar="DURATION", help="Between denied attempts."
    ),
    budget: str = typer.Option(
        "15m", "--budget", metavar="DURATION", help="Give up this long after creation."
    ),
    state_dir: Path | None = typer.Option(
        None, "--state-dir", metavar="DIR", help="Where the per-domain state files are kept."
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
    """Create a customer, wait for the partner relationship, prove Graph works (resumable);
    with --gdap, onboard an existing tenant through GDAP; --status lists those in flight."""
    if status or gdap:
        from cspgraph.cli import gdap_cmd

        if status:
            gdap_cmd.onboard_status(state_dir, json_out)
            return
        gdap_cmd.onboard_gdap(
            domain, region=region, roles=roles, create_groups=create_groups, group=group,
            name=name, state_dir=state_dir, emulator_clock=emulator_clock, retry_every=retry_every,
            json_out=json_out, config=config, agent_user=agent_user,
        )  # fmt: skip
        return
    if agent_user is not None:
        with common.command():
            raise common.UsageError(
                "--agent-user goes with --gdap (DAP onboarding acts as the app)"
            )
    if existing is not None:
        with common.command():  # refusals before anything: exit 2, never a traceback
            if domain is not None:
                raise common.UsageError("--existing and --domain: choose one")
        _onboard_existing(
            existing, region=region, accept_wait=accept_wait, initial_wait=initial_wait,
            retry_every=retry_every, budget=budget, state_dir=state_dir,
            emulator_clock=emulator_clock, json_out=json_out, config=config,
        )  # fmt: skip
        return
    from cspgraph.partner.onboarding import OnboardingStore, onboard

    settings = _settings(initial_wait, retry_every, budget, emulator_clock)
    with common.command(interrupted=AGAIN) as run:
        if domain is None or name is None:
            raise common.UsageError(
                "onboard needs --domain and --name (or --existing, --gdap, or --status)"
            )
        cfg = run.load_config(config)
        identity = cfg.region_identity(region)
        new = _new_customer(
            cfg, domain=domain, name=name, email=email, country=country,
            address_line1=address_line1, city=city, state=state, postal_code=postal_code,
            first_name=first_name, last_name=last_name, phone=phone, culture=culture,
            language=language,
        )  # fmt: skip
        resumed = OnboardingStore(state_dir).load(domain)
        if resumed is None or resumed.tenant_id is None:
            # A customer still to be created (or whose create was interrupted, which Partner
            # Center answers again with the password): the password must have somewhere to go.
            # A resumed onboarding past the create makes none, so asks for nowhere to put it
            # (cron resuming with the same command line would be refused by its own file).
            _password_goes_somewhere(password_file)

        shown: list[str] = []

        def keep_password(username: str, password: Secret) -> None:
            # At once, not after the waiting: a Ctrl-C or a budget stop would lose it for good.
            _show_once(f"password of {username}", password, password_file)
            shown.append(username)

        result = _run_onboarding(
            cfg,
            emulator_clock,
            json_out,
            lambda provider, clock, show: onboard(
                provider,
                new,
                region=identity.region,
                store=OnboardingStore(state_dir),
                clock=clock,
                settings=settings,
                on_progress=show,
                on_created=keep_password,
            ),
        )
    _show_result(result, json_out)
    if result.admin_password is not None and result.admin_username not in shown:
        _show_once(f"password of {result.admin_username}", result.admin_password, password_file)


def _onboard_existing(
    domain: str,
    *,
    region: str | None,
    accept_wait: str,
    initial_wait: str,
    retry_every: str,
    budget: str,
    state_dir: Path | None,
    emulator_clock: bool,
    json_out: bool,
    config: Path | None,
) -> None:
    """`onboard --existing DOMAIN`: cspgraph.partner.onboarding_existing, as a command."""
    from cspgraph.partner.onboarding import OnboardingStore
    from cspgraph.partner.onboarding_existing import onboard_existing

    settings = _settings(initial_wait, retry_every, budget, emulator_clock)
    wait_for_acceptance = parse_duration(accept_wait)
    with common.command(interrupted=AGAIN) as run:
        cfg = run.load_config(config)
        identity = cfg.region_identity(region)
        result = _run_onboarding(
            cfg,
            emulator_clock,
            json_out,
            lambda provider, clock, show: onboard_existing(
                provider,
                domain,
                region=identity.region,
                store=OnboardingStore(state_dir),
                clock=clock,
                settings=settings,
                accept_wait=wait_for_acceptance,
                on_progress=show,
            ),
        )
    _show_result(result, json_out)


def _settings(
    initial_wait: str, retry_every: str, budget: str, emulator_clock: bool
) -> OnboardingSettings:
    from cspgraph.partner.onboarding import OnboardingSettings

    return OnboardingSettings(
        initial_wait=parse_duration(initial_wait),
        retry_every=parse_duration(retry_every),
        budget=parse_duration(budget),
        # A countdown by the second in real time; on the world clock each tick is a request.
        progress_every=15.0 if emulator_clock else 1.0,
    )


OnboardingStep = Callable[[Any, Any, Callable[..., None]], Awaitable["OnboardingResult"]]
# (provider, world clock, on_progress) -> the onboarding's result


def _run_onboarding(
    cfg: Config, emulator_clock: bool, json_out: bool, step: OnboardingStep
) -> OnboardingResult:
    """One onboarding ``step(provider, clock, on_progress)`` run to its end or stop, in the world
    clock (``--emulator-clock``), with a token provider and the progress line."""
    import asyncio  # imported where used: keeps `cspgraph --help` fast

    from cspgraph.identity import TokenProvider

    if emulator_clock and cfg.emulator_endpoints() is None:
        raise common.UsageError("--emulator-clock needs a configuration with `emulator = …`")
    err = common.console(stderr=True)

    async def go() -> OnboardingResult:
        async with (
            common.world_clock(cfg, emulator_clock) as clock,
            TokenProvider(cfg, workers=2) as provider,
        ):
            with _live(err, not common.wants_json(json_out)) as show:
                return await step(provider, clock, show)

    return asyncio.run(go())


def _show_result(result: OnboardingResult, json_out: bool) -> None:
    if common.wants_json(json_out):
        common.print_json(result.as_dict())
    else:
        common.console().print(result.summary, soft_wrap=True)


@contextmanager
def _live(console: Console, enabled: bool) -> Iterator[Any]:
    """A progress callback: a Rich status line with the state and the time left on a terminal,
    plain lines on stderr otherwise."""
    from rich.text import Text

    from cspgraph.partner.onboarding import OnboardingProgress

    if not enabled:

        def quiet(event: OnboardingProgress) -> None:
            if event.until is None:
                common.say(f"{event.state}: {event.message}")

        yield quiet
        return
    with console.status("starting …") as status:

        def show(event: OnboardingProgress) -> None:
            if event.until is None:
                console.print(Text.assemble((event.state, "bold"), f": {event.message}"))
            status.update(Text(f"{event.state}: {event.message}"))  # a Spinner reads markup

        yield show
