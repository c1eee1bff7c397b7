"""Delta queries: ``/users/delta``, ``/groups/delta``, ``/devices/delta`` (also in the SDK forms
``delta()`` and ``microsoft.graph.delta()``).

A round is paged with ``@odata.nextLink`` (``$skiptoken``) and ends with ``@odata.deltaLink``
(``$deltatoken``), even when ``value`` is empty. The first round lists every object; a later
round lists what changed since the round its token came from — objects whose ``_seq`` is newer,
and tombstones ``{"id": …, "@removed": {"reason": "changed" | "deleted"}}``. Group items carry
``members@delta``: members added, and members removed as ``{…, "@removed": {"reason":
"deleted"}}``.

Tokens are opaque to clients and carry the query options ($select, $filter) of the round, so they
must not be re-added. Answers to bad tokens:

* a token older than 7 days (world clock) → 400 ``syncStateNotFound`` "The sync state generation
  is not found. The delta token is expired and data must be synchronized again." (Microsoft's
  announcement of the 7-day lifetime for identity resources: a BadRequest with this code);
* a token this emulator did not issue, or issued for another tenant or resource → 400
  ``Request_BadRequest`` (message guessed).
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

from csp_emulator.graph import odata
from csp_emulator.graph.delta_paging import (
    LAST_MEMBER,
    PAGING_KEYS,
    PARTIAL_GROUP,
    members_part,
    object_limit,
    shrink_after,
)
from csp_emulator.graph.directory_objects import ODATA_TYPES, odata_type
from csp_emulator.graph.errors import GraphError, bad_request
from csp_emulator.graph.listing import (
    cached,
    collection_fragment,
    context_url,
    decode_token,
    encode_token,
    link,
    sorted_ids,
)
from csp_emulator.graph.odata_schema import ODataError
from csp_emulator.graph.request import Call, GraphResponse
from csp_emulator.graph.state import Matches

TOKEN_LIFETIME = 7 * 86400.0
EXPIRED_MESSAGE = (
    "The sync state generation is not found. The delta token is expired and data must be "
    "synchronized again."
)
# The first round of a delta query starts from nothing.
FULL_SYNC = -1


def _expired() -> GraphError:
    return GraphError(400, "syncStateNotFound", EXPIRED_MESSAGE)


def _bad_token() -> GraphError:
    return bad_request("Invalid delta token.")


def _state(call: Call, token: str, resource: str) -> dict[str, Any]:
    try:
        state = decode_token(token)
    except ValueError:
        raise _bad_token() from None
    if (
        not isinstance(state, dict)
        or state.get("t") != call.tenant.id
        or state.get("r") != resource
        or not isinstance(state.get("s"), int)
    ):
        raise _bad_token()
    if call.now - float(state.get("i", 0)) > TOKEN_LIFETIME:
        raise _expired()
    return state


def _options(call: Call, resource: str) -> tuple[list[str] | None, bool, str | None]:
    """($select without "members", whether members@delta is wanted, $filter) of a new query."""
    text = call.request.query.get("$select")
    members = resource == "groups"
    if text is not None and text.strip():
        names = [n.strip() for n in text.split(",") if n.strip()]
        members = resource == "groups" and any(n.lower() == "members" for n in names)
        text = ",".join(n for n in names if n.lower() != "members") or None
    filter_text = call.request.query.get("$filter")
    try:
        select = odata.parse_select(text, resource)
        if filter_text is not None:
            odata.compile_filter(filter_text, resource=resource, advanced=False)
    except ODataError as exc:
        raise GraphError.from_odata(exc) from None
    return select, members, filter_text


def _changed_ids(call: Call, resource: str, since: int, filter_text: str | None) -> Matches:
    tenant = call.tenant
    objects = tenant.objects[resource]

    def build() -> Matches:
        if since == FULL_SYNC:
            ids = sorted_ids(call, resource, lambda: list(objects)).ids
        else:
            changed = {i for i, o in objects.items() if o.get("_seq", 0) > since}
            removed = {i for i, (seq, _) in tenant.tombstones[resource].items() if seq > since}
            ids = sorted(changed | removed)
        if filter_text is not None:
            predicate = odata.compile_filter(filter_text, resource=resource, advanced=False)
            ids = [i for i in ids if i not in objects or predicate(objects[i])]
        return Matches(ids, by_id=True)

    return cached(call, ("delta", resource, since, filter_text), build)


USER_TYPE = ODATA_TYPES["users"]


def _members_delta(call: Call, group: dict[str, Any], since: int) -> list[dict[str, Any]]:
    tenant = call.tenant
    if since == FULL_SYNC:
        # Most members are users: look there first without the general search over every kind
        # (119,000 memberships on the bench fleet; the search was 9 % of the emulator's time).
        users = tenant.objects["users"]
        return [
            {"@odata.type": USER_TYPE if m in users else odata_type(tenant, m), "id": m}
            for m in group.get("_members", [])
        ]
    last_action: dict[str, bool] = {}
    for seq, member_id, added in group.get("_member_log", []):
        if seq > since:
            last_action[member_id] = added
    out = []
    for member_id, added in last_action.items():
        item: dict[str, Any] = {"@odata.type": odata_type(tenant, member_id), "id": member_id}
        if not added:
            item["@removed"] = {"reason": "deleted"}
        out.append(item)
    return out


def delta(call: Call, resource: str) -> GraphResponse:
    q = call.request.query
    tenant = call.tenant
    skiptoken, deltatoken = q.get("$skiptoken"), q.get("$deltatoken")
    if skiptoken is not None:
        # A further page of a round under way.
        state = _state(call, skiptoken, resource)
        first_page = False
    elif deltatoken is not None and deltatoken.strip().lower() == "latest":
        # "Sync from now": no data, only a deltaLink for changes from this moment.
        select, members, filter_text = _options(call, resource)
        state = _new_state(call, resource, tenant.seq, select, members, filter_text)
        return _answer(call, resource, state, [], more=False, first_page=True)
    elif deltatoken is not None:
        # A new round: the changes since the round the token closed.
        previous = _state(call, deltatoken, resource)
        state = {**previous, "s": previous["u"], "u": tenant.seq, "l": None}
        first_page = False
    else:
        select, members, filter_text = _options(call, resource)
        state = _new_state(call, resource, FULL_SYNC, select, members, filter_text)
        state["u"] = tenant.seq
        first_page = True
    since: int = state["s"]
    ids = _changed_ids(call, resource, since, state.get("f")).ids
    start = bisect_right(ids, state["l"]) if state.get("l") else 0
    items, done, partial = _page(call, resource, state, ids, start)
    if done > start:
        state["l"] = ids[done - 1]
    state[PARTIAL_GROUP], state[LAST_MEMBER] = partial or (None, None)
    more = partial is not None or done < len(ids)
    return _answer(call, resource, state, items, more=more, first_page=first_page)


def _page(
    call: Call, resource: str, state: dict[str, Any], ids: list[str], start: int
) -> tuple[list[dict[str, Any]], int, tuple[str, str] | None]:
    """One page of a round from ``ids[start]``: (items, index in ``ids`` after the
    last object served whole, (group, last member id) when the page ends inside a group).

    At most ``limit`` objects (delta_paging: the preference, Graph's cap, a shrinking groups
    cap) and at most ``link_cap`` ``members@delta`` entries; a group whose members do not fit is
    sent with those that do, and the next page starts with it again and the rest."""
    tenant = call.tenant
    paging = call.world.settings.delta
    groups = resource == "groups"
    limit = object_limit(paging, call.request.headers.get("prefer", ""), state, groups=groups)
    position = start
    since: int = state["s"]
    select = state.get("sel")
    members = groups and bool(state.get("m"))
    objects = tenant.objects[resource]
    links_left = paging.link_cap
    items: list[dict[str, Any]] = []
    partial: tuple[str, str] | None = None
    while position < len(ids) and len(items) < limit:
        object_id = ids[position]
        obj = objects.get(object_id)
        if obj is None:
            tombstone = tenant.tombstones[resource].get(object_id)
            reason = tombstone[1] if tombstone else "deleted"
            items.append({"id": object_id, "@removed": {"reason": reason}})
            position += 1
            continue
        item = odata.project(obj, select, resource)
        # Delta items always carry their id, whatever $select says: it is what a client merges on.
        item.setdefault("id", object_id)
        if members:
            changes = _members_delta(call, obj, since)
            after = state.get(LAST_MEMBER) if state.get(PARTIAL_GROUP) == object_id else None
            part, left = members_part(changes, after, links_left)
            if left and not part and items:
                break  # no room left for this group's members: the next page starts with it
            if part:
                item["members@delta"] = part
                links_left -= len(part)
            if left:
                items.append(item)
                partial = (object_id, str(part[-1]["id"]))
                break
        items.append(item)
        position += 1
    if groups and (partial is not None or position < len(ids)):
        shrink_after(paging, state, limit)
    return items, position, partial


def _new_state(
    call: Call,
    resource: str,
    since: int,
    select: list[str] | None,
    members: bool,
    filter_text: str | None,
) -> dict[str, Any]:
    return {
        "t": call.tenant.id,
        "r": resource,
        "s": since,
        "u": call.tenant.seq,
        "l": None,
        "sel": select,
        "m": members,
        "f": filter_text,
        "i": call.now,
    }


def _answer(
    call: Call,
    resource: str,
    state: dict[str, Any],
    items: list[dict[str, Any]],
    *,
    more: bool,
    first_page: bool,
) -> GraphResponse:
    select = state.get("sel") if first_page else None
    body: dict[str, Any] = {
        "@odata.context": context_url(call, collection_fragment(resource, select))
    }
    token_state = {**state, "i": call.now}
    if more:
        body["@odata.nextLink"] = link(
            call, "$skiptoken", encode_token(token_state), keep_options=False
        )
    else:
        closed = {**token_state, "s": state["u"], "l": None}
        for key in PAGING_KEYS:
            closed.pop(key, None)
        body["@odata.deltaLink"] = link(
            call, "$deltatoken", encode_token(closed), keep_options=False
        )
    body["value"] = items
    return GraphResponse(body=body)


def users_delta(call: Call) -> GraphResponse:
    return delta(call, "users")


def groups_delta(call: Call) -> GraphResponse:
    return delta(call, "groups")


def devices_delta(call: Call) -> GraphResponse:
    return delta(call, "devices")
