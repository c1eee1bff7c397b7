"""The dashboard's HTTP server: the standard library's ``ThreadingHTTPServer``, read-only.

Why the standard library and not the emulator's ASGI stack (Starlette, uvicorn): the client
distribution must not pull a web framework for a local, read-only page server that a handful of
people open; ``http.server`` serves GET requests on a thread each, which is all the dashboard
does (every page is rendered by :mod:`cspgraph.dashboard.pages` from one store read).

Who may look:

* Bound to a loopback address (the default, 127.0.0.1), no token is needed unless one is given,
  but the ``Host`` header must name a loopback host: a web page elsewhere cannot read the
  dashboard through a DNS name rebound to 127.0.0.1.
* Bound to any other address, an access token is required (:func:`needs_token`; the command
  generates one when none is given). Every request must then carry it: ``Authorization: Bearer``,
  or the cookie a first visit with ``?token=`` sets (that visit is redirected to the same page
  without the token in its URL). Compared in constant time; never logged (the request log
  leaves out query strings and headers).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
import sys
import threading
from html import escape
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from cspgraph.dashboard.pages import HTML, Page, Pages
from cspgraph.fleet.store import Store

log = logging.getLogger("cspgraph.dashboard")

COOKIE = "cspgraph_dashboard"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
# No script, no frames, nothing fetched from anywhere: the pages are HTML with inline styles.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' "
    "data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Tenant data: not kept by the browser's cache or a proxy.
    "Cache-Control": "no-store",
}


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and the names of the local host; any other name or address is not."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def needs_token(host: str) -> bool:
    return not is_loopback(host)


class DashboardServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` over :class:`Pages`, with the access rule above."""

    daemon_threads = True  # a browser's idle keep-alive connection never holds up Ctrl-C
    allow_reuse_address = False  # a port another process listens on is an error, not shared

    def __init__(self, pages: Pages, host: str, port: int, token: str | None) -> None:
        if token is None and needs_token(host):
            raise ValueError(
                f"the dashboard listens on {host}, not a loopback address: it needs an access token"
            )
        self.pages = pages
        self.token = token
        family = _family(host)
        self.address_family = family
        super().__init__((host, port), DashboardHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed outside the page (the browser went away mid-answer): one
        line in the log, not socketserver's traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("dashboard: the client went away: %r", exc)
        else:
            log.warning("dashboard: a connection failed: %r", exc)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}/"

    def serve_in_thread(self) -> threading.Thread:
        """Serve on a daemon thread (tests, embedding); stop with :meth:`shutdown`."""
        thread = threading.Thread(target=self.serve_forever, name="cspgraph-dashboard", daemon=True)
        thread.start()
        return thread


def _family(host: str) -> socket.AddressFamily:
    try:
        v6 = ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        v6 = False
    return socket.AF_INET6 if v6 else socket.AF_INET


def _host_of(header: str) -> str:
    """The host of a ``Host`` header: ``[::1]:8080`` is ``::1``."""
    try:
        return urlsplit(f"//{header}").hostname or ""
    except ValueError:
        return ""


def serve(
    store: Store, host: str = "127.0.0.1", port: int = 0, token: str | None = None
) -> DashboardServer:
    """A dashboard server over ``store``, bound (port 0: any free port) but not yet serving:
    call ``serve_forever()`` or ``serve_in_thread()``. The checks start running at once, in the
    background, so that needs action is ready by the time someone opens it."""
    server = DashboardServer(Pages(store), host, port, token)
    server.pages.checks.warm()
    return server


class DashboardHandler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "cspgraph-dashboard"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        refusal = self._refusal(params)
        if refusal is not None:
            self._send(refusal, head=head)
            return
        if self.server.token is not None and "token" in params:
            # The token arrived in the URL: keep it in a cookie and show the page without it,
            # so it stays out of the history, bookmarks and anything copied from the bar.
            rest = {k: v for k, v in params.items() if k != "token"}
            location = url.path + ("?" + urlencode(rest) if rest else "")
            cookie = f"{COOKIE}={self.server.token}; HttpOnly; SameSite=Strict; Path=/"
            self._send(
                Page(303, "", headers={"Location": location, "Set-Cookie": cookie}), head=head
            )
            return
        try:
            page = self.server.pages.get(url.path, params)
        except Exception:
            log.exception("the dashboard could not render %s", url.path)
            page = Page(500, _plain("The page could not be made; the server log says why."))
        self._send(page, head=head)

    def _refusal(self, params: dict[str, str]) -> Page | None:
        token = self.server.token
        if token is None:
            if not is_loopback(_host_of(self.headers.get("Host") or "")):
                return Page(
                    HTTPStatus.MISDIRECTED_REQUEST,
                    _plain("This dashboard answers on its loopback address only."),
                )
            return None
        if _same(self._offered(params), token):
            return None
        return Page(
            HTTPStatus.UNAUTHORIZED,
            _plain(
                "This dashboard needs its access token: open it once with ?token=… "
                "(the person who started `cspgraph serve` has it), or send "
                "Authorization: Bearer …."
            ),
            headers={"WWW-Authenticate": 'Bearer realm="cspgraph dashboard"'},
        )

    def _offered(self, params: dict[str, str]) -> str | None:
        authorization = self.headers.get("Authorization") or ""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        if "token" in params:
            return params["token"]
        try:
            cookies = SimpleCookie(self.headers.get("Cookie") or "")
        except CookieError:
            return None
        morsel = cookies.get(COOKIE)
        return morsel.value if morsel is not None else None

    def _send(self, page: Page, *, head: bool) -> None:
        body = page.body.encode("utf-8")
        self.send_response(page.status)
        headers = {"Content-Type": page.content_type, **SECURITY_HEADERS, **page.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path without its query string: a token given as ?token= never reaches a log.
        log.info("%s %s %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard: " + format, *args)


def _same(offered: str | None, token: str) -> bool:
    if offered is None:
        return False
    return hmac.compare_digest(offered.encode("utf-8"), token.encode("utf-8"))


def _plain(text: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cspgraph dashboard'
        f"</title></head><body><p>{escape(text)}</p></body></html>"
    )


__all__ = ["HTML", "DashboardServer", "is_loopback", "needs_token", "serve"]
