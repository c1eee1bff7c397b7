"""`cspgraph serve`: the read-only local dashboard over the store, until Ctrl-C."""

from __future__ import annotations

import errno
import os
import secrets
import string
from pathlib import Path

import typer

from cspgraph.cli import common

TOKEN_ENV = "CSPGRAPH_DASHBOARD_TOKEN"
MIN_TOKEN = 16  # characters: a token anyone can guess protects nothing


def default_token_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cspgraph" / "dashboard.token"


def serve(
    db: str = common.DB_OPTION,
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        metavar="ADDR",
        help="The address to listen on. Any address other than loopback needs an access token "
        "(--token-file or $CSPGRAPH_DASHBOARD_TOKEN; generated when neither gives one).",
    ),
    port: int = typer.Option(
        8765, "--port", min=0, max=65535, metavar="N", help="The port (0: any free port)."
    ),
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        metavar="FILE",
        help="The access token: read from FILE, or generated into it (0600) when FILE does "
        "not exist. With a token, every request must carry it, on any address.",
    ),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Print where the dashboard listens as one JSON document (the default when stdout "
        "is not a terminal).",
    ),
) -> None:
    """Serve a read-only dashboard over the store: needs action, the fleet, every customer
    (search, filter, sort), until Ctrl-C. Never calls Graph; never writes to the store."""
    with common.command(interrupted="dashboard stopped"):
        from cspgraph.dashboard.server import needs_token, serve

        token, where = _token(token_file, required=needs_token(host))
        with common.existing_store(db) as store:
            try:
                server = serve(store, host, port, token)
            except OSError as exc:
                raise common.UsageError(_cannot_listen(host, port, exc)) from None
            with server:
                data = {"url": server.url, "token_required": token is not None,
                        "token_file": str(where) if where else None}  # fmt: skip
                if common.wants_json(json_out):
                    common.print_json(data)
                common.say(f"Dashboard of {_shown(db)} at {server.url}")
                if where is not None:
                    common.say(
                        f"Every request needs the access token in {where}: open "
                        f"{server.url}?token=<the token> once (the browser keeps it in a cookie)"
                    )
                elif token is not None:
                    common.say(f"Every request needs the access token in ${TOKEN_ENV}.")
                common.say("Ctrl-C to stop.")
                server.serve_forever()


def _token(path: Path | None, *, required: bool) -> tuple[str | None, Path | None]:
    """The access token and the file it is in (None when it came from the environment)."""
    given = os.environ.get(TOKEN_ENV, "").strip()
    if given and path is None:
        _check(given, f"${TOKEN_ENV}")
        return given, None
    if path is None:
        if not required:
            return None, None
        path = default_token_file()
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise common.UsageError(f"--token-file {path}: cannot read it ({exc})") from None
        _check(text, str(path))
        return text, path
    token = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 from the start: there is no moment at which another user could read it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(token + "\n")
    except OSError as exc:
        raise common.UsageError(f"--token-file {path}: cannot write it ({exc})") from None
    return token, path


# Characters that pass through a URL (?token=) and a cookie unchanged.
TOKEN_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-._~")


def _check(token: str, where: str) -> None:
    if len(token) < MIN_TOKEN or not set(token) <= TOKEN_CHARACTERS:
        raise common.UsageError(
            f"the access token in {where} must be at least {MIN_TOKEN} characters of letters, "
            "digits and - . _ ~"
        )


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is taken (another dashboard?); pass another --port, or 0"
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on port {port} (below 1024?); pass another --port"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def _shown(db: str) -> str:
    """The store's URL without a password (a PostgreSQL URL may carry one)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(db).render_as_string(hide_password=True)
    except ArgumentError:
        return db
