"""Entra ID's built-in directory roles: template ids and names, and which of them GDAP grants.

Written down from public documentation in ``builtin_roles.json``, a data file that cspgraph reads
too (its ``gdap/builtin_roles.json`` links to this one; each distribution ships it as package
data), never an import from the client side (the emulator is an independent implementation of
the server). Sources: Entra's "built-in roles" reference (the
"All roles" table, template ids verified for every role the 2021 edition lists, among them
Directory Readers 88d8e3e3-…, Global Reader, User Administrator, Groups Administrator, Helpdesk
Administrator, License Administrator, Intune Administrator 3a2c62db-…, Cloud Device
Administrator, Application Administrator, Cloud Application Administrator, Privileged Role
Administrator, Security Reader and Global Administrator 62e90394-…); the roles added since come
from a public mapping of ids to names that agrees with that table on every role they share.

GDAP relationships request roles by template id (``accessDetails.unifiedRoles[].roleDefinitionId``).
Partner Center offers "about 105" built-in roles for GDAP; which few it leaves out is not
published in one place: the emulator refuses the three that are not meant for people
(:data:`NOT_IN_GDAP`) and accepts the rest (*unverified*).

What each role may do in the emulated Graph is the Graph layer's business
(``graph/role_grants.py``): roles whose workloads the emulator does not serve (Exchange, Teams,
SharePoint, …) are accepted in relationships and tokens but unlock nothing here.
"""

from __future__ import annotations

import json
from importlib import resources

# Template id -> name, and the roles GDAP does not offer: builtin_roles.json, the one copy of
# these public facts (cspgraph's gdap/builtin_roles.json is a link to it; each distribution ships
# it as package data, so neither package imports the other).
_CATALOG = json.loads(resources.files("csp_emulator").joinpath("builtin_roles.json").read_text())
BUILTIN_ROLES: dict[str, str] = dict(_CATALOG["roles"])
NOT_IN_GDAP = frozenset(_CATALOG["not_in_gdap"])
GDAP_ROLES: dict[str, str] = {t: n for t, n in BUILTIN_ROLES.items() if t not in NOT_IN_GDAP}

_BY_NAME = {name.lower(): template for template, name in BUILTIN_ROLES.items()}


def _named(name: str) -> str:
    return _BY_NAME[name.lower()]


GLOBAL_ADMINISTRATOR = _named("Global Administrator")
GLOBAL_READER = _named("Global Reader")
DIRECTORY_READERS = _named("Directory Readers")
DIRECTORY_WRITERS = _named("Directory Writers")
USER_ADMINISTRATOR = _named("User Administrator")
GROUPS_ADMINISTRATOR = _named("Groups Administrator")
HELPDESK_ADMINISTRATOR = _named("Helpdesk Administrator")
PASSWORD_ADMINISTRATOR = _named("Password Administrator")
LICENSE_ADMINISTRATOR = _named("License Administrator")
INTUNE_ADMINISTRATOR = _named("Intune Administrator")
CLOUD_DEVICE_ADMINISTRATOR = _named("Cloud Device Administrator")
APPLICATION_ADMINISTRATOR = _named("Application Administrator")
CLOUD_APPLICATION_ADMINISTRATOR = _named("Cloud Application Administrator")
PRIVILEGED_ROLE_ADMINISTRATOR = _named("Privileged Role Administrator")
PRIVILEGED_AUTHENTICATION_ADMINISTRATOR = _named("Privileged Authentication Administrator")
SECURITY_ADMINISTRATOR = _named("Security Administrator")
SECURITY_READER = _named("Security Reader")
SERVICE_SUPPORT_ADMINISTRATOR = _named("Service Support Administrator")
EXCHANGE_ADMINISTRATOR = _named("Exchange Administrator")
BILLING_ADMINISTRATOR = _named("Billing Administrator")
# Not a role anyone is assigned: the template every member user's token names in `wids`.
USER_TEMPLATE = "b79fbf4d-3ef9-4689-8143-76b194e85509"


def resolve(role: str) -> str | None:
    """The template id of a built-in role given by template id or by name (any case)."""
    text = role.strip().lower()
    if text in BUILTIN_ROLES:
        return text
    return _BY_NAME.get(text)


def name_of(template_id: str) -> str:
    return BUILTIN_ROLES.get(template_id, template_id)
