"""GDAP operations: the role catalog, invitations, status, access assignments, consent, and the
GDAP onboarding of a customer. Library first; ``cspgraph gdap`` is the thin shell over it.

    roles          the role catalog and the least privilege for cspgraph's own operations
    api            GdapApi: Graph's /tenantRelationships in the partner tenant, typed
    session        GdapSession: a technician's Graph client and GdapApi for one region
    invite         invite(): create, lockForApproval, the approval link; idempotent by name
    status         gdap_status(): per customer what stands and what needs a person
    consent_state  consent_state(): what the app holds in a customer, from a new token
    calendar       days_between(): days left counted on a calendar (status and the report)

The package sits above :mod:`cspgraph.partner` (it uses Partner Center and the onboarding state
machine's pieces) and below :mod:`cspgraph.fleet`. Nothing is re-exported here: import from the
modules.
"""
