"""HTTPS listeners on loopback, one origin per emulated host, and the local CA that signs them.

The CA lives in the state directory, so a restarted emulator keeps the trust clients already have.
The same :class:`Emulator` runs in a background thread for tests and the demo (a context manager)
or in the foreground for ``cspgraph emulator serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.types import ASGIApp

from csp_emulator.context import EmulatorContext, Endpoints
from csp_emulator.control import routes as control
from csp_emulator.fault_injection import FaultMiddleware
from csp_emulator.graph import app as graph
from csp_emulator.identity import routes as identity
from csp_emulator.identity.tokens import SigningKeys
from csp_emulator.latency_middleware import LatencyMiddleware
from csp_emulator.partner_center import routes as partner_center
from csp_emulator.private_files import write_private_bytes
from csp_emulator.request_head import CappedHttpToolsProtocol
from csp_emulator.state_lock import StateLock
from csp_emulator.world.model import World
from csp_emulator.world_date import WorldDate

log = logging.getLogger("csp_emulator")
T = TypeVar("T")

HOSTS = ("authority_host", "graph", "partner_center", "control")


class LocalCA:
    """A CA of our own and a server certificate for 127.0.0.1, ::1 and localhost.

    Python 3.13's ssl is strict about CA certificates (critical basicConstraints, keyUsage,
    SKI/AKI), so every extension a public CA would set is set here too (client-traps §3).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca_path = directory / "ca.pem"
        self.cert_path = directory / "server.pem"
        self.key_path = directory / "server-key.pem"
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not (self.ca_path.exists() and self.cert_path.exists() and self.key_path.exists()):
            self._create()

    def _create(self) -> None:
        now = datetime.now(UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cspgraph emulator local CA")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=825))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private_bytes(self.key_path, pem)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this. Without it Nagle's algorithm meets the client's delayed
    # ACK and every keep-alive request waits ~40 ms (measured: 44 ms -> 1.1 ms per request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def build_apps(ctx: EmulatorContext) -> dict[str, ASGIApp]:
    """One ASGI app per emulated host, each behind the fault injector and the latency model;
    every answer (a fault's too) dated by the world clock."""

    def served(app: ASGIApp, host: str) -> ASGIApp:
        return LatencyMiddleware(FaultMiddleware(app, ctx, host), ctx, host)

    apps: dict[str, ASGIApp] = {
        "authority_host": served(identity.build_app(ctx), "login"),
        "graph": served(graph.build_app(ctx), "graph"),
        "partner_center": served(partner_center.build_app(ctx), "partner_center"),
        "control": control.build_app(ctx),
    }
    return {name: WorldDate(app, ctx) for name, app in apps.items()}


class Emulator:
    """The emulated cloud, listening on loopback.

    ``with Emulator(world_factory) as emu:`` runs it in a background thread until the block ends;
    ``emu.run_forever()`` runs it in the foreground.
    """

    def __init__(
        self,
        world_factory: Callable[[], World],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: Path | None = None,
        endpoints_file: Path | None = None,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="cspgraph-emulator-")
            state_dir = Path(self._tmp.name)
        self.state_dir = state_dir.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # First, before any port is bound: one emulator per state directory (state_lock.py).
        self._lock = StateLock(self.state_dir)
        self._lock.acquire()
        self._sockets: dict[str, socket.socket] = {}
        try:
            self.ca = LocalCA(self.state_dir)
            # Ports are bound now, so the endpoints are known before the server starts.
            for i, name in enumerate(HOSTS):
                self._sockets[name] = _bind(host, port + i if port else 0)
        except BaseException:
            for sock in self._sockets.values():
                sock.close()
            self._lock.release()
            raise
        url_host = f"[{host}]" if ":" in host else host
        urls = {
            name: f"https://{url_host}:{sock.getsockname()[1]}"
            for name, sock in self._sockets.items()
        }
        self.endpoints = Endpoints(ca_bundle=str(self.ca.ca_path), **urls)
        self.endpoints_file = (endpoints_file or self.state_dir / "endpoints.json").resolve()
        self.ctx = EmulatorContext(
            world=world_factory(),
            keys=SigningKeys(self.state_dir),
            endpoints=self.endpoints,
            world_factory=world_factory,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[uvicorn.Server] = []
        self._started = threading.Event()

    @property
    def world(self) -> World:
        return self.ctx.world

    # -- running -------------------------------------------------------------------------------
    def _make_servers(self) -> list[tuple[uvicorn.Server, socket.socket]]:
        apps = build_apps(self.ctx)
        out = []
        for name, app in apps.items():
            config = uvicorn.Config(
                app,
                ssl_certfile=str(self.ca.cert_path),
                ssl_keyfile=str(self.ca.key_path),
                log_level="warning",
                access_log=False,
                lifespan="off",
                # httptools with a cap on the request head, as Microsoft's front ends have one.
                http=CappedHttpToolsProtocol,
                timeout_keep_alive=30,
                server_header=False,
                # Date comes from the world clock (world_date.py), not from real time.
                date_header=False,
                # Loopback only, no proxy in front: the X-Forwarded-* middleware is pure cost.
                proxy_headers=False,
            )
            out.append((uvicorn.Server(config), self._sockets[name]))
        return out

    async def _serve(self) -> None:
        pairs = self._make_servers()
        # uvicorn installs signal handlers only on the main thread, so a background thread is fine.
        self._servers = [server for server, _ in pairs]
        tasks = [asyncio.ensure_future(s.serve(sockets=[sock])) for s, sock in pairs]
        while not all(s.started for s in self._servers):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.005)
        self.endpoints.write(self.endpoints_file)
        self._started.set()
        await asyncio.gather(*tasks)

    def start(self) -> Emulator:
        def main() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._serve())
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=main, name="cspgraph-emulator", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout=30):
            raise RuntimeError("the emulator did not start within 30 s")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            for server in self._servers:
                server.should_exit = True
                # Don't wait for idle keep-alive connections: a client in this process that
                # never closes its session (MSAL's) never answers TLS close_notify, and the
                # graceful wait would outlast the join below.
                server.force_exit = True
            self._thread.join(timeout=10)
        self._close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _close(self) -> None:
        """Close the listeners, remove the endpoints file (when it is still this emulator's:
        nothing else is listening there now) and release the state directory."""
        for sock in self._sockets.values():
            sock.close()
        with contextlib.suppress(OSError):
            if self.endpoints_file.read_text(encoding="utf-8").strip() == self.endpoints.to_json():
                self.endpoints_file.unlink()
        self._lock.release()

    def run_forever(self) -> None:
        """Serve in the foreground until interrupted (Ctrl-C)."""
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._serve())
        self._close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- touching the world from another thread -------------------------------------------------
    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop, between requests, and return its result.

        Tests use this to change the world directly without racing a request handler."""
        if self._loop is None:
            return fn()
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed back to the caller's thread
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    def advance(self, seconds: float) -> float:
        return self.call(lambda: self.ctx.world.clock.advance(seconds))

    def summary(self) -> dict[str, Any]:
        world = self.ctx.world
        return {
            "endpoints": self.endpoints.__dict__,
            "tenants": len(world.tenants),
            "partners": [t.default_domain for t in world.partners()],
        }


@contextlib.contextmanager
def running(world_factory: Callable[[], World], **kwargs: Any) -> Iterator[Emulator]:
    with Emulator(world_factory, **kwargs) as emulator:
        yield emulator
