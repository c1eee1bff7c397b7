"""A cap on the size of a request's head (request line and headers), as Microsoft's front ends have.

uvicorn's httptools protocol accepts a request head of any size (60 KB of headers were served),
and the parser buffers a header until it ends, so one endless header is held whole in memory.
:class:`CappedHttpToolsProtocol` counts the head as it is parsed and refuses it once it passes
:data:`MAX_REQUEST_HEAD`, answering as HTTP.sys answers Microsoft Graph's callers: ``400 Bad
Request`` with an HTML page "Bad Request - Request Too Long" (reported by a Graph caller in
microsoftgraph/microsoft-graph-docs#21903), then closing the connection.

*Unverified*: the limit itself. HTTP.sys defaults to 16 KiB per header and for the whole head;
Microsoft's services raise it by amounts they do not publish. 32 KiB passes every request the
client and the SDKs make (the largest is a delta link of a few KiB with a token of a few KiB)
and refuses what the issue sent (60 KB). The same answer serves all three hosts.
"""

from __future__ import annotations

from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_REQUEST_HEAD = 32 * 1024  # bytes of request line and headers; unverified (see above)

_PAGE = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n'
    b"<HTML><HEAD><TITLE>Bad Request</TITLE>\r\n"
    b'<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>\r\n'
    b"<BODY><h2>Bad Request - Request Too Long</h2>\r\n"
    b"<hr><p>HTTP Error 400. The size of the request headers is too long.</p>\r\n"
    b"</BODY></HTML>\r\n"
)
TOO_LONG = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Content-Type: text/html; charset=us-ascii\r\n"
    b"Content-Length: " + str(len(_PAGE)).encode() + b"\r\n"
    b"Connection: close\r\n"
    b"\r\n" + _PAGE
)


class _HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing; httptools re-raises it wrapped."""


class CappedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a cap on the request head (``uvicorn.Config(http=…)``).

    Two counts: the parsed head (request target, header names and values), exact; and the raw
    bytes received while a head is still open, which bounds what the parser can hold for a header
    that never ends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = True  # a connection starts by waiting for a request head
        self._head_size = 0  # parsed bytes of the open head
        self._head_raw = 0  # bytes received while the head was open
        self._refused = False

    # -- counting -------------------------------------------------------------------------------

    def _count(self, size: int) -> None:
        self._head_size += size
        if self._head_size > MAX_REQUEST_HEAD:
            raise _HeadTooLarge

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open, self._head_size = True, 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open, self._head_raw = False, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open = True  # the next bytes on this connection are the next request's head

    # -- receiving ------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        # uvicorn's own data_received, with the refusal in front of its parser-error answer.
        if self._refused:
            return
        self._unset_keepalive_if_required()
        if self._head_open:
            self._head_raw += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse()
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        if self._head_open and self._head_raw > MAX_REQUEST_HEAD:
            self._refuse()  # one header still arriving, already over the whole head's limit

    def _refuse(self) -> None:
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(TOO_LONG)
            self.transport.close()
