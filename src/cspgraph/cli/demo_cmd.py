"""`cspgraph demo`: the whole story, offline, on the embedded emulator.

1. start the emulator in this process (the built-in demo world: two partner tenants, NA and EU,
   and their customers);
2. write a partner configuration for it (``cspgraph config init --from-emulator``);
3. set up each region's partner-managed app through Graph as the partner's administrator
   (signed in on the emulator's sign-in page by script), which finds most things in place and
   grants the one permission the fleet report still lacks;
4. onboard a new customer through Partner Center and wait out the relationship's propagation
   (shortened from 3 minutes to a few seconds, and said so);
5. sync the whole fleet into SQLite, print the report and write the HTML report;
6. say where everything is and what to run next.

Only the CLI may bring the emulator and the client together (DESIGN.md); this module is where
the demo does. Everything it writes goes under ``--dir`` (./cspgraph-demo by default).
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cspgraph.cli import common
from cspgraph.cli.emulator_required import require_emulator

if TYPE_CHECKING:
    from rich.console import Console

    from csp_emulator.server import Emulator
    from cspgraph.config import Config
    from cspgraph.fleet.sync import SyncSummary
    from cspgraph.identity import TokenProvider
    from cspgraph.partner.onboarding import OnboardingResult
    from cspgraph.partner.setup import SetupReport

PROPAGATION_DEMO = "5s"  # the real delay is up to 3 minutes (seed); nobody watches that in a demo
NEW_CUSTOMER_DOMAIN = "tailwindtraders.onmicrosoft.com"
NEW_CUSTOMER_NAME = "Tailwind Traders"
# Files of an earlier demo run that must not leak into this one (a new world has new objects).
STALE = ("cspgraph.db", "cspgraph.db-wal", "cspgraph.db-shm", "report.html", "discovery.json",
         "tokens.json", "config.toml")  # fmt: skip


# A query to try on the store (shown, never run).
_EXAMPLE_QUERY = "select upn, account_enabled from users limit 10"


@dataclass
class DemoPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def db(self) -> Path:
        return self.root / "cspgraph.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db}"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def emulator_state(self) -> Path:
        return self.root / "emulator"

    @property
    def onboarding(self) -> Path:
        return self.root / "onboarding"


def demo(
    directory: Path = typer.Option(
        Path("cspgraph-demo"), "--dir", metavar="DIR", help="Where the demo writes its files."
    ),
    customers: int = typer.Option(
        36,
        "--customers",
        min=1,
        max=500,
        metavar="N",
        help="DAP customers in the demo world (the GDAP half's seven tenants come on top).",
    ),
    concurrency: int = typer.Option(
        512, "--concurrency", min=1, metavar="N", help="Customers synced at once, at most."
    ),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Tell the story on stderr and print what it made as JSON (the default when stdout "
        "is not a terminal).",
    ),
) -> None:
    """Run the whole story on the local emulator: setup, onboarding, fleet sync, report."""
    from rich.console import Console

    as_json = common.wants_json(json_out)
    # The story is for people: on stdout at a terminal, on stderr when stdout carries JSON.
    console = Console(stderr=as_json)
    paths = DemoPaths(directory.expanduser().resolve())
    started = time.monotonic()
    with common.command(interrupted="demo interrupted"):
        require_emulator()
        try:
            paths.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise common.UsageError(f"--dir {directory}: cannot create it ({exc})") from None
        _refuse_a_served_state_dir(paths)
        import asyncio  # imported where used: keeps `cspgraph --help` fast

        made = asyncio.run(_demo(console, paths, customers, concurrency))
    seconds = time.monotonic() - started
    console.print(f"\n[bold]demo finished in {seconds:.1f} s[/bold]")
    if as_json:
        common.print_json({**made, "seconds": round(seconds, 1)})


def _refuse_a_served_state_dir(paths: DemoPaths) -> None:
    """Before the demo clears its files: an emulator already serving from the demo's state
    directory (the one its "look further" step starts) is the user's to stop, not a traceback."""
    from csp_emulator.state_lock import StateDirInUse, StateLock

    paths.emulator_state.mkdir(parents=True, exist_ok=True)
    probe = StateLock(paths.emulator_state)
    try:
        probe.acquire()
    except StateDirInUse as exc:
        raise common.UsageError(f"{exc} (the demo starts its own emulator there)") from None
    probe.release()


async def _demo(
    console: Console, paths: DemoPaths, customers: int, concurrency: int
) -> dict[str, Any]:
    """The story; returns what it made (files, the onboarding, the sync's totals)."""
    from csp_emulator.server import Emulator
    from csp_emulator.state_lock import StateDirInUse
    from csp_emulator.world.worldfile import demo_world

    paths.root.mkdir(parents=True, exist_ok=True)
    for name in STALE:
        (paths.root / name).unlink(missing_ok=True)
    _forget_onboarding(paths)

    console.rule("[bold]1. The emulated cloud")
    try:
        emulator = Emulator(lambda: demo_world(customers), state_dir=paths.emulator_state)
    except StateDirInUse as exc:  # another demo started its emulator in between
        raise common.UsageError(f"{exc} (the demo starts its own emulator there)") from None
    with emulator as emu:
        e = emu.endpoints
        console.print(
            f"Entra ID, Microsoft Graph and Partner Center, emulated on loopback over HTTPS "
            f"(local CA {e.ca_bundle}):\n"
            f"  login {e.authority_host}   graph {e.graph}   partner center {e.partner_center}\n"
            f"  {len(emu.world.tenants)} tenants: partner.com (NA), partner-eu.com (EU), "
            f"{customers} customers with DAP and {len(emu.world.tenants) - 2 - customers} "
            'reached through GDAP and per-customer consent (docs/emulator.md, "GDAP")'
        )
        console.rule("[bold]2. Partner configuration")
        _write_config(paths, emu)
        console.print(
            f"wrote {paths.config} (cspgraph config init --from-emulator): one partner "
            "identity per region, secrets in files readable only by you"
        )

        console.rule("[bold]3. The partner-managed app, per region")
        await _setup_apps(console, paths, emu)

        config = _load(paths)
        from cspgraph.identity import TokenProvider

        async with TokenProvider(config) as provider:
            console.rule("[bold]4. Onboarding a new customer")
            onboarded = await _onboard(console, paths, provider)

            console.rule("[bold]5. Fleet sync")
            summary = await _sync(console, paths, provider, concurrency)

        console.rule("[bold]6. The fleet report")
        _report(console, paths)
        _epilogue(console, paths, summary)
    sync = summary.as_dict()
    return {
        "dir": str(paths.root),
        "config": str(paths.config),
        "store": paths.db_url,
        "report": str(paths.report),
        "emulator_state": str(paths.emulator_state),
        "onboarding": onboarded.as_dict(),
        "sync": {k: v for k, v in sync.items() if k != "tenants"},
    }


def _forget_onboarding(paths: DemoPaths) -> None:
    state = paths.onboarding
    if state.is_dir():
        for file in state.glob("*.json"):
            file.unlink()


def _write_config(paths: DemoPaths, emu: Emulator) -> None:
    from csp_emulator.world.worldfile import DEMO_PARTNERS
    from cspgraph.cli.config_cmd import write_emulator_config
    from cspgraph.emulator_partners import RegionApp

    apps = [
        RegionApp(region, p["domain"], p["client_id"], p["client_secret"])
        for region, p in DEMO_PARTNERS.items()
    ]
    write_emulator_config(paths.config, emu.endpoints_file, apps)


def _load(paths: DemoPaths) -> Config:
    from cspgraph.config import load_config

    return load_config(paths.config, required=True)


# -- 3. set-up -------------------------------------------------------------------------------------


def _admin_of(domain: str) -> tuple[str, str]:
    """The demo world's partner administrator (a Global Administrator) and the password the
    world file gives it."""
    from csp_emulator.world.worldfile import demo_world_data

    for tenant in demo_world_data(customers=0)["tenant"]:
        if tenant["domain"] != domain:
            continue
        for user in tenant.get("user", []):
            if "Global Administrator" in user.get("roles", []):
                return str(user["upn"]), str(user["password"])
    raise RuntimeError(f"the demo world has no administrator in {domain}")


def _scripted_browser(emu: Emulator, username: str, password: str) -> Callable[[str], bool]:
    """Stands in for the administrator's browser: submits the emulator's sign-in form (a
    stateless form posted to the authorize URL) and delivers the redirect to the loopback
    listener, as a browser would."""
    from cspgraph.http.sessions import requests_session

    def open_browser(url: str) -> bool:
        # Trusts the emulator's CA and nothing from the environment (client-traps §3); the
        # redirect goes to the loopback listener over plain HTTP.
        with requests_session(emu.endpoints.ca_bundle) as session:
            answer = session.post(
                url, data={"username": username, "password": password}, allow_redirects=False
            )
            if answer.status_code == 302:
                session.get(answer.headers["Location"], timeout=10)
                return True
            action = re.search(r'<form id="response" method="post" action="([^"]+)"', answer.text)
            if answer.status_code != 200 or action is None:
                raise RuntimeError(f"the emulator's sign-in page answered {answer.status_code}")
            fields = dict(
                re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', answer.text)
            )
            session.post(
                html.unescape(action.group(1)),
                data={k: html.unescape(v) for k, v in fields.items()},
                timeout=10,
            )
        return True

    return open_browser


async def _setup_apps(console: Console, paths: DemoPaths, emu: Emulator) -> None:
    from rich.table import Table

    from cspgraph.graph.client import GraphClient
    from cspgraph.http.sessions import requests_session
    from cspgraph.partner.auth import AdminSignIn
    from cspgraph.partner.setup import PermissionPlan, SetupOptions, plan_permissions
    from cspgraph.partner.setup import setup_partner_app as setup

    config = _load(paths)
    cloud = config.cloud()
    # What the fleet job needs, plus reading directory roles so the report can count admins;
    # the delegated permission the demo world's apps carry for agent sign-in is kept.
    sync_plan = plan_permissions(
        preset="sync", operations=["GET /directoryRoles", "GET /directoryRoles/{id}/members"]
    )
    plan = PermissionPlan(
        application=sync_plan.application,
        delegated=("Directory.AccessAsUser.All",),
        why="the fleet sync, with admins",
    )
    session = requests_session(cloud.ca_bundle)
    try:
        for region, identity in config.identities.items():
            username, password = _admin_of(identity.partner_tenant)
            console.print(
                f"[bold]{region}[/bold]: {username} signs in to {identity.partner_tenant} "
                "(authorization code + PKCE; the emulator's sign-in page is filled in by script)"
            )
            admin = AdminSignIn(cloud, identity.partner_tenant, session=session)
            import asyncio  # imported where used: keeps `cspgraph --help` fast

            await asyncio.to_thread(
                admin.sign_in_interactive,
                open_browser=_scripted_browser(emu, username, password),
                show_url=lambda url: None,
                timeout=30.0,
            )
            async with GraphClient(admin, graph_url=cloud.graph, ca_bundle=cloud.ca_bundle) as g:
                report: SetupReport = await setup(
                    g,
                    identity.partner_tenant,
                    region=region,
                    config_path=paths.config,
                    options=SetupOptions(credential="secret", permissions=plan),
                )
            table = Table("step", "status", "detail", show_header=False, box=None)
            for step in report.steps:
                style = "green" if step.status == "already done" else "yellow"
                table.add_row(step.name, f"[{style}]{step.status}[/{style}]", step.detail)
            console.print(table)
    finally:
        session.close()


# -- 4. onboarding ---------------------------------------------------------------------------------


async def _onboard(console: Console, paths: DemoPaths, provider: TokenProvider) -> OnboardingResult:
    from cspgraph.http.sessions import aiohttp_session
    from cspgraph.partner.center import BillingAddress, NewCustomer
    from cspgraph.partner.onboarding import (
        OnboardingProgress,
        OnboardingSettings,
        OnboardingStore,
        onboard,
    )

    endpoints = provider.config.emulator_endpoints()
    assert endpoints is not None  # the demo's configuration names the emulator
    async with (
        aiohttp_session(endpoints.ca_bundle) as control,
        control.put(
            f"{endpoints.control}/_emulator/settings",
            json={"propagation_delay": PROPAGATION_DEMO},
        ) as answer,
    ):
        answer.raise_for_status()
    console.print(
        f"[yellow]Demo shortcut:[/yellow] a new customer's partner relationship takes up to "
        f"3 minutes to reach its tenant; the emulator is told to take {PROPAGATION_DEMO} "
        "(PUT /_emulator/settings). The waiting and retrying below is the real procedure."
    )
    new = NewCustomer(
        domain=NEW_CUSTOMER_DOMAIN,
        company_name=NEW_CUSTOMER_NAME,
        email="it@tailwindtraders.example",
        address=BillingAddress(
            address_line1="1 Microsoft Way", city="Redmond", state="WA", postal_code="98052",
            country="US", first_name="Avery", last_name="Howard",
        ),
    )  # fmt: skip

    def show(step: OnboardingProgress) -> None:
        console.print(f"  {step.state:<15} {step.message}")

    result = await onboard(
        provider,
        new,
        region="NA",
        store=OnboardingStore(paths.onboarding),
        settings=OnboardingSettings(
            initial_wait=2.0, retry_every=2.0, budget=60.0, progress_every=None
        ),
        on_progress=show,
    )
    console.print(result.summary)
    return result


# -- 5. sync ---------------------------------------------------------------------------------------


async def _sync(
    console: Console, paths: DemoPaths, provider: TokenProvider, concurrency: int
) -> SyncSummary:
    from cspgraph.fleet.store import Store
    from cspgraph.fleet.sync import sync_fleet
    from cspgraph.fleet.sync_display import RichSyncProgress, summary_view

    console.print(
        f"every customer Partner Center lists, in both regions, into {paths.db} "
        f"(up to {concurrency} at a time, as Graph allows; users, groups with members, devices, "
        "organization, Intune devices, Global Administrators)"
    )
    with Store.open(paths.db_url) as store:
        if console.is_terminal:
            with RichSyncProgress(console) as live:
                summary = await sync_fleet(provider, store, concurrency=concurrency, progress=live)
        else:
            summary = await sync_fleet(provider, store, concurrency=concurrency)
    # Only customers that are not ok here: the report below lists every customer.
    console.print(summary_view(summary, all_rows_up_to=0))
    return summary


# -- 6. report -------------------------------------------------------------------------------------


def _report(console: Console, paths: DemoPaths) -> None:
    from cspgraph.fleet.report import load_report
    from cspgraph.fleet.report_html import write_html
    from cspgraph.fleet.report_terminal import terminal_view
    from cspgraph.fleet.store import Store

    with Store.open(paths.db_url) as store:
        fleet = load_report(store)
    console.print(terminal_view(fleet, console.width))
    write_html(fleet, paths.report)


def _epilogue(console: Console, paths: DemoPaths, summary: SyncSummary) -> None:
    here = Path.cwd()

    def shown(path: Path) -> str:
        try:
            return str(path.relative_to(here))
        except ValueError:
            return str(path)

    db, config = shown(paths.db), shown(paths.config)
    cspgraph = common.invoked_as()  # the command that works in this shell, not a bare name
    console.rule("[bold]Where things are")
    console.print(
        f"  store        {db}  ({summary.totals()['objects']:,} objects, "
        f"{summary.requests:,} Graph requests, {summary.throttled} × 429, "
        f"{summary.wall_time:.1f} s)\n"
        f"  HTML report  {shown(paths.report)}\n"
        f"  config       {config}  (secrets in {shown(paths.root / 'secrets')})\n"
        f"  emulator     {shown(paths.emulator_state)}  (its CA and keys, kept for next time)\n"
        "\n[bold]Look further[/bold]\n"
        f"  {cspgraph} report --db sqlite:///{db}\n"
        f"  {cspgraph} report --db sqlite:///{db} --json | less\n"
        f"  sqlite3 {db} {_EXAMPLE_QUERY!r}\n"
        "  # sync again (changes only) against a running emulator:\n"
        f"  {cspgraph} emulator serve --state-dir {shown(paths.emulator_state)} &\n"
        f"  CSPGRAPH_CONFIG={config} {cspgraph} sync --db sqlite:///{db}"
    )
