"""The contract every `cspgraph` command keeps (docs/cli.md, "The contract").

* One exit-code table, :class:`Exit`; the error taxonomy's classes map onto it through
  :data:`EXIT_BY_ERROR_CLASS`, so a needs-a-person failure exits 3 whichever command meets it.
* Errors are one line on stderr (sometimes followed by a ``hint:`` line), never a traceback:
  :func:`command` turns the library's errors, bad input and Ctrl-C into a message and an exit
  status.
* Data goes to stdout, as JSON when ``--json`` asks for it or stdout is not a terminal
  (:func:`wants_json`); messages for people go to stderr and are never wrapped (:func:`say`), so
  a sign-in URL survives copy and paste.
* ``-h`` as well as ``--help``; options name their values (``--db URL``), not their Python types.

Every command module imports this one at start-up, so it imports only typer and the standard
library; the library's modules are imported inside the functions that use them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import typer
from typer.core import TyperArgument, TyperCommand

if TYPE_CHECKING:
    from rich.console import Console

    from cspgraph.config import Config
    from cspgraph.emulator_endpoints import EmulatorEndpoints
    from cspgraph.fleet.store import Store
    from cspgraph.http.errors import CspGraphError


class Exit(IntEnum):
    """What a command's exit status means, the same for every command."""

    DONE = 0
    PARTLY_DONE = 1  # some customers failed (sync): their status in the store says why
    BAD_INPUT = 2  # the command line, a file, the configuration or the environment is wrong
    NEEDS_PERSON = 3  # consent, a credential, Conditional Access, a sign-in: somebody must act
    PROPAGATING = 4  # the partner relationship or a consent is still reaching the tenant
    TRANSIENT = 5  # throttled, unavailable, the network: try again soon
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


# The error taxonomy's classes (cspgraph's ErrorClass values) and the status each exits with.
EXIT_BY_ERROR_CLASS: dict[str, Exit] = {
    "bad_request": Exit.BAD_INPUT,
    "needs_person": Exit.NEEDS_PERSON,
    "propagating": Exit.PROPAGATING,
    "transient": Exit.TRANSIENT,
}

# Given to every Typer app: `-h` works wherever `--help` does (subcommands inherit it).
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


class UsageError(Exception):
    """The command line asks for something that cannot be done: :attr:`Exit.BAD_INPUT`."""


class EmulatorDown(Exception):
    """The configuration names an emulator and nothing listens at its address."""


# -- options every command spells the same way -----------------------------------------------------


# Module-level singletons: one OptionInfo per spelling, shared by the commands that take it.
CONFIG_OPTION: Any = typer.Option(
    None,
    "--config",
    metavar="FILE",
    help="The configuration file (default: $CSPGRAPH_CONFIG, else ~/.config/cspgraph/config.toml).",
)
# `--path`, the old name of `--config` in `config init|show`: still read, no longer shown.
CONFIG_ALIAS_OPTION: Any = typer.Option(None, "--path", metavar="FILE", hidden=True)
JSON_OPTION: Any = typer.Option(
    False, "--json", help="Print JSON (the default when stdout is not a terminal)."
)
DEFAULT_DB = "sqlite:///cspgraph.db"
DB_OPTION: Any = typer.Option(
    DEFAULT_DB,
    "--db",
    envvar="CSPGRAPH_DB",
    metavar="URL",
    help="The store: a SQLAlchemy URL (sqlite:///file.db, postgresql+psycopg://…) or a path.",
)


def _seconds_to_wait(value: float) -> float:
    """A wait given in seconds: a finite number, 0 or more (a negative one was a traceback, and
    ``nan`` waited for ever)."""
    if not math.isfinite(value) or value < 0:
        raise typer.BadParameter(f"{value}: expected a number of seconds, 0 or more")
    return value


SIGN_IN_TIMEOUT_OPTION: Any = typer.Option(
    300.0,
    "--timeout",
    metavar="SECONDS",
    callback=_seconds_to_wait,
    help="How long to wait for the sign-in.",
)


class _NamedArgument(TyperArgument):
    """A positional argument shown by its metavar alone: ``METHOD``, not ``{METHOD}`` in the
    usage line and ``METHOD <str>`` in the list (Typer's rendering of every argument)."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        return name if self.required else f"[{name}]"


class NamedArguments(TyperCommand):
    """A command whose positional arguments are shown by their metavars (``cls=`` of
    ``app.command``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument and param.metavar:
                param.__class__ = _NamedArgument


def either(config: Path | None, path: Path | None) -> Path | None:
    """``--config`` or its hidden alias ``--path``; both given must agree."""
    if config is not None and path is not None and config != path:
        raise UsageError(
            f"--config {config} and --path {path} disagree: --path is --config, keep one"
        )
    return config if config is not None else path


# -- output --------------------------------------------------------------------------------------


def wants_json(flag: bool = False) -> bool:
    """JSON on stdout: asked for, or stdout is not a terminal (a pipe, a file, a program)."""
    return flag or not sys.stdout.isatty()


def print_json(data: Any) -> None:
    """One JSON document on stdout (indented: people read piped output too)."""
    import orjson

    text = orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    sys.stdout.buffer.write(text + b"\n")
    sys.stdout.flush()


def say(text: str) -> None:
    """A message for people, on stderr, never wrapped (a URL must survive copy and paste).
    Control characters (a customer's name, a service's message) are shown as escapes."""
    from cspgraph.fleet.terminal_text import printable

    typer.echo(printable(text, lines=True), err=True)


def invoked_as() -> str:
    """How to run cspgraph again, for the hints commands print: ``cspgraph`` when that is what
    the shell finds, else the path this process was started by (``.venv/bin/cspgraph`` after
    ``make demo``, whose shell has no ``cspgraph`` on its PATH), relative to here when below."""
    import shlex
    import shutil

    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started is None or started.name != "cspgraph" or not started.is_file():
        return "cspgraph"  # not started as the command (a test runner, an embedding program)
    found = shutil.which("cspgraph")
    if found is not None and Path(found).resolve() == started.resolve():
        return "cspgraph"
    here = Path.cwd()
    path = started.absolute()
    with contextlib.suppress(ValueError):
        path = path.relative_to(here)
    shown = str(path) if path.is_absolute() or "/" in str(path) else f"./{path}"
    return shlex.quote(shown)


def console(*, stderr: bool = False) -> Console:
    """A Rich console for tables on a terminal (imported here: Rich is for terminals only). It
    reads no markup and shows control characters as escapes: customers name what it prints."""
    from cspgraph.fleet.safe_console import SafeConsole

    return SafeConsole(stderr=stderr)


def when(epoch: Any) -> str:
    """An epoch-seconds claim (``exp``, ``iat``) with the time it stands for."""
    if isinstance(epoch, bool) or not isinstance(epoch, int | float):
        return json.dumps(epoch)
    moment = datetime.fromtimestamp(epoch, UTC)
    seconds = int(epoch - datetime.now(UTC).timestamp())
    size = abs(seconds)
    span = (
        f"{size // 3600} h {size % 3600 // 60} min" if size >= 3600
        else f"{size // 60} min" if size >= 60 else f"{size} s"
    )  # fmt: skip
    relative = f"in {span}" if seconds >= 0 else f"{span} ago"
    return f"{int(epoch)} ({moment:%Y-%m-%d %H:%M:%S} UTC, {relative})"


# -- logging ---------------------------------------------------------------------------------------


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler on whatever ``sys.stderr`` is when a record comes (a test runner swaps it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def setup_logging(*, verbose: bool = False, log_file: Path | None = None) -> None:
    """``--verbose``: DEBUG records on stderr; ``--log-file FILE``: records appended to FILE
    (created 0600; DEBUG with ``--verbose``, INFO otherwise). Every line is redacted
    (:mod:`cspgraph.http.redaction`): no token, secret or password reaches a log. Without either
    option, logging stays as Python leaves it (warnings on stderr)."""
    from cspgraph.http.redaction import RedactingFormatter

    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "cspgraph", False)]
    for handler in ours:  # a previous command in this process (tests) set them
        root.removeHandler(handler)
        handler.close()
    if ours:
        root.setLevel(logging.WARNING)
    if not verbose and log_file is None:
        return
    handlers: list[logging.Handler] = []
    if verbose:
        handlers.append(_Stderr())
    if log_file is not None:
        handlers.append(logging.StreamHandler(_open_log(log_file)))
    for handler in handlers:
        handler.setFormatter(RedactingFormatter(LOG_FORMAT))
        handler.cspgraph = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # Their DEBUG is the bytes on the wire; cspgraph's own records say what was sent.
    for noisy in ("asyncio", "urllib3", "charset_normalizer", "hpack", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.INFO)


def _open_log(path: Path) -> Any:
    """``path`` opened for appending: created 0600 (directory 0700), narrowed if others could
    read it, never through a symbolic link; a path that cannot be written is a usage error."""
    path = path.expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o600)
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    except OSError as exc:
        raise typer.BadParameter(f"{path}: {exc.strerror}", param_hint="--log-file") from None
    return os.fdopen(fd, "a", encoding="utf-8", buffering=1)


# -- the store ------------------------------------------------------------------------------------


def shown_db(db: str) -> str:
    """``--db`` as messages show it: its password masked (a cron log keeps what we print)."""
    from cspgraph.fleet.store_url import masked

    return masked(db)


def _remember_db_password(db: str) -> None:
    from cspgraph.fleet.store_url import passwords
    from cspgraph.http.redaction import remember_secret

    for password in passwords(db):
        remember_secret(password)


def open_store(db: str) -> Store:
    """The store at ``db``, created if needed (``sync``); one that cannot be opened (a bad URL,
    an unwritable path, a server that does not answer) is a usage error, password masked."""
    from cspgraph.fleet.store import Store

    _remember_db_password(db)
    try:
        return Store.open(db)
    except ValueError as exc:  # StoreOpenError: one line, already masked
        raise UsageError(f"--db: {exc}") from None


@contextlib.contextmanager
def existing_store(db: str) -> Iterator[Store]:
    """The store at ``db`` for a command that reads it (report, check, export, notify, serve):
    a SQLite file that does not exist is refused rather than created empty, which would report
    an empty fleet. A database that fails while it is read (a junk file, a server gone) ends the
    command with one line, never a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    from cspgraph.fleet.store import sqlite_file
    from cspgraph.fleet.store_url import open_error

    _remember_db_password(db)
    try:
        file = sqlite_file(db)
    except (ValueError, SQLAlchemyError) as exc:  # a URL SQLAlchemy cannot parse
        raise UsageError(f"--db: {open_error(db, exc)}") from None
    if file is not None and not file.exists():
        raise UsageError(f"no store at {file}; run `cspgraph sync` first or pass --db")
    store = open_store(db)
    with store:
        try:
            yield store
        except SQLAlchemyError as exc:
            raise UsageError(f"--db: cannot read the store: {open_error(db, exc)}") from None


# -- errors and exit statuses --------------------------------------------------------------------


@dataclass
class Run:
    """What a running command has loaded, for its error messages (see :func:`command`)."""

    interrupted: str = "interrupted"
    config: Config | None = field(default=None, repr=False)

    def load_config(self, path: Path | None, *, online: bool = True) -> Config:
        """The configuration, required; ``online``: the command will call the cloud, so an
        emulator the configuration names must be listening (checked now, not after retries)."""
        from cspgraph.config import load_config

        self.config = load_config(path, required=True)
        if online:
            check_config_emulator(self.config)
        return self.config


@contextlib.contextmanager
def command(*, interrupted: str = "interrupted") -> Iterator[Run]:
    """Run a command's body: every error the library classifies ends the command with its
    message and its status from :class:`Exit`; Ctrl-C with ``interrupted`` and 130."""
    from cspgraph.config import ConfigError
    from cspgraph.http.errors import CspGraphError
    from cspgraph.http.retry import HOSTS

    run = Run(interrupted=interrupted)
    HOSTS.reset()  # what an earlier command in this process (tests) saw is not this one's

    def retrying(line: str) -> None:  # a host refusing connections: never retry in silence
        say(f"note: {line}")

    HOSTS.listeners.append(retrying)
    try:
        yield run
    except (ConfigError, UsageError, EmulatorDown) as exc:
        fail(Exit.BAD_INPUT, f"error: {exc}")
    except CspGraphError as exc:
        report(exc, run)
    except KeyboardInterrupt:
        fail(Exit.INTERRUPTED, run.interrupted)
    except BrokenPipeError:  # `cspgraph … | head`: the reader has what it wanted
        silence_stdout()
        raise typer.Exit(int(Exit.DONE)) from None
    finally:
        HOSTS.listeners.remove(retrying)


def hosts_gone() -> list[str]:
    """The hosts this command judged gone (they refused every connection for a whole retry
    budget: cspgraph.http.retry.HostWatch), each with its service."""
    from cspgraph.http.retry import HOSTS

    return HOSTS.ever_gone()


def report(
    exc: CspGraphError,
    run: Run | None = None,
    *,
    tenant: str | None = None,
    hint: str | None = None,
) -> None:
    """End the command for a classified failure: its line (and a hint); its status."""
    if run is not None and run.config is not None and exc.error_class == "transient":
        try:
            check_config_emulator(run.config)
        except EmulatorDown as down:  # not the network's fault: the emulator is gone
            fail(Exit.BAD_INPUT, f"error: {down}")
        except ValueError:  # the endpoints file went away too: the transient error stands
            pass
    lines = [error_line(exc, tenant), *([hint] if hint else [])]
    fail(EXIT_BY_ERROR_CLASS.get(str(exc.error_class), Exit.BAD_INPUT), *lines)


def fail(status: Exit, *lines: str) -> None:
    for line in lines:
        say(line)
    raise typer.Exit(int(status))


def error_line(exc: CspGraphError, tenant: str | None = None) -> str:
    """One line: class, message, and the fields support asks for (code, status, tenant, id),
    those that are known: a field that is not (no request was sent) is left out, not shown as
    ``none``."""
    message = exc.message.replace(
        "Pass allow_any_resource=True to lift this.", "Pass --allow-any-resource to lift this."
    )
    known = (
        ("code", exc.code),
        ("status", exc.status),
        ("tenant", exc.tenant or tenant),
        ("request-id", exc.request_id),
    )
    fields = [f"{name}={value}" for name, value in known if value is not None and value != ""]
    details = f" ({', '.join(fields)})" if fields else ""
    text = f"error: {exc.error_class}: {message}{details}"
    return " ".join(text.split())  # one line, whatever the service put in its message (say()
    # shows its control characters as escapes)


def check_emulator(endpoints: EmulatorEndpoints | None, where: str) -> None:
    """Raise :class:`EmulatorDown` when a configuration (described by ``where``) names an
    emulator and nothing listens at its login host.

    A refused connection to a configured emulator is the environment, not the network: "is the
    emulator running?" is the answer a person needs, with exit status 2 rather than "transient".
    One TCP connect on loopback (no TLS, no request)."""
    if endpoints is None:
        return
    import socket  # here, not at start-up: `cspgraph --help` needs no sockets

    login = urlsplit(endpoints.authority_host)
    host, port = login.hostname or "127.0.0.1", login.port or 443
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        raise EmulatorDown(
            f"is the emulator running? nothing answers at {login.scheme}://{login.netloc}, where "
            f"the emulator of {endpoints.source} (`emulator` in {where}) listened; start it with "
            f"`cspgraph emulator serve --endpoints-file {endpoints.source}` (or point `emulator` "
            "at the endpoints file of one that runs)"
        ) from None


def check_config_emulator(config: Config) -> None:
    """:func:`check_emulator` for a loaded configuration."""
    check_emulator(config.emulator_endpoints(), config_label(config))


def config_label(config: Config) -> str:
    """The configuration's file and where its name came from, for messages."""
    from cspgraph.config import describe_config_path

    if config.source is None:
        return "the CSPGRAPH_* environment"
    return describe_config_path(config.source, config.origin)


def silence_stdout() -> None:
    # Python would complain about the broken pipe again when flushing stdout at exit.
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


@contextlib.asynccontextmanager
async def world_clock(cfg: Config, emulator_clock: bool) -> AsyncIterator[Any]:
    """The clock a command waits on: the emulator's world clock with `--emulator-clock` (waits
    move the emulated world forward), else wall time."""
    from cspgraph.partner.onboarding import EmulatorClock, SystemClock

    if not emulator_clock:
        yield SystemClock()
        return
    endpoints = cfg.emulator_endpoints()
    if endpoints is None:
        raise UsageError("--emulator-clock needs a configuration with `emulator = …`")
    clock = await EmulatorClock.of(endpoints)
    try:
        yield clock
    finally:
        await clock.aclose()
