"""Roles and what they permit: the one table every HTTP route and DIMSE service is checked against.

A permission names a group of resources and an action on them; a role is a set of
permissions. Routes declare the permission they need (api/deps.py `require`), so what a role
may do is read here, not gathered from the routes.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    STUDIES_READ = "studies:read"  # QIDO, WADO (all kinds), metadata, change feed: PHI
    STUDIES_STORE = "studies:store"  # STOW-RS, C-STORE
    STUDIES_DELETE = "studies:delete"  # DELETE a study, series or instance (then purged)
    WORKLIST_READ = "worklist:read"
    WORKLIST_WRITE = "worklist:write"
    MPPS_READ = "mpps:read"
    AUDIT_READ = "audit:read"
    DEIDENTIFY = "deidentify"  # start a de-identification job (reads identified studies)
    DEIDENTIFIED_READ = "deidentified:read"  # a job's status and its zip: no PHI
    REIDENTIFY = "reidentify"  # a job's re-identification map: admin only
    ADMIN = "admin"  # read models, users, API keys, nodes: the platform itself
    METRICS_READ = "metrics:read"  # /metrics, /api/associations: counts, AE titles, addresses
    INTERNAL = "internal"  # our own processes' routes (/api/internal)


class Role(StrEnum):
    ADMIN = "admin"
    RADIOLOGIST = "radiologist"
    TECHNOLOGIST = "technologist"
    AUDITOR = "auditor"
    INTEGRATION = "integration"
    RESEARCHER = "researcher"
    SERVICE = "service"  # our gateway and worker, never a person


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.RADIOLOGIST: frozenset(
        {
            P.STUDIES_READ,
            P.STUDIES_STORE,
            P.WORKLIST_READ,
            P.MPPS_READ,
            P.DEIDENTIFY,
            P.DEIDENTIFIED_READ,
        }
    ),
    Role.TECHNOLOGIST: frozenset({P.STUDIES_STORE, P.WORKLIST_READ, P.WORKLIST_WRITE, P.MPPS_READ}),
    Role.AUDITOR: frozenset({P.AUDIT_READ}),
    Role.INTEGRATION: frozenset({P.STUDIES_READ, P.STUDIES_STORE, P.WORKLIST_READ}),
    # Reads de-identified studies only (infra/auth/scope.py narrows every read of theirs),
    # and the results of de-identification jobs.
    Role.RESEARCHER: frozenset({P.STUDIES_READ, P.DEIDENTIFIED_READ}),
    # The worker stores de-identified copies through STOW-RS, like any client.
    Role.SERVICE: frozenset({P.INTERNAL, P.WORKLIST_READ, P.STUDIES_STORE, P.METRICS_READ}),
}


def permissions_of(roles: frozenset[str] | set[str] | list[str]) -> frozenset[Permission]:
    """Everything the roles permit together; unknown role names permit nothing."""
    granted: set[Permission] = set()
    for name in roles:
        try:
            granted |= ROLE_PERMISSIONS[Role(name)]
        except ValueError:
            continue
    return frozenset(granted)
