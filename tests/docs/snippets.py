"""The fenced code blocks of README.md and docs/*.md, for the tests that run them as printed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.M | re.S)
# "<!-- not run: why -->" on the line before a block: it cannot run here as printed (it needs
# Microsoft's cloud, a person at a browser, …), and the reason says so.
_NOT_RUN = re.compile(r"<!--\s*not run:\s*(.+?)\s*-->\s*$")


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int
    lang: str
    text: str
    not_run: str | None  # the reason given, when the block is marked not to run

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def test_module(self) -> str | None:
        """``test_x.py`` when the block is a pytest module (its first line is ``# test_x.py``)."""
        first = self.text.split("\n", 1)[0].strip()
        found = re.fullmatch(r"#\s*(test_\w+\.py)", first)
        return found.group(1) if found else None


def snippets(paths: list[Path] = DOCS) -> list[Snippet]:
    found: list[Snippet] = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            reason = _NOT_RUN.search(before)
            found.append(
                Snippet(
                    path, line, match.group(1), match.group(2), reason.group(1) if reason else None
                )
            )
    return found


def pytest_modules(path: Path) -> dict[str, str]:
    """The pytest modules a page prints, by file name."""
    return {s.test_module: s.text for s in snippets([path]) if s.test_module}
