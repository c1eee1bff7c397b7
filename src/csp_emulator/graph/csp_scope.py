"""The CSP rule: a partner-managed app may call Graph for directory resources and Intune only.

"Calling Microsoft Graph from a CSP application is only supported for directory resources (such
as user, group, device, organization) and Intune resources." (Graph docs, CSP topic.) Everything
else a partner might try — mail, calendars, files, sites, Teams, security, reports — is refused
with a 403, in the words of the workload that would have answered:

* Exchange (mail, calendar, contacts): ``ErrorAccessDenied`` "Access is denied. Check credentials
  and try again." (captured in public issue threads for a token without mail permissions);
* SharePoint and OneDrive (sites, drives): ``accessDenied`` "Access denied" (captured likewise);
* everything else: ``Authorization_RequestDenied`` "Insufficient privileges to complete the
  operation." (a choice: the directory's own refusal).

Paths that are neither in scope nor known here are answered by the router with Graph's 400
"Resource not found for the segment '…'".
"""

from __future__ import annotations

from csp_emulator.graph.errors import INSUFFICIENT_PRIVILEGES, GraphError


def _exchange() -> GraphError:
    return GraphError(
        403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
    )


def _sharepoint() -> GraphError:
    return GraphError(403, "accessDenied", "Access denied")


def _other() -> GraphError:
    return GraphError(403, "Authorization_RequestDenied", INSUFFICIENT_PRIVILEGES)


_EXCHANGE = "exchange"
_SHAREPOINT = "sharepoint"
_OTHER = "other"
_ANSWERS = {_EXCHANGE: _exchange, _SHAREPOINT: _sharepoint, _OTHER: _other}

# Top-level Graph segments outside directory and Intune, by the workload behind them.
OUT_OF_SCOPE_ROOTS: dict[str, str] = {
    name.lower(): workload
    for workload, names in {
        _SHAREPOINT: "sites drives shares",
        _OTHER: """teams chats teamwork appCatalogs communications security reports planner
            print solutions education informationProtection identityProtection auditLogs
            search external connections employeeExperience storage admin places
            subscriptions dataPolicyOperations compliance copilot""",
    }.items()
    for name in names.split()
}

# Navigation properties of a user, /me or a group that lead out of the directory.
OUT_OF_SCOPE_NAVIGATION: dict[str, str] = {
    name.lower(): workload
    for workload, names in {
        _EXCHANGE: """messages mailFolders events calendar calendars calendarView calendarGroups
            contacts contactFolders outlook mailboxSettings inferenceClassification people
            conversations threads photo photos""",
        _SHAREPOINT: "drive drives sites followedSites",
        _OTHER: """onenote planner joinedTeams teamwork chats insights presence todo
            onlineMeetings team authentication""",
    }.items()
    for name in names.split()
}


def refusal(segments: list[str]) -> GraphError | None:
    """Graph's 403 when ``segments`` (after the version) leave directory and Intune, else None."""
    if not segments:
        return None
    root = segments[0].lower()
    workload = OUT_OF_SCOPE_ROOTS.get(root)
    if workload is None:
        navigation = None
        if root == "me" and len(segments) > 1:
            navigation = segments[1]
        elif root in ("users", "groups") and len(segments) > 2:
            navigation = segments[2]
        if navigation is not None:
            workload = OUT_OF_SCOPE_NAVIGATION.get(navigation.lower())
    return None if workload is None else _ANSWERS[workload]()
