"""How big a delta page is: Graph's caps, the client's preference, and shrinking groups pages.

Sources (docs/emulator.md, "Delta pages"):

* a Microsoft answer on ``odata.maxpagesize`` for delta (Microsoft Q&A, 2025): at most 200
  objects such as users, at most 500 directory link objects such as group members; the same
  numbers when no preference is sent; a larger preference is capped; near an internal time limit
  a page may hold fewer, and requests may differ in how many they return;
* microsoft-graph-explorer-v4 issue 1157: users delta pages of a fixed 200; groups delta pages
  starting near 200 and shrinking page after page down to 1 entry, staying there for "quite a
  few" pages, then back near 200;
* Graph's delta-query docs for groups (pull request 2855 of microsoft-graph-docs) and
  msgraph-sdk-dotnet issue 574: a group with many members comes back on several pages, each
  time with its properties and the next part of its ``members@delta`` (9,993 members: 20 times).

What is *unverified* (the emulator's choice): whether the 500 link objects are counted per page
(as here) or per group; the shrinking schedule's numbers (each groups page's cap half the last
one's, four pages of one group at the bottom; :class:`~csp_emulator.world.model.DeltaPaging`);
that a split group's members come in id order.

The shrinking schedule and a split group's position travel in the skip token, so a round pages
the same way however fast or slow its client is.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

from csp_emulator.world.model import DeltaPaging

# Skip-token keys: the shrinking groups cap and pages spent at one group; the group a page ended
# inside and the last member id it carried.
SHRUNK_CAP, FLOOR_PAGES = "g", "k"
PARTIAL_GROUP, LAST_MEMBER = "pg", "pm"
PAGING_KEYS = (SHRUNK_CAP, FLOOR_PAGES, PARTIAL_GROUP, LAST_MEMBER)


def preferred_size(prefer: str) -> int | None:
    """``odata.maxpagesize=n`` from a ``Prefer`` header, or None."""
    for part in prefer.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize" and value.strip().isdigit():
            return max(1, int(value))
    return None


def object_limit(paging: DeltaPaging, prefer: str, state: dict[str, Any], *, groups: bool) -> int:
    """How many objects this page may hold: the preference, capped; for groups, also the
    shrinking cap the previous page left in the token."""
    cap = max(1, paging.object_cap)
    wanted = preferred_size(prefer)
    limit = cap if wanted is None else min(wanted, cap)
    shrunk = state.get(SHRUNK_CAP) if groups else None
    if isinstance(shrunk, int) and shrunk >= 1:
        limit = min(limit, shrunk)
    return limit


def shrink_after(paging: DeltaPaging, state: dict[str, Any], limit: int) -> None:
    """Set the next groups page's cap in ``state``: ``limit`` × ``groups_shrink`` down to 1,
    ``groups_floor_pages`` pages of 1, then no shrinking cap (the full cap again)."""
    if paging.groups_shrink >= 1.0:
        state[SHRUNK_CAP] = state[FLOOR_PAGES] = None
        return
    if limit <= 1:
        spent = int(state.get(FLOOR_PAGES) or 0) + 1
        if spent >= paging.groups_floor_pages:
            state[SHRUNK_CAP] = state[FLOOR_PAGES] = None
        else:
            state[SHRUNK_CAP], state[FLOOR_PAGES] = 1, spent
        return
    state[SHRUNK_CAP] = max(1, int(limit * paging.groups_shrink))
    state[FLOOR_PAGES] = 0


def members_part(
    entries: list[dict[str, Any]], after: str | None, room: int
) -> tuple[list[dict[str, Any]], bool]:
    """The ``members@delta`` entries a page carries of one group: those after member id
    ``after`` (the part an earlier page carried), at most ``room``; and whether some are left.

    A group that fits is sent in the order its members were added; a split group in id order,
    so the next page can resume after an id whatever changed in between."""
    if after is None and len(entries) <= room:
        return entries, False
    entries = sorted(entries, key=_member_id)
    if after is not None:
        entries = entries[bisect_right([e["id"] for e in entries], after) :]
    return entries[:room], len(entries) > room


def _member_id(entry: dict[str, Any]) -> str:
    return str(entry["id"])
