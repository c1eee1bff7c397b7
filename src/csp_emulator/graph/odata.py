"""OData query options of the emulated Microsoft Graph: $filter, $select, $orderby, $search, $top.

Objects are plain dicts in Graph's JSON shape. Keys that begin with "_" are the emulator's private
bookkeeping: they are never emitted, selectable, sortable, searchable or filterable.

Every function here compiles a query option once and hands back a plain value or closure, so a
list request costs one parse and then one cheap call per object. Errors are `ODataError`, which
the Graph routes render as a Graph error body with the same status, code and message.

The resource model below (entity types, property kinds and spellings, `ODataError`) lives in
odata_schema.py, which both this module and the $filter compiler (odata_filter.py) import.

Resources, and how strict they are
    users, groups, devices have a declared property set (the v1.0 entity types): an unknown
    property in $filter, $select, $orderby or $search is a 400, as Graph answers. The other
    resources (applications, servicePrincipals, directoryRoles, managedDevices,
    deviceCompliancePolicies, appRoleAssignments, domains, organization) accept any identifier and
    compare a property an object lacks as null. Property names match case-insensitively.

$filter (see odata_filter.py for the grammar)
    Supported: eq ne gt ge lt le, and or not, parentheses, in (...), startswith(p,'x'),
    endswith(p,'x'), any/all lambdas (`assignedLicenses/any(x:x/skuId eq <guid>)`,
    `proxyAddresses/any(p:startswith(p,'smtp:'))`, `x/any(c:c eq 'v')`, `x/any()`),
    `collection/$count eq 0`, navigation into complex values (`a/b`), and `<boolean function> eq
    true`. Literals: 'strings' ('' escapes a quote), integers, decimals, true, false, null,
    unquoted GUIDs and DateTimeOffsets (2024-01-01T00:00:00Z). String comparisons, `in`,
    startswith and endswith ignore case, as directory queries do.
    Directory resources without advanced mode (ConsistencyLevel: eventual + $count=true) reject
    ne, not, endswith, /$count and the properties in ADVANCED_ONLY_PROPERTIES. Intune resources
    (managedDevices, deviceCompliancePolicies) never need advanced mode but reject not,
    endswith, lambdas and /$count.
    Not supported: arithmetic (add, sub, ...), contains and other functions (400, as Graph),
    comparing two properties, references to the entity from inside a lambda, type casts,
    date-only literals, `has`, parameter aliases. gt/lt are accepted everywhere, although
    directory properties document only ge/le: a lenient choice.
    Deliberate simplification: "eq null" is accepted without advanced mode on every property.

$select: identifiers, comma-separated, plus "*". Unknown names on users/groups/devices are a 400.
    project() keeps "@odata.type" when the object has one and, as this emulator's contract,
    always keeps "id".
$orderby: "p", "p asc", "p desc", comma-separated. See compile_orderby for the rules.
$search: `"property:value"` clauses joined by AND / OR (adjacent clauses mean AND). displayName
    and description match by word prefix after tokenizing (spaces, symbols, camelCase, digits);
    other properties match by case-insensitive prefix. The caller checks ConsistencyLevel
    (search_requires_eventual() gives Graph's error for that).
$top: see check_top.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from csp_emulator.graph.odata_filter import compile_filter as compile_uncached
from csp_emulator.graph.odata_schema import (
    IDENTIFIER,
    INTUNE_RESOURCES,
    PARTNER_ADMIN_RESOURCES,
    ODataError,
    Predicate,
    is_strict,
    lookup,
    property_kind,
    resolve_property,
    resource_label,
    unknown_property,
)

# Graph's default property set for users (wire-facts §2.4), in the order Graph emits it.
DEFAULT_USER_PROPERTIES: tuple[str, ...] = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)

# Under $select, Graph's directory answers carry only what was selected: `$select=displayName`
# gives objects without `id`. Kept that strict here so a client that forgets `id` fails here and
# not in production; one switch in case a reader of the real service finds otherwise.
SELECT_ALWAYS_INCLUDES_ID = False


# ---------------------------------------------------------------------------------------------
# $filter


def compile_filter(text: str, *, resource: str, advanced: bool) -> Predicate:
    """Compile a $filter expression into a predicate over objects (see odata_filter.py).

    Compiled filters are cached: paging through a list repeats the same $filter on every page.
    """
    return _compile_filter_cached(text, resource, advanced)


@lru_cache(maxsize=512)
def _compile_filter_cached(text: str, resource: str, advanced: bool) -> Predicate:
    return compile_uncached(text, resource=resource, advanced=advanced)


# ---------------------------------------------------------------------------------------------
# $select and projection


def _select_failed(detail: str) -> ODataError:
    return ODataError(400, "BadRequest", f"Parsing OData Select and Expand failed: {detail}")


def parse_select(text: str | None, resource: str) -> list[str] | None:
    """The $select list in canonical spelling, or None when there is no (or an empty) $select."""
    if text is None or not text.strip():
        return None
    selected: list[str] = []
    for raw in text.split(","):
        item = raw.strip()
        if item == "*":
            name = "*"
        elif not IDENTIFIER.match(item):
            raise _select_failed(f"Term '{item}' is not valid in a $select or $expand expression.")
        else:
            resolved = resolve_property(resource, item)
            if resolved is None:
                raise unknown_property(
                    resource, item, prefix="Parsing OData Select and Expand failed: "
                )
            name = resolved
        if name not in selected:
            selected.append(name)
    return selected


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if not key.startswith("_")}


def project(obj: dict[str, Any], select: list[str] | None, resource: str) -> dict[str, Any]:
    """The object as Graph would emit it: a new top-level dict without private keys.

    Selected properties the object lacks come out as null, as Graph emits them. Nested values
    are shared with ``obj``, not copied: serialize the result, don't mutate it.
    """
    if select is None:
        if resource != "users":
            return _public(obj)
        out: dict[str, Any] = {}
        if "@odata.type" in obj:
            out["@odata.type"] = obj["@odata.type"]
        for name in DEFAULT_USER_PROPERTIES:
            out[name] = obj.get(name)
        return out
    if "*" in select:
        return _public(obj)
    out = {}
    # Annotations survive $select (an etag is what a later PATCH needs).
    for annotation in ("@odata.type", "@odata.etag"):
        if annotation in obj:
            out[annotation] = obj[annotation]
    if SELECT_ALWAYS_INCLUDES_ID and "id" in obj:
        out["id"] = obj["id"]
    for name in select:
        if name in obj:
            out[name] = obj[name]
        else:
            key, value = lookup(obj, name)
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# $orderby

# Sortable without advanced mode (wire-facts §2.4: users only displayName / userPrincipalName).
_SORTABLE_PLAIN: dict[str, frozenset[str]] = {
    "users": frozenset({"displayName", "userPrincipalName"}),
    "groups": frozenset({"displayName"}),
    "devices": frozenset({"displayName"}),
    "applications": frozenset({"displayName"}),
    "servicePrincipals": frozenset({"displayName"}),
    "directoryRoles": frozenset(),  # directoryRoles takes no query options
}
# Advanced mode adds createdDateTime (a reading of the advanced-queries docs; unverified).
_SORTABLE_ADVANCED: dict[str, frozenset[str]] = {
    resource: names | ({"createdDateTime"} if names else set())
    for resource, names in _SORTABLE_PLAIN.items()
}
_ORDERBY_ITEM = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s+(asc|desc))?\s*\Z", re.IGNORECASE)


def _sort_key(value: Any) -> tuple[int, Any]:
    # Nulls first, then one rank per type, so mixed values never compare across types.
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value.casefold())
    return (4, str(value))


def compile_orderby(
    text: str, *, resource: str, advanced: bool, has_filter: bool
) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """A function returning a sorted copy of a list, per "$orderby=a asc,b desc".

    Directory resources: $filter with $orderby needs advanced mode ("Sorting not supported for
    current query."); only the properties in _SORTABLE_PLAIN (advanced: _SORTABLE_ADVANCED) sort,
    others give "Unsupported sort property 'p' for 'User'.". Intune and the other lenient
    resources sort on any property, with or without $filter. Sorting is stable and
    case-insensitive, nulls first.
    """
    keys: list[tuple[str, bool]] = []
    offset = 0
    for raw in text.split(","):
        match = _ORDERBY_ITEM.match(raw)
        if match is None:
            raise ODataError(400, "BadRequest", f"Syntax error at position {offset} in '{text}'.")
        offset += len(raw) + 1
        name = resolve_property(resource, match.group(1))
        if name is None:
            raise unknown_property(resource, match.group(1))
        keys.append((name, (match.group(2) or "asc").lower() == "desc"))
    if resource not in INTUNE_RESOURCES and resource in _SORTABLE_PLAIN:
        if has_filter and not advanced:
            raise ODataError(
                400, "Request_UnsupportedQuery", "Sorting not supported for current query."
            )
        sortable = (_SORTABLE_ADVANCED if advanced else _SORTABLE_PLAIN)[resource]
        for name, _ in keys:
            if name not in sortable:
                raise ODataError(
                    400,
                    "Request_UnsupportedQuery",
                    f"Unsupported sort property '{name}' for '{resource_label(resource)}'.",
                )
    strict = is_strict(resource)

    def key_of(name: str) -> Callable[[dict[str, Any]], tuple[int, Any]]:
        if strict:  # canonical names: a plain dict lookup
            return lambda obj: _sort_key(obj.get(name))
        return lambda obj: _sort_key(lookup(obj, name)[1])

    sort_keys = [(key_of(name), descending) for name, descending in reversed(keys)]

    def sort(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ordered = list(items)
        # One stable sort per key, last key first, gives the multi-key order.
        for key, descending in sort_keys:
            ordered.sort(key=key, reverse=descending)
        return ordered

    return sort


# ---------------------------------------------------------------------------------------------
# $search

# Graph tokenizes these two for $search; every other property matches by prefix.
_TOKENIZED = frozenset({"displayName", "description"})
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+|[^\W\d_]+")
_SEARCH_TOKEN = re.compile(r'\s*(?:(")|([A-Za-z0-9]+)|(\S))')


def search_requires_eventual() -> ODataError:
    """Graph's answer to $search without `ConsistencyLevel: eventual` (for the caller to raise)."""
    return ODataError(
        400,
        "Request_UnsupportedQuery",
        "Request with $search query parameter only works through MSGraph with a special request "
        "header: 'ConsistencyLevel: eventual'",
    )


def _words(text: str) -> list[str]:
    return [word.casefold() for word in _WORDS.findall(text)]


def _search_syntax(text: str, position: int) -> ODataError:
    return ODataError(400, "BadRequest", f"Syntax error at position {position} in '{text}'.")


def _search_clause(clause: str, resource: str) -> Predicate:
    name, colon, value = clause.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not value or not IDENTIFIER.match(name):
        raise ODataError(
            400,
            "Request_UnsupportedQuery",
            f"Invalid search clause '{clause}': expected \"property:value\".",
        )
    prop = resolve_property(resource, name)
    if prop is None:
        raise unknown_property(resource, name)
    if property_kind(resource, prop) not in (None, "string", "collection"):
        raise ODataError(
            400,
            "Request_UnsupportedQuery",
            f"Unsupported or invalid query search clause specified for property '{prop}' of "
            f"resource '{resource_label(resource)}'.",
        )

    def values(obj: dict[str, Any]) -> list[str]:
        found = lookup(obj, prop)[1]
        items = found if isinstance(found, list) else [found]
        return [item for item in items if isinstance(item, str)]

    if prop in _TOKENIZED:
        wanted = _words(value)

        def matches_words(obj: dict[str, Any]) -> bool:
            for text in values(obj):
                words = _words(text)
                if wanted and all(any(w.startswith(t) for w in words) for t in wanted):
                    return True
            return False

        return matches_words
    prefix = value.casefold()

    def matches_prefix(obj: dict[str, Any]) -> bool:
        return any(text.casefold().startswith(prefix) for text in values(obj))

    return matches_prefix


def _search_tokens(text: str) -> list[tuple[str, str, int]]:
    """("quoted" | "word", text, position) tuples; syntax errors before any meaning is checked."""
    tokens: list[tuple[str, str, int]] = []
    position = 0
    while (match := _SEARCH_TOKEN.match(text, position)) is not None:
        start = match.start(match.lastindex or 0)
        if match.group(3) is not None:
            raise ODataError(
                400,
                "BadRequest",
                f"Syntax error: character '{match.group(3)}' is not valid at position {start} "
                f"in '{text}'.",
            )
        if match.group(2) is not None:
            tokens.append(("word", match.group(2), start))
            position = match.end()
            continue
        end = text.find('"', match.end())
        if end < 0:
            raise _search_syntax(text, start)
        tokens.append(("quoted", text[match.end() : end], start))
        position = end + 1
    return tokens


def compile_search(text: str, *, resource: str) -> Predicate:
    """Compile `$search="displayName:foo" OR "mail:bar"` into a predicate.

    AND binds tighter than OR; adjacent clauses without an operator are ANDed.
    """
    groups: list[list[Predicate]] = [[]]
    expect_clause = True
    for kind, value, position in _search_tokens(text):
        operator = value.upper() if kind == "word" else ""
        if operator in ("AND", "OR"):
            if expect_clause:
                raise _search_syntax(text, position)
            if operator == "OR":
                groups.append([])
            expect_clause = True
            continue
        # A bare word is valid $search syntax, but directory search needs "property:value".
        groups[-1].append(_search_clause(value, resource))
        expect_clause = False
    if expect_clause:  # empty, or ends in AND / OR
        raise _search_syntax(text, len(text))

    def all_of(preds: list[Predicate]) -> Predicate:
        return preds[0] if len(preds) == 1 else lambda o: all(p(o) for p in preds)

    alternatives = [all_of(group) for group in groups]
    if len(alternatives) == 1:
        return alternatives[0]
    return lambda o: any(p(o) for p in alternatives)


# ---------------------------------------------------------------------------------------------
# $top

# Largest page per resource. Directory lists stop at 999 (wire-facts §2.4); Intune lists page at
# 1000 (a choice: the Intune docs give no limit here).
_MAX_TOP: dict[str, int] = {
    "managedDevices": 1000,
    "deviceCompliancePolicies": 1000,
    # The GDAP lists: "$top supports up to 300 objects" (Graph docs, each list API).
    **dict.fromkeys(PARTNER_ADMIN_RESOURCES, 300),
}
_DEFAULT_MAX_TOP = 999
_INTEGER = re.compile(r"-?\d+\Z")


def check_top(value: str, resource: str) -> int:
    """The $top page size, or ODataError when Graph would refuse it."""
    if resource == "directoryRoles":
        raise ODataError(
            400,
            "Request_UnsupportedQuery",
            "The query specified in the URI is not valid. Query option 'Top' is not allowed.",
        )
    if not _INTEGER.match(value):
        raise ODataError(
            400,
            "BadRequest",
            f"Invalid value '{value}' for $top query option found. The $top query option requires "
            "a non-negative integer value.",
        )
    top = int(value)
    maximum = _MAX_TOP.get(resource, _DEFAULT_MAX_TOP)
    if not 1 <= top <= maximum:
        code = "BadRequest" if resource in INTUNE_RESOURCES else "Request_UnsupportedQuery"
        raise ODataError(
            400,
            code,
            f"Invalid page size specified: '{value}'. Must be between 1 and {maximum} inclusive.",
        )
    return top
