"""`cspgraph service-account`: the partner service account that syncs GDAP customers the app
cannot reach (the Secure Application Model): sign it in once, see who it is, sign it out.

Its sign-in is kept encrypted in the configuration's ``service_account_cache`` (Fernet, key in
``<file>.key``, both 0600); tokens are never printed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cspgraph.cli import common

if TYPE_CHECKING:
    from cspgraph.identity.service_account import ServiceAccountTokens

app = typer.Typer(
    help="The partner service account for GDAP customers (Secure Application Model).",
    no_args_is_help=True,
)


def _cache_path(run: common.Run, config: Path | None) -> Path:
    path = run.load_config(config, online=False).service_account_cache_path
    if path is None:
        raise common.UsageError(
            "no service account is configured: set service_account_cache = "
            '"~/.config/cspgraph/service-account.bin" in the configuration'
        )
    return path


@contextmanager
def _service(
    run: common.Run, config: Path | None, *, online: bool = True
) -> Iterator[tuple[Path, ServiceAccountTokens]]:
    """The configured service account's cache path and tokens, closed afterwards (which writes
    the encrypted cache). ``online=False``: for commands that only read or clear that cache."""
    from cspgraph.identity import TokenProvider
    from cspgraph.identity.service_account import ServiceAccountTokens

    path = _cache_path(run, config)
    provider = TokenProvider(run.load_config(config, online=online), workers=2 if online else 1)
    service = ServiceAccountTokens(provider, path)
    try:
        yield path, service
    finally:
        service.close()
        provider.close()


@app.command("sign-in")
def sign_in(
    at: str = typer.Option(
        ...,
        "--at",
        metavar="TENANT",
        help="Where to sign in: the partner tenant (its domain) or any customer of the region.",
    ),
    no_browser: bool = typer.Option(False, "--no-browser", help="Print the URL, open nothing."),
    login_hint: str | None = typer.Option(
        None, "--login-hint", metavar="UPN", help="Pre-fill the user name."
    ),
    timeout: float = common.SIGN_IN_TIMEOUT_OPTION,
    json_out: bool = common.JSON_OPTION,
    config: Path | None = common.CONFIG_OPTION,
) -> None:
    """Sign the service account in once (auth code + PKCE, with multi-factor authentication);
    its refresh token, encrypted at rest, then serves every GDAP customer its groups reach."""
    with common.command(interrupted="interrupted: nobody signed in") as run:
        import webbrowser

        with (
            _service(run, config) as (path, service),
            service.begin_sign_in(at, login_hint=login_hint) as pending,
        ):
            if no_browser or not webbrowser.open(pending.auth_url):
                common.say(f"Open this URL in a browser to sign in:\n\n  {pending.auth_url}\n")
            result = pending.wait(timeout)
    if common.wants_json(json_out):
        common.print_json({"username": result.account.username, "cache": str(path)})
        return
    typer.echo(f"service account signed in: {result.account.username} (kept encrypted in {path})")


@app.command("status")
def status(
    json_out: bool = common.JSON_OPTION,
    config: Path | None = common.CONFIG_OPTION,
) -> None:
    """Who the service account is (never its tokens). Exit 3 when none has signed in."""
    with common.command() as run, _service(run, config, online=False) as (path, service):
        accounts = [{"username": a.username, "region": a.region} for a in service.accounts()]
    if common.wants_json(json_out):
        common.print_json({"cache": str(path), "accounts": accounts})
    else:
        for account in accounts:
            typer.echo(f"{account['username']} (region {account['region']})")
        if not accounts:
            common.say(f"no service account has signed in ({path}): cspgraph service-account "
                       "sign-in --at PARTNER_DOMAIN")  # fmt: skip
    if not accounts:
        raise typer.Exit(int(common.Exit.NEEDS_PERSON))


@app.command("sign-out")
def sign_out(
    json_out: bool = common.JSON_OPTION,
    config: Path | None = common.CONFIG_OPTION,
) -> None:
    """Forget the service account's sign-in."""
    with common.command() as run, _service(run, config, online=False) as (path, service):
        gone = service.sign_out()
    if common.wants_json(json_out):
        common.print_json({"signed_out": gone, "cache": str(path)})
    else:
        common.say(f"signed out {gone} account(s)")
