"""cspgraph.http is the client's lowest floor: the only place HTTP sessions are made (and trust is
decided), and it stands on nothing above it. Both are read from the source (AST), so a new
session made anywhere else, or an import running up from the floor, fails here."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import cspgraph

PACKAGE = Path(cspgraph.__file__).parent
FLOOR = PACKAGE / "http"

# Calls that make an HTTP session (or a connection pool, or a session behind the scenes).
SESSION_MAKERS = {
    "aiohttp.ClientSession",
    "aiohttp.TCPConnector",
    "aiohttp.client.ClientSession",
    "requests.Session",
    "requests.session",
    "requests.sessions.Session",
    *(f"requests.{verb}" for verb in ("request", "get", "post", "put", "patch", "delete", "head")),
    "httpx.Client",
    "httpx.AsyncClient",
    *(f"httpx.{verb}" for verb in ("request", "get", "post", "put", "patch", "delete", "head")),
    "urllib.request.urlopen",
    "http.client.HTTPConnection",
    "http.client.HTTPSConnection",
}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name → the dotted name it was imported as, from every import in the module."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".", 1)[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def session_makers(source: str) -> list[str]:
    """``line: name`` for every call (or subclass) in ``source`` that makes an HTTP session."""
    tree = ast.parse(source)
    aliases = _aliases(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Call):
            targets = [node.func]
        elif isinstance(node, ast.ClassDef):
            targets = list(node.bases)
        for target in targets:
            name = _dotted(target, aliases)
            if name in SESSION_MAKERS:
                found.append((node.lineno, name))
    return [f"{line}: {name}" for line, name in sorted(found)]


def modules(root: Path) -> Iterator[Path]:
    yield from sorted(root.rglob("*.py"))


def test_no_module_outside_cspgraph_http_makes_an_http_session() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): found
        for path in modules(PACKAGE)
        if FLOOR not in path.parents and (found := session_makers(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_cspgraph_http_does_make_the_sessions() -> None:
    # The scan looks where sessions really are made: without this, a scan that finds nothing
    # anywhere would pass the test above too.
    made = session_makers((FLOOR / "sessions.py").read_text(encoding="utf-8"))
    assert {line.split(": ")[1] for line in made} == {
        "aiohttp.TCPConnector",
        "aiohttp.ClientSession",
        "requests.Session",
    }


def test_the_scan_sees_sessions_however_they_are_imported() -> None:
    source = """
import aiohttp
import requests as r
from httpx import AsyncClient as Client
from requests import Session

def f():
    from aiohttp import ClientSession
    ClientSession()
    aiohttp.ClientSession(connector=aiohttp.TCPConnector())
    r.get("https://example.com")
    Client()

class Mine(Session):
    pass

requests_like = object()
requests_like.get("not a session")
"""
    assert session_makers(source) == [
        "9: aiohttp.ClientSession",
        "10: aiohttp.ClientSession",
        "10: aiohttp.TCPConnector",
        "11: requests.get",
        "12: httpx.AsyncClient",
        "14: requests.Session",
    ]


def test_the_floor_imports_nothing_above_it() -> None:
    allowed = ("cspgraph.http", "cspgraph.lazy_exports")
    upward = {}
    for path in modules(FLOOR):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = [
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        ] + [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        ]
        above = [
            name
            for name in imported
            if name.startswith("cspgraph") and not name.startswith(allowed)
        ]
        if above:
            upward[path.name] = above
    assert upward == {}
