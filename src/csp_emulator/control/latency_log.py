"""``/_emulator/latency/log``: the waits the latency model applied (csp_emulator/latency.py).

``GET`` pages through them oldest first: ``?after=SEQ`` (0 for the start) and ``?limit=N`` (at
most 100,000 a page); the answer's ``next_after`` is the ``after`` of the next page, and ``more``
says whether there is one. ``DELETE`` forgets them (the draws go on where they were).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from csp_emulator.context import EmulatorContext
from csp_emulator.control.handlers import ControlError
from csp_emulator.http import json_response

MAX_PAGE = 100_000


def _whole(request: Request, name: str, default: int, highest: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not 0 <= int(text) <= highest:
        raise ControlError(400, f"{name} must be a whole number from 0 to {highest}, not {text!r}")
    return int(text)


async def read_log(ctx: EmulatorContext, request: Request) -> Response:
    state = ctx.state.latency
    after = _whole(request, "after", 0, 2**62)
    limit = _whole(request, "limit", 10_000, MAX_PAGE)
    records = state.after(after, limit)
    last = records[-1].seq if records else max(after, 0)
    return json_response(
        {
            "value": [r.as_json() for r in records],
            "next_after": last,
            "more": bool(state.records) and state.records[-1].seq > last,
        }
    )


async def clear_log(ctx: EmulatorContext, request: Request) -> Response:
    ctx.state.latency.clear()
    return Response(status_code=204)
