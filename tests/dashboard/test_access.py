"""Who may look, over real sockets: loopback by default with no token (but only under a loopback
Host name), any other address only with the access token, compared on every request and never
logged; and nothing but reading."""

from __future__ import annotations

import hashlib
import http.client
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from cspgraph.dashboard.pages import Pages
from cspgraph.dashboard.server import DashboardServer, is_loopback, serve
from cspgraph.fleet.store import Store
from tests.dashboard.fleets import known_fleet_with_runs

TOKEN = "t0ken-for-the-dashboard-test-0123456789"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'fleet.db'}") as opened:
        known_fleet_with_runs(opened)
        yield opened


def running(server: DashboardServer) -> DashboardServer:
    server.serve_in_thread()
    return server


def get(
    port: int, path: str = "/", headers: dict[str, str] | None = None, method: str = "GET"
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def port_of(server: DashboardServer) -> int:
    return int(server.server_address[1])


def test_loopback_names_and_addresses() -> None:
    for host in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.1.2.3", "192.168.0.1", "example.com", ""):
        assert not is_loopback(host), host


def test_on_loopback_the_pages_answer_without_a_token(store: Store) -> None:
    with running(serve(store)) as server:
        try:
            for path in ("/", "/customers", "/customers?q=alpha&sort=users"):
                response = get(port_of(server), path)
                assert response.status == 200, path
                assert response.getheader("Content-Type") == "text/html; charset=utf-8"
                assert "script-src" not in (response.getheader("Content-Security-Policy") or "")
                assert "default-src 'none'" in response.getheader("Content-Security-Policy", "")
            assert get(port_of(server), "/nowhere").status == 404
        finally:
            server.shutdown()


def test_a_page_under_another_host_name_is_refused_on_loopback(store: Store) -> None:
    # DNS rebinding: a page at evil.example whose name now resolves to 127.0.0.1.
    with running(serve(store)) as server:
        try:
            port = port_of(server)
            assert get(port, "/", {"Host": f"evil.example:{port}"}).status == 421
            assert get(port, "/", {"Host": f"localhost:{port}"}).status == 200
        finally:
            server.shutdown()


def test_another_address_is_refused_without_a_token(store: Store) -> None:
    with pytest.raises(ValueError, match="needs an access token"):
        DashboardServer(Pages(store), "0.0.0.0", 0, None)


def test_on_another_address_every_request_needs_the_token(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cspgraph.dashboard")
    with running(serve(store, "0.0.0.0", 0, TOKEN)) as server:
        try:
            port = port_of(server)
            assert server.url == f"http://0.0.0.0:{port}/"
            refused = get(port, "/")
            assert refused.status == 401
            assert refused.getheader("WWW-Authenticate", "").startswith("Bearer")
            assert get(port, "/customers", {"Authorization": "Bearer nope"}).status == 401
            assert get(port, "/customers", {"Authorization": f"Bearer {TOKEN}x"}).status == 401
            assert get(port, "/customers", {"Authorization": f"Bearer {TOKEN}"}).status == 200
            assert get(port, "/customers?token=wrong").status == 401
            assert get(port, "/", {"Cookie": "cspgraph_dashboard=wrong"}).status == 401
            # A first visit with ?token= keeps it in a cookie and drops it from the URL.
            first = get(port, f"/customers?q=alpha&token={TOKEN}")
            assert first.status == 303
            assert first.getheader("Location") == "/customers?q=alpha"
            cookie = first.getheader("Set-Cookie", "")
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert get(port, "/customers?q=alpha", {"Cookie": cookie.split(";")[0]}).status == 200
        finally:
            server.shutdown()
    logged = caplog.text
    assert "/customers" in logged  # the requests are logged …
    assert TOKEN not in logged  # … without the token


def test_a_given_token_is_required_on_loopback_too(store: Store) -> None:
    with running(serve(store, "127.0.0.1", 0, TOKEN)) as server:
        try:
            assert get(port_of(server), "/").status == 401
            assert get(port_of(server), "/", {"Authorization": f"Bearer {TOKEN}"}).status == 200
        finally:
            server.shutdown()


def test_the_dashboard_only_reads(store: Store, tmp_path: Path) -> None:
    def fingerprint() -> str:
        digest = hashlib.sha256()
        for path in sorted(tmp_path.glob("fleet.db*")):
            digest.update(path.name.encode() + path.read_bytes())
        return digest.hexdigest()

    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    before = fingerprint()
    with running(serve(store)) as server:
        try:
            port = port_of(server)
            for path in ("/", "/customers", "/customers?sort=users", "/customers/x"):
                get(port, path)
            for method in ("POST", "PUT", "DELETE"):
                assert get(port, "/", method=method).status == 501
        finally:
            server.shutdown()
    assert fingerprint() == before
