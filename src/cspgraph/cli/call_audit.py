"""The audit trail of `cspgraph call`: one line for every write it makes in a customer tenant.

A POST, PATCH, PUT or DELETE that reached (or may have reached) Microsoft Graph in a customer's
tenant is recorded, whatever its outcome: when, who (the partner's app, by client id and partner
tenant, or the signed-in agent), the customer tenant, the method and path, the HTTP status (null
when no answer came) and the request id. The line goes to the log (logger ``cspgraph.audit``,
so ``--log-file`` keeps it) and is appended, as one JSON object, to the audit file:
``$CSPGRAPH_AUDIT_FILE``, else ``$XDG_STATE_HOME/cspgraph/audit.jsonl`` (by default
``~/.local/state/cspgraph/audit.jsonl``), created 0600 in a 0700 directory. Reads are not
recorded. The request body is never recorded (it may hold a password: ``passwordProfile``).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from cspgraph.http.redaction import redact

log = logging.getLogger("cspgraph.audit")

WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass(frozen=True)
class AuditEntry:
    at: str  # UTC, ISO 8601
    who: str  # "app 6731de76-… (partner partner.com)" or "agent agent@partner.com"
    via: str  # "app" or "agent"
    partner_tenant: str
    client_id: str
    region: str
    tenant: str  # the customer tenant's id
    customer: str  # as the command line named it
    method: str
    path: str
    status: int | None  # None: no answer came (the network failed): the write may have happened
    outcome: str  # "ok", or the error class
    request_id: str | None

    def line(self) -> str:
        status = "no answer" if self.status is None else str(self.status)
        return (
            f"audit: {self.who} {self.method} {self.path} in tenant {self.tenant} "
            f"({self.customer}): {status} {self.outcome}"
            + (f" request-id={self.request_id}" if self.request_id else "")
        )


def audit_file(env: Mapping[str, str] | None = None) -> Path:
    """Where the audit lines are appended."""
    env = os.environ if env is None else env
    if env.get("CSPGRAPH_AUDIT_FILE"):
        return Path(env["CSPGRAPH_AUDIT_FILE"]).expanduser()
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "cspgraph" / "audit.jsonl"


def path_of(url_or_path: str) -> str:
    """The path and query of a request, without scheme and host (a nextLink is absolute)."""
    parts = urlsplit(url_or_path)
    if parts.scheme:
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return url_or_path


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(entry: AuditEntry, path: Path | None = None) -> Path:
    """Log ``entry`` and append it to the audit file; returns the file."""
    target = audit_file() if path is None else path
    log.info("%s", entry.line())
    append_private(target, redact(json.dumps(asdict(entry), ensure_ascii=False)) + "\n")
    return target


def append_private(path: Path, text: str) -> None:
    """Append ``text`` to ``path``, created 0600 (its directory 0700); an existing file that
    others can read is narrowed first. Never through a symbolic link."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
