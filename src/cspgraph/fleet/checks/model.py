"""What a check is and what it finds.

A :class:`Check` is declarative: an id, a title, a severity, why it matters, how to fix it, and a
function over :class:`~cspgraph.fleet.checks.facts.Facts` (the store, read once) that yields a
:class:`Finding` for each customer (or for the fleet) where it holds, with the objects it found,
or an :class:`Unknown` where the store cannot tell (never a silent "nothing found").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cspgraph.fleet.checks.facts import Facts


class Severity(IntEnum):
    """How soon somebody should act. Ordered: ``HIGH > MEDIUM``."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in sorted(cls, reverse=True))
            raise ValueError(f"unknown severity {text!r}; expected one of {names}") from None


@dataclass(frozen=True, slots=True)
class FoundObject:
    """One object a check found: a user, a device, a licence, a region's app."""

    id: str
    name: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Finding:
    check_id: str
    tenant_id: str | None  # None: about the fleet (a region's app, a listing)
    severity: Severity
    title: str
    summary: str  # one line: "6 Global Administrators (Microsoft recommends fewer than 5)"
    fix: str
    objects: tuple[FoundObject, ...] = ()
    subject: str = ""  # what a fleet-wide finding is about (a region), part of its key
    group: str | None = None  # findings sharing a group have one cause (a region-wide failure)

    @property
    def key(self) -> str:
        """Stable across runs while the finding stands: what notifications remember."""
        return f"{self.check_id}:{self.tenant_id or 'fleet'}:{self.subject}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "check": self.check_id,
            "tenant_id": self.tenant_id,
            "severity": self.severity.label,
            "title": self.title,
            "summary": self.summary,
            "fix": self.fix,
            "subject": self.subject or None,
            "group": self.group,
            "objects": [o.as_dict() for o in self.objects],
        }


@dataclass(frozen=True, slots=True)
class Unknown:
    """A check that cannot be answered for a customer, and why (shown, never counted as 0)."""

    check_id: str
    tenant_id: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check_id, "tenant_id": self.tenant_id, "reason": self.reason}


Outcome = Finding | Unknown


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    title: str
    severity: Severity
    why: str
    fix: str
    run: Callable[[Facts, Check], Iterable[Outcome]] = field(repr=False, compare=False)

    def finding(
        self,
        tenant_id: str | None,
        summary: str,
        objects: Iterable[FoundObject] = (),
        *,
        severity: Severity | None = None,
        fix: str | None = None,
        subject: str = "",
        group: str | None = None,
    ) -> Finding:
        return Finding(
            self.id,
            tenant_id,
            self.severity if severity is None else severity,
            self.title,
            summary,
            fix or self.fix,
            tuple(objects),
            subject,
            group,
        )

    def unknown(self, tenant_id: str | None, reason: str) -> Unknown:
        return Unknown(self.id, tenant_id, reason)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity.label,
            "why": self.why,
            "fix": self.fix,
        }


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def day(value: datetime | None) -> str:
    return "never" if value is None else f"{value:%Y-%m-%d}"
