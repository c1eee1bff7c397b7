"""Partner Center's refusals: one exception, raised anywhere in a request, rendered once."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from csp_emulator.http import json_response

MEDIA_TYPE = "application/json; charset=utf-8"

# Unverified: no public source gives the status or code for an already-used domain; the text is a
# field report's (CloudBlue KB 133047). Clients should key on the 409.
DOMAIN_IN_USE_CODE = "409"


class PartnerCenterError(Exception):
    """An answer other than success; raised anywhere in a handler, rendered once."""

    def __init__(
        self,
        status: int,
        code: str,
        description: str,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.headers = headers or {}
        self.body = body or {
            "code": code,
            "description": description[:1024],
            "data": [],
            "source": "PartnerFD",
        }

    def response(self) -> Response:
        return json_response(self.body, self.status, self.headers, media_type=MEDIA_TYPE)


def invalid_input(detail: str) -> PartnerCenterError:
    return PartnerCenterError(400, "800002", f"Invalid request input: {detail}")


def domain_in_use(domain: str) -> PartnerCenterError:
    return PartnerCenterError(
        409,
        DOMAIN_IN_USE_CODE,
        f"The domain specified during customer creation is already used by another tenant: "
        f"{domain}.",
    )
