"""When each region's partner-managed app loses its credential.

An app whose secret or certificate ends stops every customer of its region at once (AADSTS7000222
for every tenant), so the sync notes, per region, when the credential in use ends:

* a certificate: from the certificate itself (the configuration's PEM), no call needed;
* a client secret: Graph never returns a secret, only its first three characters (``hint``) and
  its ``endDateTime``, on the app's registration in the partner tenant
  (``GET /applications(appId='…')``). Reading it needs ``Application.Read.All`` (or the app as an
  owner of itself with ``Application.ReadWrite.OwnedBy``) in the partner tenant; without it the
  end is unknown, recorded with that reason, and the check says so instead of guessing. When two
  live secrets share the hint, the earlier end is kept: a warning too early beats one too late.

The secret itself never leaves the token layer's configuration: only its first three characters
are compared, as Graph's ``hint`` holds them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cspgraph.config import ConfigError, PartnerIdentity
from cspgraph.fleet.schema import parse_time
from cspgraph.fleet.store import Store
from cspgraph.http.errors import CspGraphError

if TYPE_CHECKING:
    from cspgraph.graph.client import GraphClient

log = logging.getLogger(__name__)

NO_READ = (
    "the app may not read its own registration in the partner tenant (Application.Read.All); "
    "check the secret's end date in the Entra admin center, or use a certificate"
)


@dataclass(frozen=True, slots=True)
class AppCredential:
    region: str
    client_id: str
    partner_tenant: str
    credential: str  # secret | certificate
    expires_at: datetime | None
    unknown_reason: str | None = None


async def read_credential(identity: PartnerIdentity, graph: GraphClient) -> AppCredential:
    """When the credential ``identity`` signs in with ends, or why that is unknown."""

    def known(kind: str, when: datetime | None, why: str | None = None) -> AppCredential:
        return AppCredential(
            identity.region, identity.client_id, identity.partner_tenant, kind, when, why
        )

    try:
        credential = identity.credential()
    except ConfigError as exc:
        kind = "certificate" if identity.settings.certificate_file else "secret"
        return known(kind, None, f"the credential cannot be read: {exc}")
    if credential.kind == "certificate":
        from cryptography import x509  # certificate credentials only (~15 ms)

        assert credential.certificate_pem is not None
        cert = x509.load_pem_x509_certificate(credential.certificate_pem.encode())
        return known("certificate", cert.not_valid_after_utc)
    hint = str(credential.for_msal())[:3]
    path = f"/applications(appId='{identity.client_id}')"
    try:
        app = await graph.get(
            identity.partner_tenant, path, params={"$select": "id,passwordCredentials"}
        )
    except CspGraphError as exc:
        if exc.status == 403:
            return known("secret", None, NO_READ)
        return known("secret", None, f"the app's registration could not be read: {exc.reason}")
    return known("secret", *_secret_end(hint, app.get("passwordCredentials")))


def _secret_end(hint: str, entries: Any) -> tuple[datetime | None, str | None]:
    now = datetime.now(UTC)
    ends = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("hint") != hint:
            continue
        end = parse_time(entry.get("endDateTime"))
        if end is None or end > now:
            ends.append(end)
    if not ends:
        return None, "no live secret of the app's registration matches the configured one"
    dated = [e for e in ends if e is not None]
    return (min(dated), None) if dated else (None, "the app's secret has no end date")


def save(store: Store, credentials: list[AppCredential]) -> None:
    now = store.driver_time(datetime.now(UTC))
    rows = [
        (
            c.region,
            c.client_id,
            c.partner_tenant,
            c.credential,
            store.driver_time(c.expires_at),
            c.unknown_reason,
            now,
        )
        for c in credentials
    ]
    if not rows:
        return
    with store.write_transaction() as cursor:
        cursor.executemany(
            store.driver_sql(
                "INSERT INTO partner_apps (region, client_id, partner_tenant, credential,"
                " expires_at, unknown_reason, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (region) DO UPDATE SET client_id = excluded.client_id,"
                " partner_tenant = excluded.partner_tenant, credential = excluded.credential,"
                " expires_at = excluded.expires_at, unknown_reason = excluded.unknown_reason,"
                " checked_at = excluded.checked_at"
            ),
            rows,
        )


async def read_credentials(
    identities: dict[str, PartnerIdentity], graph: GraphClient
) -> list[AppCredential]:
    """Every region's credential end, the regions at once; a region that cannot be read is
    logged and left out (a check's data must not cost the sync its outcome)."""

    async def one(identity: PartnerIdentity) -> AppCredential | None:
        try:
            return await read_credential(identity, graph)
        except Exception:
            log.exception("could not read the credential of region %s", identity.region)
            return None

    found = await asyncio.gather(*(one(i) for i in identities.values()))
    return [c for c in found if c is not None]


async def keep(store: Store, credentials: list[AppCredential]) -> None:
    """Save what :func:`read_credentials` found; never fails the sync."""
    try:
        await asyncio.to_thread(save, store, credentials)
    except Exception:
        log.exception("could not record the partner apps' credentials")


async def record(identities: dict[str, PartnerIdentity], graph: GraphClient, store: Store) -> None:
    """Read every region's credential end and keep it in the store; never fails the sync."""
    await keep(store, await read_credentials(identities, graph))
