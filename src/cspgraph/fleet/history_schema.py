"""The store's tables about time: sync runs, what each customer's last sync could see, the
security-relevant state between syncs and what changed in it, the partner apps' credentials and
the notifications sent.

They share :data:`cspgraph.fleet.schema.metadata` with the inventory tables, so opening a store
creates them too; :mod:`cspgraph.fleet.migrations` adds them to a store made before they existed.
Everything here is written by :mod:`cspgraph.fleet.runs` (during a sync),
:mod:`cspgraph.fleet.partner_apps` and :mod:`cspgraph.fleet.notify`, and read by the checks, the
report and the dashboard.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Index, Integer, String, Table

from cspgraph.fleet.schema import UtcDateTime, metadata

# One row per sync run. A run that never finished (killed) keeps outcome "running".
runs = Table(
    "runs",
    metadata,
    Column("run_id", String, primary_key=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("outcome", String, nullable=False),  # running | completed | interrupted | failed
    Column("listed", String),  # "partner_center" (every customer listed) or "named"
    Column("customers", Integer),
    Column("statuses", JSON),  # status -> customers
    Column("requests", Integer),
    Column("throttled", Integer),
    Column("listing_errors", JSON),  # region -> why its customers could not be listed
    Column("wall_time", Float),  # seconds
)

# One row per customer a run synced (or tried to): its outcome and what the store then held.
run_customers = Table(
    "run_customers",
    metadata,
    Column("run_id", String, primary_key=True),
    Column("tenant_id", String, primary_key=True),
    Column("finished_at", UtcDateTime, nullable=False),
    Column("status", String, nullable=False),
    Column("reason", String),
    Column("error_class", String),
    Column("region", String),
    Column("modes", JSON),  # resource -> full | delta | resumed | skipped: why
    Column("received", JSON),  # resource -> objects received
    Column("seconds", Float),
    # The customer as the store held it after this run (users, guests, admins, managed devices,
    # non-compliant, licences): a customer's history over runs. Keys are absent when unknown.
    Column("figures", JSON),
)
Index("ix_run_customers_tenant", run_customers.c.tenant_id, run_customers.c.finished_at)

# One row per customer a distributed run (`cspgraph sync --engine celery`) handed to its workers:
# which worker synced it, in how many attempts (a worker killed mid-customer leaves it to
# another: attempts 2), and the Graph requests of the attempt that finished it.
run_tasks = Table(
    "run_tasks",
    metadata,
    Column("run_id", String, primary_key=True),
    Column("customer", String, primary_key=True),  # as enqueued: tenant id, domain or UPN
    Column("tenant_id", String),
    Column("worker", String),  # the Celery worker's name and process of the latest attempt
    Column("attempts", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),  # NULL while an attempt is under way (or died)
    Column("status", String),
    Column("requests", Integer),
    Column("throttled", Integer),
)

# Per customer: how its recent syncs went and whether Partner Center still lists it.
customer_state = Table(
    "customer_state",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("failing_runs", Integer, nullable=False),  # runs in a row that did not end "ok"
    Column("failing_since", UtcDateTime),
    Column("last_run_id", String),
    Column("state_run_id", String),  # the last run that recorded its security state
    # Set when a run that listed every customer no longer found it; its data stays until
    # `cspgraph sync --prune`.
    Column("gone_since", UtcDateTime),
)

# What the customer's last successful sync could see, per resource: a tenant without Intune, an
# app without RoleManagement.Read.Directory. Unknown is shown as unknown, never as 0.
coverage = Table(
    "coverage",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("resource", String, primary_key=True),
    Column("available", Boolean, nullable=False),
    Column("reason", String),
    Column("run_id", String),
    Column("at", UtcDateTime, nullable=False),
)

# The security-relevant state at the last sync, per customer and kind (global_admin,
# privileged_role, guest, noncompliant_device, licence); item "" marks a kind as recorded, so
# that "recorded, and empty" differs from "never recorded".
security_state = Table(
    "security_state",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("kind", String, primary_key=True),
    Column("item_id", String, primary_key=True),
    Column("label", String),
    Column("value", Integer),
    sqlite_with_rowid=False,
)

# What changed in that state, per run: added, removed, changed (a licence's seats).
changes = Table(
    "changes",
    metadata,
    Column("run_id", String, primary_key=True),
    Column("tenant_id", String, primary_key=True),
    Column("kind", String, primary_key=True),
    Column("item_id", String, primary_key=True),
    Column("change", String, nullable=False),
    Column("label", String),
    Column("before", Integer),
    Column("after", Integer),
    Column("at", UtcDateTime, nullable=False),
)
Index("ix_changes_tenant", changes.c.tenant_id, changes.c.at)

# The partner-managed app of each region and when its credential ends (NULL with the reason when
# that cannot be known).
partner_apps = Table(
    "partner_apps",
    metadata,
    Column("region", String, primary_key=True),
    Column("client_id", String, nullable=False),
    Column("partner_tenant", String),
    Column("credential", String),  # secret | certificate
    Column("expires_at", UtcDateTime),
    Column("unknown_reason", String),
    Column("checked_at", UtcDateTime, nullable=False),
)

# Findings a webhook was told about: the channel is a hash of the URL (the URL is a secret).
notifications = Table(
    "notifications",
    metadata,
    Column("channel", String, primary_key=True),
    Column("finding_key", String, primary_key=True),
    Column("sent_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
)

# The store's schema version (one row); see cspgraph.fleet.migrations.
# How cspgraph reaches each customer (cspgraph.fleet.access), as the last sync found it: the
# access mode (dap, gdap-app, gdap-delegated, none; NULL: not known), why, Partner Center's word on
# DAP (allowDelegatedAccess; NULL: not asked or no answer) and the GDAP relationship that matters
# most (the one in effect that ends first, else the one on its way, waiting or ended last).
customer_access = Table(
    "customer_access",
    metadata,
    Column("tenant_id", String, primary_key=True),
    Column("mode", String),
    Column("reason", String),
    Column("dap", Boolean),
    Column("dap_checked_at", UtcDateTime),
    Column("gdap_known", Boolean),  # the partner's relationships were read in that sync
    Column("gdap_relationship", String),  # its displayName
    Column("gdap_status", String),
    Column("gdap_end", UtcDateTime),  # its endDateTime
    Column("gdap_relationships", Integer),  # how many the partner has with this customer
    Column("gdap_auto_extend", Boolean),  # it extends itself at its end (NULL: not said)
    Column("gdap_created", UtcDateTime),  # its createdDateTime
    Column("checked_at", UtcDateTime),
)

schema_version = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

HISTORY_TABLES = (
    runs,
    run_customers,
    run_tasks,
    customer_state,
    coverage,
    security_state,
    changes,
    partner_apps,
    notifications,
    customer_access,
    schema_version,
)
