"""Roles and the permissions (OAuth2 scopes) they carry: data, one table, used by every router.

A token's effective permissions are its role's permissions intersected with its scopes, so a
token can only narrow what its user may do. Later domains add their permissions here.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    LEADER = "leader"
    STAFF = "staff"
    GRID_WORKER = "grid_worker"
    CITIZEN = "citizen"


# permission -> human description (shown on the token page and in the OpenAPI docs)
PERMISSIONS: dict[str, str] = {
    "org:read": "Read departments and users",
    "org:write": "Create and edit departments and users",
    "token:write": "Issue and revoke API tokens for oneself",
    "audit:read": "Read and verify the audit log",
    "geo:read": "Read divisions, grids and locate points",
    "people:read": "Read the synthetic population and enterprise base data",
    "events:report": "Report a city problem (event) through any channel",
    "events:read": "Read events, their timelines and dispatch reasons",
    "events:handle": "Act on events dispatched to one's department: start, handle, return, extension",
    "events:command": "Command centre: accept, register, dispatch, reassign, close, approve extensions",
    "events:verify": "Verify handled events in the field (pass or send back for rework)",
    "events:admin": "Edit the event catalog and dispatch rules",
    "cockpit:read": "Watch the cockpit (big screen), its live stream, drill-downs and daily briefing",
    "indicators:read": "Read the plan indicators, their history and evidence, and the annual evaluation report",
    "indicators:report": "Report plan-indicator values with evidence (department staff: their department's)",
    "iot:read": "Read devices, their live state and history, alarms and the NGSI-LD context API",
    "iot:manage": "Register devices and manage their credentials (department staff: their department's)",
    "iot:alarm": "Acknowledge and clear IoT alarms, read the dead-letter store",
    "iot:admin": "Edit products (thing models) and alarm rules; write through the NGSI-LD API",
    "data:read": "Browse the data catalog, request access to shared resources and read granted rows",
    "data:publish": "Describe, load and quality-check one's department's resources; decide its sharing requests",
    "data:admin": "Edit every department's catalog entries, quality rules and masking; see every department's quality",
}
ALL_PERMISSIONS = frozenset(PERMISSIONS)

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.ADMIN: ALL_PERMISSIONS,
    Role.LEADER: frozenset({"org:read", "audit:read", "geo:read", "token:write", "people:read", "events:read",
                           "cockpit:read", "indicators:read", "iot:read", "data:read"}),
    Role.STAFF: frozenset({"org:read", "geo:read", "token:write", "events:report", "events:read", "events:handle",
                           "indicators:read", "indicators:report", "iot:read", "iot:manage", "iot:alarm",
                          "data:read", "data:publish"}),
    # Grid workers read the events they reported or must verify (service layer narrows it).
    Role.GRID_WORKER: frozenset({"geo:read", "events:report", "events:verify", "events:read"}),
    Role.CITIZEN: frozenset({"events:report"}),
}

# Roles that must belong to a department.
ROLES_WITH_DEPARTMENT = frozenset({Role.STAFF, Role.GRID_WORKER})


def parse_scopes(text: str | list[str] | None) -> frozenset[str]:
    """Parse a space- or comma-separated scope list; unknown scopes are an error, not ignored."""
    if text is None:
        return frozenset()
    items = text if isinstance(text, list) else text.replace(",", " ").split()
    unknown = sorted(set(items) - ALL_PERMISSIONS)
    if unknown:
        from .errors import Invalid

        raise Invalid(f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(sorted(ALL_PERMISSIONS))}")
    return frozenset(items)
