"""Graph URLs from call arguments: OData query options, percent-encoding, advanced queries.

Pure functions, no I/O: :class:`~cspgraph.graph.client.GraphClient` builds every request URL with
them. Directory "advanced queries" ($search, $count, ``ne``/``not``/``endswith`` filters, $filter
with $orderby) only work with ``ConsistencyLevel: eventual`` and, for the filters, ``$count=true``
(wire-facts §2.4); :func:`needs_eventual` and :func:`needs_count` say when.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote

from cspgraph.graph.scope import Operation

# Characters left as they are inside an OData query value; everything else is percent-encoded
# (a space as %20: Graph does not read "+" as a space in every option).
_QUERY_SAFE = "$,'()*:@/!"
_PATH_SAFE = "/$'()=,:@!*;+%"
_ADVANCED_FILTER = re.compile(r"\b(?:ne|not)\b|\bendswith\s*\(|/\$count\b", re.IGNORECASE)
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")


def query_params(
    *,
    select: Sequence[str] | None = None,
    filter: str | None = None,
    top: int | None = None,
    count: bool = False,
    search: str | None = None,
    orderby: str | Sequence[str] | None = None,
    expand: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if select:
        params["$select"] = ",".join(select)
    if filter:
        params["$filter"] = filter
    if top is not None:
        params["$top"] = top
    if count:
        params["$count"] = True
    if search:
        # Graph wants the search clause in double quotes: $search="displayName:room".
        params["$search"] = search if search.startswith('"') else f'"{search}"'
    if orderby:
        params["$orderby"] = orderby if isinstance(orderby, str) else ",".join(orderby)
    if expand:
        params["$expand"] = expand
    if extra:
        params.update(extra)
    return params


def query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def encode_query(query: Mapping[str, str]) -> str:
    return "&".join(
        f"{quote(name, safe='$')}={quote(text, safe=_QUERY_SAFE)}" for name, text in query.items()
    )


def quote_path(path: str) -> str:
    """Percent-encode what cannot stand in a path (a guest UPN's '#EXT#'), keep what can.

    '%' stays as it is, so a caller that already encoded its path is not encoded twice.
    """
    return quote(path, safe=_PATH_SAFE)


def query_of(url: str) -> dict[str, str]:
    _, _, query = url.partition("?")
    return dict(parse_qsl(query, keep_blank_values=True)) if query else {}


def needs_eventual(operation: Operation, query: Mapping[str, str]) -> bool:
    """Directory advanced queries need ``ConsistencyLevel: eventual`` (wire-facts §2.4)."""
    if "$count" in operation.shape or "$search" in query:
        return True
    if str(query.get("$count", "")).lower() == "true":
        return True
    return needs_count(query)


def needs_count(query: Mapping[str, str]) -> bool:
    """Advanced filters (and $filter with $orderby) also need ``$count=true``."""
    filter_text = query.get("$filter")
    if not filter_text:
        return False
    if "$orderby" in query:
        return True
    return bool(_ADVANCED_FILTER.search(_STRING_LITERAL.sub("''", str(filter_text))))


def top_of(query: Mapping[str, str]) -> int | None:
    """``$top`` as a number, or None when absent or not a number."""
    value = query.get("$top")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def is_absolute(path: str) -> bool:
    return path.startswith(("https://", "http://"))
