"""Collections: query options, matching, paging and the page body Graph sends.

Paging is stable under concurrent changes: a ``$skiptoken`` names the last object served, not an
offset, so an object added or deleted while a client pages never shifts what comes next. Lists
in the default order are ordered by id and resume just after the last id (even if that object is
gone since); lists with ``$orderby`` resume after the last object's position, or at the count
served so far if it was deleted.

For speed, the matching ids of a query are cached per tenant and the tenant's change sequence:
the first page of a listing pays for filtering and sorting once, every further page is a bisect
and a slice.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from csp_emulator import wellknown
from csp_emulator.graph import odata
from csp_emulator.graph.directory_objects import typed
from csp_emulator.graph.errors import GraphError, bad_request
from csp_emulator.graph.odata_schema import (
    INTUNE_RESOURCES,
    PARTNER_ADMIN_RESOURCES,
    ODataError,
    unknown_property,
)
from csp_emulator.graph.request import Call, GraphResponse
from csp_emulator.graph.state import Matches

Lookup = Callable[[str], dict[str, Any] | None]
Render = Callable[[dict[str, Any], list[str] | None], dict[str, Any]]

_CACHE_MAX = 512
_PROJECTIONS_MAX = 200_000
# Query option values keep these readable in links; everything else is percent-encoded.
_LINK_SAFE = "'(),:@$"


@dataclass(frozen=True)
class ListOptions:
    select: list[str] | None
    filter: str | None
    orderby: str | None
    search: str | None
    top: int | None
    skip: int
    count: bool  # $count=true that will be honoured (ConsistencyLevel: eventual was sent)
    advanced: bool
    skiptoken: str | None
    expand: str | None


def read_options(
    call: Call,
    resource: str,
    *,
    expandable: frozenset[str] = frozenset(),
    counting: bool = False,
) -> ListOptions:
    """The request's query options for a list of ``resource``, checked as Graph checks them.

    ``counting``: the request is ``/{collection}/$count``, which makes the query advanced.
    """
    request = call.request
    q = request.query
    intune = resource in INTUNE_RESOURCES
    # GDAP's service has none of the directory's advanced-query rules (no ConsistencyLevel).
    plain = intune or resource in PARTNER_ADMIN_RESOURCES
    search = q.get("$search")
    try:
        if search is not None and not request.eventual and not intune:
            raise odata.search_requires_eventual()
        # Without the header $count=true is silently ignored (wire-facts §2.4).
        count = request.count_requested and (request.eventual or plain)
        advanced = request.eventual and (counting or request.count_requested or search is not None)
        advanced = advanced or resource in PARTNER_ADMIN_RESOURCES
        select = odata.parse_select(q.get("$select"), resource)
        filter_text = q.get("$filter")
        if filter_text is not None:
            # Compiled here too so a bad filter fails on every page, cached or not.
            odata.compile_filter(filter_text, resource=resource, advanced=advanced)
        orderby = q.get("$orderby")
        if orderby is not None:
            odata.compile_orderby(
                orderby, resource=resource, advanced=advanced, has_filter=filter_text is not None
            )
        if search is not None:
            odata.compile_search(search, resource=resource)
        top = odata.check_top(q["$top"], resource) if "$top" in q else None
    except ODataError as exc:
        raise GraphError.from_odata(exc) from None
    skip = 0
    if "$skip" in q:
        if not intune:
            raise bad_request("'$skip' is not supported by the service.")
        if not q["$skip"].isdigit():
            raise bad_request(f"Invalid value '{q['$skip']}' for $skip query option.", "BadRequest")
        skip = int(q["$skip"])
    expand = q.get("$expand")
    if expand is not None:
        if advanced:
            # Graph: $expand is not supported together with advanced queries (message guessed).
            raise bad_request(
                "$expand is not supported with advanced queries (ConsistencyLevel: eventual).",
                "Request_UnsupportedQuery",
            )
        name = expand.split("(", 1)[0].strip()
        if name not in expandable:
            raise GraphError.from_odata(unknown_property(resource, name))
        expand = name
    return ListOptions(
        select=select,
        filter=q.get("$filter"),
        orderby=q.get("$orderby"),
        search=search,
        top=top,
        skip=skip,
        count=count,
        advanced=advanced,
        skiptoken=q.get("$skiptoken"),
        expand=expand,
    )


# -- matching -------------------------------------------------------------------------------------


def cached(call: Call, key: tuple[Any, ...], build: Callable[[], Matches]) -> Matches:
    """``build()``, memoized per tenant change sequence (any change in the tenant invalidates)."""
    cache = call.ctx.state.graph.matches
    full_key = (call.tenant.id, call.tenant.seq, *key)
    found = cache.get(full_key)
    if found is None:
        found = build()
        cache[full_key] = found
        if len(cache) > _CACHE_MAX:
            cache.popitem(last=False)
    else:
        cache.move_to_end(full_key)
    return found


def sorted_ids(call: Call, source: str, ids: Callable[[], Sequence[str]]) -> Matches:
    """All ids of one collection (``source`` names it for the cache), ordered by id."""
    return cached(call, ("ids", source), lambda: Matches(sorted(ids()), by_id=True))


def match(
    call: Call,
    source: str,
    base: Matches,
    lookup: Lookup,
    resource: str,
    options: ListOptions,
    *,
    use_cache: bool = True,
) -> Matches:
    """The ids of ``base`` that ``options`` select, in the order they are served.

    ``source`` names the collection for the cache; ``use_cache=False`` for collections the
    tenant's change sequence does not cover.
    """
    if options.filter is None and options.search is None and options.orderby is None:
        return base

    def build() -> Matches:
        try:
            objects = [o for o in map(lookup, base.ids) if o is not None]
            if options.filter is not None:
                predicate = odata.compile_filter(
                    options.filter, resource=resource, advanced=options.advanced
                )
                objects = [o for o in objects if predicate(o)]
            if options.search is not None:
                found = odata.compile_search(options.search, resource=resource)
                objects = [o for o in objects if found(o)]
            if options.orderby is not None:
                order = odata.compile_orderby(
                    options.orderby,
                    resource=resource,
                    advanced=options.advanced,
                    has_filter=options.filter is not None,
                )
                objects = order(objects)
        except ODataError as exc:
            raise GraphError.from_odata(exc) from None
        return Matches([o["id"] for o in objects], by_id=options.orderby is None)

    if not use_cache:
        return build()
    key = ("match", source, options.filter, options.search, options.orderby, options.advanced)
    return cached(call, key, build)


# -- skip tokens ----------------------------------------------------------------------------------


def encode_token(state: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(state)).rstrip(b"=").decode()


def decode_token(token: str) -> Any:
    """The state inside a token this module made; ValueError for anything else."""
    try:
        return orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        raise ValueError("not a token of this emulator") from None


def _intune_token(obj: dict[str, Any]) -> str:
    # Intune's own skiptoken shape (wire-facts §2.4), readable once percent-decoded.
    name = str(obj.get("deviceName") or obj.get("displayName") or "").replace("'", "''")
    return f"LastDeviceName='{name}',LastDeviceId='{obj['id']}'"


def _resume(matches: Matches, token: str | None) -> int:
    if token is None:
        return 0
    if token.startswith("LastDeviceName="):
        marker = ",LastDeviceId='"
        at = token.rfind(marker)
        if at < 0 or not token.endswith("'"):
            raise bad_request("The skip token is not valid.", "BadRequest")
        return matches.resume_at(token[at + len(marker) : -1], 0)
    try:
        state = decode_token(token)
        last_id, served = str(state[0]), int(state[1])
    except (ValueError, TypeError, IndexError, KeyError):
        # Message guessed: Graph only says the token is not one it issued.
        raise bad_request("The skip token is not valid.") from None
    return matches.resume_at(last_id, served)


# -- links and contexts ---------------------------------------------------------------------------


def context_url(call: Call, fragment: str) -> str:
    """``@odata.context``: Graph's real metadata URL (not the emulator's origin), per §2.3."""
    host = wellknown.CLOUD_GRAPH_HOSTS.get(call.tenant.cloud, "graph.microsoft.com")
    return f"https://{host}/{call.request.version}/$metadata#{fragment}"


def collection_fragment(name: str, select: list[str] | None) -> str:
    return f"{name}({','.join(select)})" if select else name


def link(call: Call, token_name: str, token: str, *, keep_options: bool = True) -> str:
    """An absolute link on the emulator's Graph origin, for the client to follow verbatim."""
    request = call.request
    items = [
        (k, v)
        for k, v in (request.query_items if keep_options else [])
        if k.lower() not in ("$skiptoken", "$deltatoken", "$skip")
    ]
    query = "&".join(f"{quote(k, safe='$')}={quote(v, safe=_LINK_SAFE)}" for k, v in items)
    query += ("&" if query else "") + f"{token_name}={quote(token, safe='')}"
    return f"{call.ctx.endpoints.graph}/{request.version}/{request.raw_path}?{query}"


# -- the page -------------------------------------------------------------------------------------


def page(
    call: Call,
    *,
    matches: Matches,
    lookup: Lookup,
    options: ListOptions,
    render: Render,
    context: str,
    intune_tokens: bool = False,
    always_count: bool = False,
) -> GraphResponse:
    """One page of a collection, with ``@odata.context``, ``@odata.count`` on the first page only,
    and ``@odata.nextLink`` while more remain."""
    size = options.top or call.world.settings.page_size
    first = options.skiptoken is None
    start = _resume(matches, options.skiptoken) if not first else options.skip
    end = start + size
    ids = matches.ids[start:end]
    items: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    for object_id in ids:
        obj = lookup(object_id)
        if obj is not None:
            items.append(render(obj, options.select))
            last = obj
    body: dict[str, Any] = {"@odata.context": context_url(call, context)}
    if first and (options.count or always_count):
        body["@odata.count"] = len(matches.ids)
    if end < len(matches.ids) and last is not None:
        token = (
            _intune_token(last)
            if intune_tokens and matches.by_id
            else encode_token([last["id"], end])
        )
        body["@odata.nextLink"] = link(call, "$skiptoken", token)
    body["value"] = items
    return GraphResponse(body=body)


def projector(call: Call, resource: str) -> Render:
    """Objects as Graph emits them. Projections of stored objects are memoized per object
    version (its ``_seq``, bumped by every change through the Tenant's methods) and $select:
    paging a large tenant again — the benchmarks' steady state — then costs a dict lookup per
    object. The dicts returned are shared: serialize them, never change them."""
    cache = call.ctx.state.graph.projections
    tenant_id = call.tenant.id

    def render(obj: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
        version = obj.get("_seq")
        if version is None:  # built per request (organization, domains, ...): nothing to reuse
            return odata.project(obj, select, resource)
        key = (tenant_id, resource, obj["id"], version, tuple(select) if select else None)
        found = cache.get(key)
        if found is None:
            if len(cache) >= _PROJECTIONS_MAX:
                cache.clear()  # a crude bound; the next pages refill what is still in use
            found = cache[key] = odata.project(obj, select, resource)
        return found

    return render


def typed_projector(call: Call) -> Render:
    """For mixed collections (members, memberOf): each object projected as its own type and
    tagged with ``@odata.type``."""
    tenant = call.tenant

    def render(obj: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
        return typed(tenant, obj, select)

    return render
