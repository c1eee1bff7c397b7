"""What the HTML report and the dashboard share: the template environment (Jinja2, every value
escaped unless marked safe), the filters, and the stylesheet.

Templates live in ``cspgraph/fleet/templates``: ``style.css`` and ``parts.html`` (macros: badges,
the needs-action list, the customer rows) are the shared ones; the dashboard adds its pages and
loads these too.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)

from cspgraph.fleet.report import STATUS_LABELS, ago

UNKNOWN = "—"


def number(value: int | float | None) -> str:
    """1,234; unknown (None) as a dash, never as 0."""
    if value is None:
        return UNKNOWN
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def when(value: datetime | None, now: datetime) -> str:
    return ago(value, now)


def day(value: datetime | None) -> str:
    return "never" if value is None else f"{value:%Y-%m-%d}"


def status_label(status: str | None) -> str:
    return STATUS_LABELS.get(status, status or "Never synced")


def status_class(status: str | None) -> str:
    return (status or "never").replace("_", "-")


def environment(*extra: BaseLoader) -> Environment:
    """A template environment over ``extra`` loaders (first) and the fleet's templates."""
    env = Environment(
        loader=ChoiceLoader([*extra, PackageLoader("cspgraph.fleet", "templates")]),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,  # a misspelt name fails the render instead of printing ""
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(number=number, day=day, status_label=status_label, status_class=status_class)
    env.globals.update(when=when, UNKNOWN=UNKNOWN)
    return env


@cache
def stylesheet() -> str:
    return files("cspgraph.fleet").joinpath("templates/style.css").read_text(encoding="utf-8")


def render(env: Environment, name: str, **context: Any) -> str:
    return env.get_template(name).render(**context)
