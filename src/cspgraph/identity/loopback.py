"""The browser's way back: a one-shot loopback listener for an authorization response.

A sign-in by authorization code (an agent's in :mod:`cspgraph.identity.agent`, a partner
administrator's in :mod:`cspgraph.partner.auth`) opens the authorization URL in a browser; Entra
redirects back to ``http://localhost:{free port}``, where :class:`LoopbackReceiver` captures the
answer. :class:`PendingSignIn` ties the URL, the receiver and the step that redeems the code.
"""

from __future__ import annotations

import contextlib
import html
import queue
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit

from cspgraph.http.errors import BadRequestError


class SignInError(BadRequestError):
    """The sign-in did not complete: refused, mismatched, timed out."""


_DONE_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>cspgraph</title></head><body>"
    "<h1>{title}</h1><p>{text}</p></body></html>"
)


# A connection that has not sent its request within this many seconds is dropped: a browser's
# preconnect may never send one. Each connection has its own thread, so an idle one holds up
# nothing else meanwhile.
CONNECTION_TIMEOUT = 15.0
MAX_FORM_BODY = 64 * 1024  # a form_post answer is a few KiB (code, state, id_token)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a connection still open never keeps the process alive
    block_on_close = False  # nor makes close() wait for it

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A connection reset or dropped mid-answer: nothing to tell the person at the terminal
        # (the default prints a traceback to stderr), and the request line holds the code.
        return


class LoopbackReceiver:
    """A one-shot HTTP listener on 127.0.0.1 that captures the authorization response.

    It answers only the response that carries the expected ``state`` (query or form_post); other
    requests (a favicon, a stray tab) get a 404 and do not end the wait. Connections are served
    concurrently, each dropped after :data:`CONNECTION_TIMEOUT` seconds of silence, so a
    browser's idle preconnect neither hides the real answer nor outlives the sign-in's time
    limit. The answer is taken before the page is written back: a connection dropped at that
    moment loses nothing. It never logs a request: the URL carries the authorization code.
    """

    def __init__(self, port: int = 0) -> None:
        self._answers: queue.Queue[dict[str, str]] = queue.Queue(maxsize=1)
        self._state: str | None = None
        self._closing = threading.Lock()
        self._closed = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            timeout = CONNECTION_TIMEOUT  # the socket's: a silent connection is dropped

            def do_GET(self) -> None:
                self._handle(dict(parse_qsl(urlsplit(self.path).query)))

            def do_POST(self) -> None:  # response_mode=form_post
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= MAX_FORM_BODY:
                    self.send_error(413 if length > MAX_FORM_BODY else 400)
                    return
                body = self.rfile.read(length).decode("utf-8", "replace")
                self._handle(dict(parse_qsl(body)))

            def _handle(self, params: dict[str, str]) -> None:
                if not receiver._accepts(params):
                    self.send_response(404)
                    self.end_headers()
                    return
                receiver._deliver(params)  # first: the page below may meet a closed connection
                failed = "error" in params
                page = _DONE_PAGE.format(
                    title="Sign-in failed" if failed else "Signed in",
                    text=html.escape(params.get("error_description", params.get("error", "")))
                    if failed
                    else "You can close this window and return to the terminal.",
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, format: str, *args: Any) -> None:
                return  # never log: the request line holds the authorization code

        self._server = _Server(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="cspgraph-loopback", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def redirect_uri(self) -> str:
        # "localhost" because that is what apps register; Entra ignores the port of a loopback
        # redirect URI, so any free port matches the registration "http://localhost".
        return f"http://localhost:{self.port}"

    def expect(self, state: str) -> None:
        self._state = state

    def _accepts(self, params: dict[str, str]) -> bool:
        return (
            self._state is not None
            and secrets.compare_digest(params.get("state", ""), self._state)
            and ("code" in params or "error" in params)
        )

    def _deliver(self, params: dict[str, str]) -> None:
        # A second answer for the same sign-in (a reload) changes nothing.
        with contextlib.suppress(queue.Full):
            self._answers.put_nowait(params)

    def wait(self, timeout: float) -> dict[str, str]:
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            raise SignInError(
                f"no sign-in came back within {timeout:.0f} s",
                code="SignInTimeout",
            ) from None

    def close(self) -> None:
        """Stop listening (at once: connections still open are not waited for); twice is once."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()


R = TypeVar("R")


class PendingSignIn(Generic[R]):
    """A sign-in in progress: open ``auth_url`` in a browser, then ``wait()`` for the result.

    ``R`` is what the sign-in yields: an agent's :class:`SignInResult` here, a partner admin's
    account in ``partner.auth``; both wait on the same loopback receiver."""

    def __init__(
        self,
        auth_url: str,
        receiver: LoopbackReceiver,
        complete: Callable[[dict[str, str]], R],
    ) -> None:
        self.auth_url = auth_url
        self._receiver = receiver
        self._complete = complete

    @property
    def redirect_uri(self) -> str:
        return self._receiver.redirect_uri

    def wait(self, timeout: float = 300.0) -> R:
        try:
            answer = self._receiver.wait(timeout)
        finally:
            self._receiver.close()
        return self._complete(answer)

    def complete(self, auth_response: dict[str, str]) -> R:
        """Finish with an authorization response received elsewhere (a pasted redirect URL)."""
        self._receiver.close()
        return self._complete(auth_response)

    def close(self) -> None:
        self._receiver.close()

    def __enter__(self) -> PendingSignIn[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self._receiver.close()
