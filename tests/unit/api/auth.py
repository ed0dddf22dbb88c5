"""Credentials for unit tests of the routes: a token issuer and an admin's bearer header."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from api.deps import Services
from api.identity import Authenticator
from infra.auth.tokens import TokenIssuer

# A day: ADMIN is minted when the tests are collected, and the integration tests run first.
ISSUER = TokenIssuer(b"unit-test-token-key-of-32-bytes!", 24 * 3600)


def authenticator() -> Authenticator:
    """Tokens only (no users read model): what a route test's stand-in services carry."""
    return Authenticator(ISSUER, None)


def bearer(*roles: str, subject: str = "tester") -> dict[str, str]:
    token, _ = ISSUER.issue(subject, set(roles))
    return {"Authorization": f"Bearer {token}"}


ADMIN = bearer("admin")


def stand_in_services(**parts: Any) -> Services:
    """Services for a route test without servers: no read model, no audit trail, tokens only;
    `parts` adds or replaces what a test needs."""
    base: dict[str, Any] = {
        "authenticator": authenticator(),
        "catalog": None,
        "worklist": None,
        "audit": None,
        "projector": None,
        "security": None,
        "nodes": None,
        "clickhouse": None,
        "recorder": None,
    }
    return cast(Services, SimpleNamespace(**{**base, **parts}))
