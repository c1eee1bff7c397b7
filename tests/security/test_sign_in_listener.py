"""The loopback listener of a sign-in against what browsers and networks really do, over real
sockets: a browser opens a connection it never uses (a preconnect) before the real redirect; a
connection drops after sending the answer, before reading the page; a request lies about its
length. The answer still arrives, the sign-in's time limit holds, and nothing prints a traceback.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from csp_emulator.server import Emulator
from cspgraph.identity import SignInError, TokenProvider
from cspgraph.identity.loopback import LoopbackReceiver
from tests.client.conftest import AGENT, AGENT_PASSWORD, emulator_config
from tests.client.partner_helpers import sign_in_browser
from tests.conftest import MakeEmulator

STATE = "the-state"
ANSWER = f"/?code=the-code&state={STATE}"


@pytest.fixture
def receiver() -> Iterator[LoopbackReceiver]:
    made = LoopbackReceiver()
    made.expect(STATE)
    yield made
    made.close()


def idle_connection(port: int, *, partial: bytes = b"") -> socket.socket:
    """What a browser's preconnect is: a connection that sends nothing (or half a request)."""
    sock = socket.create_connection(("127.0.0.1", port))
    if partial:
        sock.sendall(partial)
    return sock


def test_an_idle_connection_does_not_keep_the_answer_out(receiver: LoopbackReceiver) -> None:
    idle = idle_connection(receiver.port)
    half = idle_connection(receiver.port, partial=b"GET /?code=")
    try:
        answer = requests.get(f"{receiver.redirect_uri}{ANSWER}", timeout=30)
        assert answer.status_code == 200 and "Signed in" in answer.text
        assert receiver.wait(timeout=30) == {"code": "the-code", "state": STATE}
    finally:
        idle.close()
        half.close()


def test_the_time_limit_holds_while_a_connection_stays_idle(receiver: LoopbackReceiver) -> None:
    idle = idle_connection(receiver.port)
    outcome: list[BaseException] = []

    def wait_then_close() -> None:
        try:
            receiver.wait(timeout=1)
        except SignInError as exc:
            outcome.append(exc)
        receiver.close()  # it used to wait here for the idle connection, forever

    waiting = threading.Thread(target=wait_then_close, daemon=True)
    waiting.start()
    waiting.join(timeout=60)  # a bound on a hang, not a measure of speed
    idle.close()
    assert not waiting.is_alive(), "the sign-in did not end at its time limit"
    assert len(outcome) == 1 and "no sign-in came back within 1 s" in str(outcome[0])


def test_a_connection_dropped_after_the_answer_keeps_the_code(
    receiver: LoopbackReceiver, capfd: pytest.CaptureFixture[str]
) -> None:
    sock = socket.create_connection(("127.0.0.1", receiver.port))
    sock.sendall(f"GET {ANSWER} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    # Reset, not a polite close: the listener's reply meets a dead connection.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    assert receiver.wait(timeout=30) == {"code": "the-code", "state": STATE}
    receiver.close()
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("length", ["lots", "-5", str(1 << 40)])
def test_a_request_that_lies_about_its_length_is_refused_and_the_wait_goes_on(
    receiver: LoopbackReceiver, capfd: pytest.CaptureFixture[str], length: str
) -> None:
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(f"POST / HTTP/1.1\r\nContent-Length: {length}\r\n\r\ncode=x".encode())
        sock.settimeout(30)
        assert sock.recv(100).startswith(b"HTTP/1.0 4")
    answer = requests.get(f"{receiver.redirect_uri}{ANSWER}", timeout=30)
    assert answer.status_code == 200
    assert receiver.wait(timeout=30)["code"] == "the-code"
    assert "Traceback" not in capfd.readouterr().err


def test_an_agent_signs_in_although_the_browser_preconnected_first(
    make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    emu: Emulator = make_emulator()
    provider = TokenProvider(emulator_config(emu, tmp_path))
    try:
        with provider.agent().begin_sign_in("customer.com") as pending:
            port = int(pending.redirect_uri.rsplit(":", 1)[1])
            idle = idle_connection(port)
            try:
                assert sign_in_browser(emu, AGENT["NA"], AGENT_PASSWORD)(pending.auth_url)
                result = pending.wait(timeout=60)
            finally:
                idle.close()
        assert result.account.username == AGENT["NA"]
    finally:
        asyncio.run(provider.aclose())
