"""`cspgraph call`: one Microsoft Graph request for one customer, like `az rest`.

The request goes through the library's :class:`~cspgraph.graph.client.GraphClient`, so it gets the
same CSP scope guard (directory and Intune only), throttling budgets, retries and error taxonomy as
any program using cspgraph. The answer is printed as JSON: pretty on a terminal, compact when piped.
``--all`` follows every ``@odata.nextLink`` and prints one JSON array, written page by page as the
pages arrive (never held whole in memory). If a later page fails, the array is left unterminated on
purpose, so nothing downstream mistakes a partial listing for a whole one.

A failure is one line on stderr — taxonomy class, message, code, HTTP status, tenant, request id —
and the exit status says what to do about it (:class:`cspgraph.cli.common.Exit`). A call the CSP
scope guard refuses is refused before anything is sent, discovery included.
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO
from urllib.parse import parse_qsl, urlsplit

import typer

from cspgraph.cli import common
from cspgraph.cli.common import UsageError

if TYPE_CHECKING:
    from cspgraph.config import Config
    from cspgraph.discovery import Route
    from cspgraph.graph.client import GraphClient, TokenSource
    from cspgraph.http.errors import CspGraphError

__all__ = ["CallRequest", "UsageError", "build_request", "call", "execute"]

METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")
VERSIONS = ("v1.0", "beta")


# -- the request, as the command line describes it -------------------------------------------------


@dataclass(frozen=True)
class CallRequest:
    method: str
    path: str  # relative to the version root ("/users?$top=5"), or an absolute Graph URL
    version: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None  # JSON, sent only with POST/PATCH/PUT
    headers: dict[str, str] = field(default_factory=dict)
    all_pages: bool = False

    @property
    def absolute(self) -> bool:
        return self.path.startswith(("https://", "http://"))

    @property
    def count_path(self) -> str | None:
        """The collection of a ``…/$count`` request, whose answer is a bare number."""
        if self.absolute or self.method != "GET":
            return None
        bare = self.path.split("?", 1)[0].rstrip("/")
        return bare.removesuffix("/$count") if bare.endswith("/$count") else None


def build_request(
    method: str,
    path: str,
    *,
    beta: bool = False,
    data: str | None = None,
    all_pages: bool = False,
    select: list[str] | None = None,
    filter: str | None = None,
    top: int | None = None,
    headers: list[str] | None = None,
    stdin: TextIO | None = None,
) -> CallRequest:
    """The request the command line means; :class:`UsageError` says what does not fit."""
    verb = method.upper()
    if verb not in METHODS:
        raise UsageError(f"method {method!r}: expected one of {', '.join(METHODS)}")
    params: dict[str, str] = {}
    fields = [f.strip() for value in select or [] for f in value.split(",") if f.strip()]
    if fields:
        params["$select"] = ",".join(fields)
    if filter:
        params["$filter"] = filter
    if top is not None:
        if top < 1:
            raise UsageError(f"--top {top}: expected a page size of 1 or more")
        params["$top"] = str(top)
    if verb != "GET":
        options = {"--all": all_pages, "--select": bool(fields), "--filter": bool(filter),
                   "--top": top is not None}  # fmt: skip
        given = [name for name, used in options.items() if used]
        if given:
            raise UsageError(f"{', '.join(given)} only go with GET (this is {verb})")
    if data is not None and verb not in ("POST", "PATCH", "PUT"):
        raise UsageError(f"--data goes with POST, PATCH or PUT, not {verb}")
    body = _read_body(data, stdin) if data is not None else None

    version = "beta" if beta else "v1.0"
    path = path.strip()
    if path.startswith(("https://", "http://")):
        if params:
            raise UsageError(
                "an absolute URL (a saved nextLink) already carries its query: drop "
                "--select/--filter/--top, or give the path (/v1.0/users) instead"
            )
    else:
        path = "/" + path.lstrip("/")
        first = path.split("?", 1)[0].split("/")[1]
        if first in VERSIONS:
            if beta and first != "beta":
                raise UsageError(f"--beta and a {first} path ({path}) disagree: keep one")
            version = first
            path = path[len(first) + 1 :] or "/"
    return CallRequest(
        method=verb,
        path=path,
        version=version,
        params=params,
        body=body,
        headers=_parse_headers(headers or []),
        all_pages=all_pages,
    )


def _read_body(data: str, stdin: TextIO | None) -> Any:
    """--data: JSON text, ``@file`` or ``@-`` (standard input)."""
    where = "--data"
    text = data
    if data.startswith("@"):
        name = data[1:]
        if name == "-":
            where, text = "--data @- (standard input)", (stdin or sys.stdin).read()
        else:
            where = f"--data @{name}"
            try:
                text = Path(name).expanduser().read_text(encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"{where}: cannot read it ({exc.strerror})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{where}: not valid JSON: {exc}") from None


def _parse_headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise UsageError(f"--header {value!r}: expected 'Name: value'")
        if name.strip().lower() == "authorization":
            raise UsageError("--header Authorization: cspgraph sends the token itself")
        headers[name.strip()] = text.strip()
    return headers


# -- output ----------------------------------------------------------------------------------------


class Output(Protocol):
    def value(self, data: Any) -> None: ...
    def begin_array(self) -> None: ...
    def items(self, batch: list[Any]) -> None: ...
    def end_array(self) -> None: ...


class CompactOutput:
    """One line of compact JSON per answer; an array is written page by page."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._first = True

    def value(self, data: Any) -> None:
        self._stream.write(_compact(data) + "\n")
        self._stream.flush()

    def begin_array(self) -> None:
        self._stream.write("[")
        self._first = True

    def items(self, batch: list[Any]) -> None:
        if not batch:
            return
        text = ",".join(_compact(item) for item in batch)
        self._stream.write(text if self._first else "," + text)
        self._first = False
        self._stream.flush()

    def end_array(self) -> None:
        self._stream.write("]\n")
        self._stream.flush()


class PrettyOutput:
    """Indented, highlighted JSON for a terminal (Rich); an array still streams item by item.

    Each item is printed when the next one arrives, so its separating comma can follow it."""

    def __init__(self, console: Any) -> None:
        from rich.highlighter import JSONHighlighter

        self._console = console
        self._highlight = JSONHighlighter()
        self._held: Any = None
        self._holding = False

    def value(self, data: Any) -> None:
        self._print(json.dumps(data, indent=2, ensure_ascii=False))

    def begin_array(self) -> None:
        self._print("[")
        self._holding = False

    def items(self, batch: list[Any]) -> None:
        for item in batch:
            if self._holding:
                self._print_item(self._held, last=False)
            self._held, self._holding = item, True

    def end_array(self) -> None:
        if self._holding:
            self._print_item(self._held, last=True)
            self._holding = False
        self._print("]")

    def _print_item(self, item: Any, *, last: bool) -> None:
        text = json.dumps(item, indent=2, ensure_ascii=False).replace("\n", "\n  ")
        self._print("  " + text + ("" if last else ","))

    def _print(self, text: str) -> None:
        self._console.print(self._highlight(text), soft_wrap=True)


def _compact(data: Any) -> str:
    import orjson

    return orjson.dumps(data).decode()


def make_output(stream: TextIO, *, compact: bool = False) -> Output:
    if stream.isatty() and not compact:
        from cspgraph.fleet.safe_console import SafeConsole  # Rich for a terminal only

        return PrettyOutput(SafeConsole(file=stream))
    return CompactOutput(stream)


# -- running it ------------------------------------------------------------------------------------


def check_scope(request: CallRequest) -> None:
    """Refuse, before anything is sent, a call the CSP scope guard would refuse anyway (a
    :class:`~cspgraph.graph.scope.CspScopeError`, exit status 2)."""
    from cspgraph.graph import scope

    path = urlsplit(request.path).path if request.absolute else request.path
    scope.check(request.method, path)


def relocate(request: CallRequest, name: str, location: str) -> CallRequest:
    """An absolute URL on the cloud's Graph *name* (https://graph.microsoft.com, what
    ``@odata.context`` shows) sent to where Graph is reached (a proxy, the emulator)."""
    if request.absolute and name != location and request.path.startswith(name + "/"):
        return replace(request, path=location + request.path[len(name) :])
    return request


class RememberingTokens:
    """The token source the client uses, keeping each tenant's last token in memory so a refusal
    can be explained from the permissions it carried. A token is never printed or logged."""

    def __init__(self, source: TokenSource, *, fresh: bool = False) -> None:
        self._source = source
        self._fresh = fresh
        self.last: dict[str, str] = {}

    async def get_token(self, tenant: str, *, fresh: bool = False) -> str:
        token = await self._source.get_token(tenant, fresh=fresh or self._fresh)
        self._fresh = False
        self.last[tenant] = token
        return token


async def execute(client: GraphClient, tenant: str, request: CallRequest, out: Output) -> None:
    """Send ``request`` for ``tenant`` and print the answer through ``out``."""
    if request.count_path is not None:
        inline = dict(parse_qsl(urlsplit(request.path).query))
        number = await client.count(
            tenant,
            request.count_path,
            filter=request.params.get("$filter") or inline.get("$filter"),
            search=inline.get("$search"),
            version=request.version,
        )
        out.value(number)
        return
    if request.method == "GET" and request.all_pages:
        await _all_pages(client, tenant, request, out)
        return
    if request.method == "GET":
        out.value(
            await client.get(
                tenant,
                request.path,
                params=request.params or None,
                version=request.version,
                headers=request.headers or None,
            )
        )
        return
    write = {"POST": client.post, "PATCH": client.patch, "PUT": client.put}.get(request.method)
    if write is not None:
        answer = await write(
            tenant,
            request.path,
            request.body,
            version=request.version,
            headers=request.headers or None,
        )
    else:
        answer = await client.delete(
            tenant, request.path, version=request.version, headers=request.headers or None
        )
    if answer is not None:  # 204 No Content prints nothing, as `az rest` does
        out.value(answer)


async def _all_pages(client: GraphClient, tenant: str, request: CallRequest, out: Output) -> None:
    from cspgraph.http.errors import CspGraphError

    started = False
    try:
        async for page in client.pages(
            tenant,
            request.path,
            params=request.params or None,
            version=request.version,
            headers=request.headers or None,
        ):
            if not started:
                out.begin_array()
                started = True
            out.items(page.items)
    except CspGraphError as exc:
        if not started and exc.status is not None and exc.status < 300:
            # Graph answered fine, just not with a collection (/users/{id}): the --all is wrong.
            raise UsageError(
                f"--all follows the pages of a collection, and {request.path.split('?')[0]} "
                "answered with a single object: drop --all"
            ) from None
        raise
    out.end_array()


def explain_denial(
    exc: CspGraphError, request: CallRequest, token: str | None, *, delegated: bool
) -> tuple[CspGraphError, str | None]:
    """A 403 read with the permissions the token carried: (the failure, a hint line or None).

    A token that carries permissions, but not the one the call needs, will not get it by
    waiting: that is needs-a-person, naming the permission (the one error table,
    :func:`~cspgraph.http.errors.permission_missing_error`). A token with none at all is what a
    relationship still on its way looks like: propagating, as the taxonomy says."""
    if exc.status != 403 or token is None or exc.code == "CspScopeViolation":
        return exc, None
    from cspgraph.graph import scope
    from cspgraph.http import token_claims
    from cspgraph.http.errors import CspGraphError, permission_missing_error

    try:
        needed = scope.permission_for(request.method, request.path, delegated=delegated)
    except (ValueError, CspGraphError):
        return exc, None  # outside the CSP table (--allow-any-resource)
    granted = token_claims.scopes(token) if delegated else token_claims.roles(token)
    if granted is not None and scope.covers(granted, needed):
        return exc, None  # the token had it: the refusal is about something else (a role)
    if not granted:
        if delegated:
            return exc, None
        return exc, (
            "hint: the app-only token carries no application permissions at all: the partner "
            "relationship (pre-consent) has not reached this customer yet; retry in a few minutes"
        )
    what = f"{request.method} {request.path.split('?')[0]}"
    if delegated:
        holder, kind = "the signed-in account's token", "delegated"
        step = (
            "add it to the partner-managed app's delegated API permissions, consent again, and "
            "sign in again (`cspgraph login`)"
        )
    else:
        holder, kind = "the app-only token", "application"
        step = (
            "grant it to the partner-managed app (its application API permissions) and consent "
            "again in the customer (a GDAP customer: `cspgraph gdap consent`)"
        )
    explained = permission_missing_error(
        exc, operation=what, permission=needed, kind=kind, holder=holder, granted=granted,
        next_step=step,
    )  # fmt: skip
    return explained, f"hint: {explained.reason}"


def recorded_mode(db: str | None, tenant: str) -> str | None:
    """The access mode the last sync recorded for ``tenant`` in the store at ``db`` (None: no
    store there, no record, or a store that cannot be read — then the mode is found out)."""
    if db is None:
        return None
    from sqlalchemy.exc import SQLAlchemyError

    from cspgraph.fleet.access import recorded_mode as read_mode
    from cspgraph.fleet.store import Store, sqlite_file

    try:
        file = sqlite_file(db)
        if file is not None and not file.exists():
            return None  # never synced here: nothing to read, and nothing is created
        with Store.open(db) as store:
            mode = read_mode(store, tenant)
    except (ValueError, OSError, SQLAlchemyError) as exc:  # a hint, never the call's failure
        import logging

        logging.getLogger(__name__).info("the recorded access mode is unknown: %s", exc)
        return None
    return None if mode is None else mode.value


async def use_service_account(
    provider: Any, service: Any, tenant: str, db: str | None
) -> str | None:
    """Why the call should go through the service account (None: as the app): the access mode
    the last sync recorded (``gdap-delegated``), or — never recorded — the app's own token
    reaching nothing there while the service account is signed in."""
    import asyncio

    from cspgraph.fleet.access import app_reaches

    mode = await asyncio.to_thread(recorded_mode, db, tenant)
    if mode is not None:
        return "access mode gdap-delegated, recorded by the last sync" if (
            mode == "gdap-delegated"
        ) else None  # fmt: skip
    if not service.accounts() or await app_reaches(provider, tenant):
        return None
    return "the app's own token reaches nothing there (no DAP, no application permissions)"


async def _call(
    config: Config,
    customer: str,
    request: CallRequest,
    *,
    agent: bool,
    agent_user: str | None,
    fresh: bool,
    allow_any_resource: bool,
    out: Output,
    service_account: bool | None = False,
    db: str | None = None,
) -> None:
    """``service_account``: True uses it, False does not, None chooses (see
    :func:`use_service_account`; only where one is configured)."""
    from cspgraph.graph.client import GraphClient
    from cspgraph.http.errors import CspGraphError
    from cspgraph.identity import TokenProvider

    provider = TokenProvider(config, workers=2)
    tenant: str | None = None
    tokens: RememberingTokens | None = None
    closing: list[Any] = []
    via_service = False
    app_only = False  # the call goes with the app's own token
    try:
        route = await provider.route(customer)
        tenant = route.tenant_id
        source: TokenSource = provider.agent(username=agent_user) if agent else provider
        path = config.service_account_cache_path
        if service_account is not False and path is not None:
            # A GDAP customer reached through the partner's service account.
            from cspgraph.identity.service_account import ServiceAccountTokens

            service = ServiceAccountTokens(provider, path)
            closing.append(service)
            why = "--service-account" if service_account else None
            if why is None:
                why = await use_service_account(provider, service, tenant, db)
            if why is not None:
                source = service
                if service_account is None:
                    common.say(f"calling as the service account: {why} (--app calls as the app)")
        via_service = source is not provider and not agent
        app_only = source is provider
        tokens = RememberingTokens(source, fresh=fresh)
        cloud = provider.cloud
        request = relocate(request, cloud.graph_resource, cloud.graph)
        async with GraphClient(
            tokens,
            graph_url=cloud.graph,
            ca_bundle=cloud.ca_bundle,
            allow_any_resource=allow_any_resource,
        ) as client:
            from cspgraph.cli.call_audit import WRITES

            if request.method not in WRITES:
                await execute(client, tenant, request, out)
                return
            audit = functools.partial(
                _audit, route, customer, request, tokens, agent=agent, tenant=tenant
            )
            try:
                await execute(client, tenant, request, out)
            except CspGraphError as exc:
                audit(exc.status, str(exc.error_class), exc.request_id)
                raise
            except BaseException:  # the network, Ctrl-C: the write may have happened
                audit(None, "unknown", None)
                raise
            audit(client.last_write_status, "ok", None)
    except CspGraphError as exc:
        token = tokens.last.get(tenant) if tokens is not None and tenant else None
        explained, hint = explain_denial(exc, request, token, delegated=agent or via_service)
        if app_only and token is None and tenant is not None:
            # The app's own token was refused: read it as a sync would (consent missing, a
            # relationship awaiting approval: a person's matter, not "wait").
            explained = await _gdap_aware(provider, route, customer, exc)
            if explained is not exc:  # its next step, from the customer's DAP and GDAP facts
                hint = explained.reason or hint
        raise _Failed(explained, tenant, hint) from None
    finally:
        for opened in closing:
            opened.close()
        await provider.aclose()


async def _gdap_aware(provider: Any, route: Route, customer: str, refused: Any) -> Any:
    """``refused`` as the one error table reads it with the customer's DAP and GDAP facts; as
    it was when those cannot be read."""
    from cspgraph.fleet.access import explain_refusal
    from cspgraph.graph.client import GraphClient
    from cspgraph.http.errors import CspGraphError

    cloud = provider.cloud
    try:
        async with GraphClient(provider, graph_url=cloud.graph, ca_bundle=cloud.ca_bundle) as graph:
            return await explain_refusal(
                provider, graph, route.tenant_id, route.region, customer, refused
            )
    except CspGraphError:
        return refused


def _audit(
    route: Route,
    customer: str,
    request: CallRequest,
    tokens: RememberingTokens,
    status: int | None,
    outcome: str,
    request_id: str | None,
    *,
    agent: bool,
    tenant: str,
) -> None:
    """Record a write in the audit trail (:mod:`cspgraph.cli.call_audit`); a trail that cannot
    be written is said on stderr, and the write's own outcome stands."""
    from cspgraph.cli.call_audit import AuditEntry, now, path_of, record

    identity = route.identity
    who = f"app {identity.client_id} (partner {identity.partner_tenant})"
    if agent:
        who = f"agent {_signed_in_as(tokens.last.get(tenant)) or 'unknown'}"
    entry = AuditEntry(
        at=now(), who=who, via="agent" if agent else "app",
        partner_tenant=identity.partner_tenant, client_id=identity.client_id,
        region=route.region, tenant=tenant, customer=customer, method=request.method,
        path=path_of(request.path) if request.absolute else f"/{request.version}{request.path}",
        status=status, outcome=outcome, request_id=request_id,
    )  # fmt: skip
    try:
        record(entry)
    except OSError as exc:
        common.say(f"warning: the audit line could not be written ({exc.strerror}): {entry.line()}")


def _signed_in_as(token: str | None) -> str | None:
    """The agent a delegated token is for (unverified: the token came from our own cache)."""
    import jwt

    if token is None:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    for name in ("upn", "unique_name", "preferred_username"):
        if isinstance(claims.get(name), str):
            return str(claims[name])
    return None


class _Failed(Exception):
    def __init__(self, error: CspGraphError, tenant: str | None, hint: str | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.tenant = tenant
        self.hint = hint


def call(
    method: str = typer.Argument(..., metavar="METHOD", help="GET, POST, PATCH, PUT or DELETE."),
    path: str = typer.Argument(
        ...,
        metavar="PATH",
        help="/v1.0/users, /beta/users/{id}, /users?$top=5 (v1.0 unless --beta), or a saved "
        "nextLink URL.",
    ),
    customer: str = typer.Option(
        ...,
        "--customer",
        "-c",
        metavar="CUSTOMER",
        help="Customer tenant: ID, domain or user@domain.",
    ),
    data: str | None = typer.Option(
        None,
        "--data",
        "-d",
        metavar="JSON|@FILE|@-",
        help="Request body: JSON, @file, or @- for standard input.",
    ),
    all_pages: bool = typer.Option(
        False, "--all", help="Follow every nextLink and print one JSON array."
    ),
    beta: bool = typer.Option(False, "--beta", help="Use the beta endpoint for a bare path."),
    agent: bool = typer.Option(
        False, "--agent", help="Call as the signed-in agent (delegated), not as the app."
    ),
    agent_user: str | None = typer.Option(
        None, "--agent-user", metavar="UPN", help="Which signed-in agent, when several are."
    ),
    service_account: bool = typer.Option(
        False,
        "--service-account",
        help="Call as the partner's service account (delegated, within the roles its GDAP "
        "groups hold in the customer). Default: chosen by the customer's access mode (the "
        "last sync's record in --db, else found out) where one is configured.",
    ),
    as_app: bool = typer.Option(
        False, "--app", help="Call as the app, whatever the customer's access mode."
    ),
    db: str = common.DB_OPTION,
    select: list[str] | None = typer.Option(
        None, "--select", metavar="PROPS", help="$select: properties, comma-separated or repeated."
    ),
    filter: str | None = typer.Option(None, "--filter", metavar="EXPR", help="$filter expression."),
    top: int | None = typer.Option(None, "--top", metavar="N", help="$top: the page size."),
    header: list[str] | None = typer.Option(
        None,
        "--header",
        "-H",
        metavar="'NAME: VALUE'",
        help="Extra request header (repeatable).",
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="Evict this tenant's cached token and get a new one first."
    ),
    allow_any_resource: bool = typer.Option(
        False,
        "--allow-any-resource",
        help="Send calls outside directory and Intune too (Graph will refuse them for a CSP app).",
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Compact JSON even on a terminal (as when stdout is piped)."
    ),
    config: Path | None = common.CONFIG_OPTION,
) -> None:
    """Call Microsoft Graph in a customer tenant and print the JSON answer (like `az rest`).

    Exit status: 0 done; 2 bad request, usage or configuration; 3 needs a person;
    4 propagating, retry in minutes; 5 transient, retry soon; 130 interrupted.
    """
    with common.command() as run:
        request = build_request(
            method,
            path,
            beta=beta,
            data=data,
            all_pages=all_pages,
            select=select,
            filter=filter,
            top=top,
            headers=header,
        )
        if not allow_any_resource:
            from cspgraph.http.errors import CspGraphError

            try:
                check_scope(request)
            except CspGraphError as refused:  # before discovery: the tenant is as named
                common.report(refused, tenant=customer)
        settings = run.load_config(config)
        ways = {"--agent": agent or agent_user is not None, "--service-account": service_account,
                "--app": as_app}  # fmt: skip
        chosen = [name for name, given in ways.items() if given]
        if len(chosen) > 1:
            raise common.UsageError(f"{' and '.join(chosen)}: choose one")
        if service_account and settings.service_account_cache_path is None:
            raise common.UsageError(
                "--service-account: no service account is configured (service_account_cache)"
            )
        out = make_output(sys.stdout, compact=json_out)
        import asyncio  # imported where used: keeps `cspgraph --help` fast

        try:
            asyncio.run(
                _call(
                    settings,
                    customer,
                    request,
                    agent=agent,
                    agent_user=agent_user,
                    fresh=fresh,
                    allow_any_resource=allow_any_resource,
                    out=out,
                    # None: chosen from the access mode (only where a service account is set).
                    service_account=True if service_account else (False if chosen else None),
                    db=db,
                )
            )
        except _Failed as failed:
            common.report(failed.error, run, tenant=failed.tenant, hint=failed.hint)
        except ValueError as exc:  # the client refused the request itself (a URL to another host)
            from cspgraph.config import ConfigError

            if isinstance(exc, ConfigError):
                raise
            raise UsageError(f"bad_request: {exc}") from None
