"""A Rich console for text that customers wrote: no markup, no emoji codes, no control characters.

Rich reads ``[link=https://…]`` and ``[bold]`` in any string it prints, and ``:smile:``; a company
named ``[link=https://evil.example]Contoso[/link]`` would print as a link. This console parses
neither (its callers style with :class:`~rich.text.Text` and ``style=``), shows the control
characters of every string it renders as escapes (:func:`~cspgraph.fleet.terminal_text.printable`),
and as a last line checks every segment it writes, so a :class:`~rich.text.Text` built elsewhere
from a customer's string cannot slip an escape sequence through either. Rich's own styling and
cursor control are segments of their own (styles, control codes), never text, and pass as they are.

It also never cuts a table's cell: a word longer than its column (a domain, a tenant id, a GDAP
relationship's name on an 80-column terminal) is folded onto the next lines instead of ending in
"…", Rich's default. Text with spaces wraps either way; only those long words differed, and they
are what a reader copies or searches for.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from cspgraph.fleet.terminal_text import printable


class SafeConsole(Console):
    """:class:`rich.console.Console` that never interprets the text it is given."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("highlight", False)
        super().__init__(markup=False, emoji=False, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        # Before layout, so a cell is measured as it will be shown.
        kwargs["markup"] = False
        kwargs["emoji"] = False
        return super().render_str(printable(text, lines=True), **kwargs)

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        if isinstance(renderable, Table):  # nested tables come through here too
            for column in renderable.columns:
                if column.overflow == "ellipsis":
                    column.overflow = "fold"
        for segment in super().render(renderable, options):
            if segment.control is None and segment.text:
                shown = printable(segment.text, lines=True)
                if shown is not segment.text and shown != segment.text:
                    segment = Segment(shown, segment.style, segment.control)
            yield segment


def safe_text(value: object, style: str = "") -> Text:
    """A customer's string as a Rich :class:`~rich.text.Text` cell: control characters shown as
    escapes (measured as shown), never read as markup."""
    return Text(printable(str(value)), style)
