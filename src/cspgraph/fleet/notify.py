"""New findings to a Teams or Slack channel, each once.

:func:`notify` runs the checks, keeps the findings the channel has not been told about yet, posts
them to the channel's incoming webhook in the payload its service documents, and remembers each
batch once its POST succeeded (table ``notifications``, per channel), so a failure half-way
sends the rest next time and nothing twice. A finding that is no longer there is forgotten: if
it comes back, the channel hears of it again.

Payloads:

* **Slack** incoming webhooks take ``{"text": …, "blocks": […]}``; ``text`` is the notification's
  fallback. A section's text is limited to 3,000 characters and a message to 50 blocks.
* **Teams** incoming webhooks (and Teams Workflows' "post to a channel when a webhook request is
  received") take ``{"type": "message", "attachments": [{"contentType":
  "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": <Adaptive Card>}]}``
  (Microsoft's "Send Adaptive Cards using an Incoming Webhook"); the card is version 1.2 with
  TextBlocks only.

Both are posted at most :data:`PER_MESSAGE` findings a message. A webhook URL is a secret (who
has it may post): it is never printed or logged, and the store keeps only its SHA-256 as the
channel's name. It must be HTTPS, except on loopback (a local receiver, tests).
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import select

from cspgraph.fleet.checks import CheckResults, Finding, Severity, run_checks
from cspgraph.fleet.history_schema import notifications
from cspgraph.fleet.store import Store
from cspgraph.http.errors import BadRequestError, NeedsPersonError, TransientError
from cspgraph.http.retry import RetryPolicy
from cspgraph.http.sessions import requests_session

Kind = Literal["teams", "slack"]
PER_MESSAGE = 20  # findings per post: well inside Slack's 50 blocks and Teams' 28 KB
TEXT_LIMIT = 2_900  # Slack's section text limit is 3,000 characters
SLACK_HOSTS = ("hooks.slack.com",)
# Teams' incoming webhooks and the Workflows (Power Automate) URLs that replace them.
TEAMS_HOSTS = (".webhook.office.com", ".logic.azure.com", ".powerautomate.com",
               ".powerplatform.com", "flow.microsoft.com")  # fmt: skip
POST_TIMEOUT = (10.0, 30.0)


@dataclass(frozen=True)
class Channel:
    """A webhook and the service behind it. ``repr`` never shows the URL."""

    url: str = field(repr=False)
    kind: Kind

    @property
    def id(self) -> str:
        return "sha256:" + hashlib.sha256(self.url.encode()).hexdigest()

    @property
    def where(self) -> str:
        """For messages: the service and host, never the secret path."""
        return f"{self.kind} webhook at {urlsplit(self.url).hostname}"


def channel(url: str, kind: str | None = None, *, source: str = "the webhook URL") -> Channel:
    """The channel of a webhook URL; ``kind`` is needed when the host does not tell.
    ``source``: where the URL came from, as errors name it (``--webhook``,
    ``$CSPGRAPH_WEBHOOK``)."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise BadRequestError(f"{source}: expected the https:// URL of a Teams or Slack webhook")
    if parts.scheme == "http" and not _loopback(host):
        raise BadRequestError(
            f"{source}: a webhook URL is a secret and must use https (http only on loopback)"
        )
    found: str | None = kind.lower() if kind else None
    if found is None:
        if host in SLACK_HOSTS:
            found = "slack"
        elif any(host == h.lstrip(".") or host.endswith(h) for h in TEAMS_HOSTS):
            found = "teams"
        else:
            raise BadRequestError(
                f"{source}: cannot tell whether {host} is Teams or Slack; add --kind teams|slack"
            )
    if found not in ("teams", "slack"):
        raise BadRequestError(f"--kind {kind}: expected teams or slack")
    return Channel(url.strip(), "teams" if found == "teams" else "slack")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- what to send ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    sent: list[Finding]
    already_sent: int
    messages: int
    resolved: int  # findings told before that are gone now (forgotten)


def unsent(store: Store, ch: Channel, findings: Sequence[Finding]) -> list[Finding]:
    n = notifications.c
    with store.reading() as conn:
        told = set(conn.execute(select(n.finding_key).where(n.channel == ch.id)).scalars())
    return [f for f in findings if f.key not in told]


def _title(count: int, results: CheckResults) -> str:
    plural = "s" if count != 1 else ""
    return f"cspgraph: {count} new finding{plural} ({results.evaluated_at:%Y-%m-%d %H:%M} UTC)"


def _line(f: Finding, results: CheckResults) -> str:
    return f"[{f.severity.label.upper()}] {results.name_of(f.tenant_id)}: {f.summary}"


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def slack_payload(batch: Sequence[Finding], results: CheckResults, total: int) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _title(total, results)[:150]}}
    ]
    for f in batch:
        text = f"*{_slack_escape(_line(f, results))}*\nNext step: {_slack_escape(f.fix)}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(text)}})
    return {"text": _title(total, results), "blocks": blocks}


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn reads &, < and > as markup (its "escaping text" guidance).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def teams_payload(batch: Sequence[Finding], results: CheckResults, total: int) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": _title(total, results), "weight": "Bolder",
         "size": "Medium", "wrap": True},
    ]  # fmt: skip
    for f in batch:
        color = (
            "Attention" if f.severity >= Severity.HIGH
            else "Warning" if f.severity >= Severity.MEDIUM
            else "Default"
        )  # fmt: skip
        body.append({"type": "TextBlock", "text": _clip(_line(f, results)), "wrap": True,
                     "weight": "Bolder", "color": color, "spacing": "Medium"})  # fmt: skip
        body.append({"type": "TextBlock", "text": _clip(f"Next step: {f.fix}"), "wrap": True,
                     "isSubtle": True, "spacing": "None"})  # fmt: skip
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.2",
        "body": body,
    }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def payloads(
    ch: Channel, findings: Sequence[Finding], results: CheckResults
) -> list[dict[str, Any]]:
    make = teams_payload if ch.kind == "teams" else slack_payload
    batches = [findings[i : i + PER_MESSAGE] for i in range(0, len(findings), PER_MESSAGE)]
    return [make(batch, results, len(findings)) for batch in batches]


# --- sending --------------------------------------------------------------------------------------


def post(
    ch: Channel,
    payload: dict[str, Any],
    *,
    session: Any,
    retry: RetryPolicy,
    rng: random.Random,
) -> None:
    """POST one message; retries 429 and 5xx as the service asks (``Retry-After``); raises a
    classified error (transient, or needs a person for a webhook that is gone or refused)."""
    attempt = 0
    while True:
        try:
            reply = session.post(ch.url, json=payload, timeout=POST_TIMEOUT, allow_redirects=False)
        except OSError as exc:  # requests' errors are OSErrors: connection, TLS, timeout
            problem: Exception = TransientError(f"{ch.where}: {type(exc).__name__}")
            retry_after = None
        else:
            status = reply.status_code
            # Teams' connectors answered throttling with 200 and this text in the body.
            throttled = "HTTP error 429" in reply.text[:200]
            if 200 <= status < 300 and not throttled:
                return
            if status in (429, 500, 502, 503, 504) or throttled:
                problem = TransientError(f"{ch.where} answered {status}", status=status)
                retry_after = reply.headers.get("Retry-After")
            elif status in (401, 403, 404, 410):
                raise NeedsPersonError(
                    f"{ch.where} answered {status}: the webhook was removed or refuses posts; "
                    "create a new one and pass its URL",
                    status=status,
                )
            else:
                raise BadRequestError(
                    f"{ch.where} refused the message ({status}): {reply.text[:200]}", status=status
                )
        if attempt >= retry.max_retries:
            raise problem
        time.sleep(retry.delay(attempt, retry_after, rng))
        attempt += 1


def remember(store: Store, ch: Channel, sent: Sequence[Finding], at: datetime) -> None:
    if not sent:
        return
    rows = [(ch.id, f.key, store.driver_time(at), store.driver_time(at)) for f in sent]
    with store.write_transaction() as cursor:
        cursor.executemany(
            store.driver_sql(
                "INSERT INTO notifications (channel, finding_key, sent_at, last_seen_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (channel, finding_key) DO NOTHING"
            ),
            rows,
        )


def forget_resolved(store: Store, ch: Channel, open_keys: set[str], at: datetime) -> int:
    """Forget what the channel was told about findings that are gone; touch the others."""
    n = notifications.c
    with store.reading() as conn:
        told = set(conn.execute(select(n.finding_key).where(n.channel == ch.id)).scalars())
    resolved = sorted(told - open_keys)
    still = sorted(told & open_keys)
    with store.write_transaction() as cursor:
        if resolved:
            cursor.executemany(
                store.driver_sql("DELETE FROM notifications WHERE channel = ? AND finding_key = ?"),
                [(ch.id, key) for key in resolved],
            )
        if still:
            cursor.executemany(
                store.driver_sql(
                    "UPDATE notifications SET last_seen_at = ?"
                    " WHERE channel = ? AND finding_key = ?"
                ),
                [(store.driver_time(at), ch.id, key) for key in still],
            )
    return len(resolved)


def notify(
    store: Store,
    ch: Channel,
    *,
    min_severity: Severity = Severity.LOW,
    dry_run: bool = False,
    ca_bundle: str | None = None,
    retry: RetryPolicy | None = None,
) -> Outcome:
    """Tell ``ch`` about the findings of ``min_severity`` or worse it has not heard of."""
    results = run_checks(store)
    current = [f for f in results.findings if f.severity >= min_severity]
    new = unsent(store, ch, current)
    outcome = Outcome([], len(current) - len(new), 0, 0)
    if dry_run:
        outcome.sent = new
        return outcome
    outcome.resolved = forget_resolved(store, ch, {f.key for f in current}, results.evaluated_at)
    if not new:
        return outcome
    policy = retry or RetryPolicy(max_retries=3)
    rng = random.Random()
    batches = [new[i : i + PER_MESSAGE] for i in range(0, len(new), PER_MESSAGE)]
    messages = payloads(ch, new, results)
    with requests_session(ca_bundle) as session:
        for batch, message in zip(batches, messages, strict=True):
            post(ch, message, session=session, retry=policy, rng=rng)
            remember(store, ch, batch, datetime.now(UTC))
            outcome.sent.extend(batch)
            outcome.messages += 1
    return outcome
