"""Whether a managed device's operating system version still gets security updates, from the
dated table shipped with cspgraph (``os_support.toml``, with its sources)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib.resources import files
from typing import Any

_NUMBERS = re.compile(r"\d+")
# The systems the table covers, as Intune names them (managedDevice.operatingSystem).
OPERATING_SYSTEMS = ("Windows", "iOS", "iPadOS", "Android")


@dataclass(frozen=True, slots=True)
class Verdict:
    """An out-of-support version: ``everywhere`` when no edition is supported any more (else
    only Home and Pro are out, Enterprise and Education still covered)."""

    version: str  # what it is called: "Windows 10 22H2", "iOS 16"
    ended: date
    everywhere: bool
    note: str | None = None

    @property
    def text(self) -> str:
        edition = "" if self.everywhere else " for Home and Pro editions"
        note = f" ({self.note})" if self.note else ""
        return f"{self.version}: out of support since {self.ended:%Y-%m-%d}{edition}{note}"


@dataclass(frozen=True, slots=True)
class _Windows:
    build: int
    version: str
    home_pro_end: date
    enterprise_end: date
    note: str | None


@dataclass(frozen=True, slots=True)
class Table:
    as_of: date
    windows: dict[int, _Windows]
    apple: tuple[int, tuple[tuple[int, date], ...]]  # (supported majors, (major, released))
    android: tuple[int, tuple[tuple[int, date], ...]]

    def verdict(self, os: str | None, version: str | None, today: date) -> Verdict | None:
        """None when supported, or when the table cannot tell (unknown OS or version)."""
        numbers = [int(n) for n in _NUMBERS.findall(version or "")]
        name = (os or "").lower()
        if not numbers:
            return None
        if name == "windows":
            return self._windows(numbers, today)
        if name in ("ios", "ipados"):
            return _majors("iOS", numbers[0], self.apple, today)
        if name == "android":
            return _majors("Android", numbers[0], self.android, today)
        return None

    def _windows(self, numbers: list[int], today: date) -> Verdict | None:
        # Intune reports "10.0.<build>.<revision>".
        if len(numbers) < 3 or numbers[:2] != [10, 0]:
            return None
        build = numbers[2]
        row = self.windows.get(build)
        if row is None:
            oldest = min(self.windows)
            if build < oldest:  # older than anything still listed: long out of support
                first = self.windows[oldest]
                return Verdict(f"Windows build {build}", first.enterprise_end, True)
            return None  # newer than the table: it cannot tell
        if today > row.enterprise_end:
            return Verdict(row.version, row.enterprise_end, True, row.note)
        if today > row.home_pro_end:
            return Verdict(row.version, row.home_pro_end, False, row.note)
        return None


def _majors(
    label: str, major: int, rule: tuple[int, tuple[tuple[int, date], ...]], today: date
) -> Verdict | None:
    supported_count, releases = rule
    released = [(m, d) for m, d in releases if d <= today]
    if not released:
        return None
    newest = sorted(released, reverse=True)[:supported_count]
    if major >= min(m for m, _ in newest):
        return None
    # Out since the release that pushed it out of the newest ones.
    later = sorted(d for m, d in released if m > major)
    ended = later[supported_count - 1] if len(later) >= supported_count else later[-1]
    return Verdict(f"{label} {major}", ended, True)


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


@cache
def table() -> Table:
    data = tomllib.loads(
        files("cspgraph.fleet.checks").joinpath("os_support.toml").read_text(encoding="utf-8")
    )
    windows = {
        int(w["build"]): _Windows(
            int(w["build"]),
            str(w["version"]),
            _date(w["home_pro_end"]),
            _date(w["enterprise_end"]),
            w.get("note"),
        )
        for w in data["windows"]
    }

    def rule(section: dict[str, Any]) -> tuple[int, tuple[tuple[int, date], ...]]:
        releases = tuple((int(r["major"]), _date(r["released"])) for r in section["releases"])
        return int(section["supported_majors"]), releases

    return Table(_date(data["as_of"]), windows, rule(data["apple"]), rule(data["android"]))
