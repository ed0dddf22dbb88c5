"""Who is calling: every credential the HTTP API accepts, resolved to one `Caller`.

Accepted, in this order: `Authorization: Bearer <token>` (an API key, one of our JWTs —
access or service — or a JWT of the configured OIDC provider), `X-API-Key: <key>`, and the
login page's session cookie. A cookie-authenticated request that changes something must
also carry the session's CSRF token in `X-CSRF-Token` (SameSite=Strict already keeps other
sites' requests from carrying the cookie; the token covers browsers and proxies that do not).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from fastapi import Request

from infra.auth import api_keys
from infra.auth.oidc import OidcVerifier
from infra.auth.passwords import verify_password
from infra.auth.permissions import Permission, permissions_of
from infra.auth.scope import StudyScope, study_scope
from infra.auth.tokens import InvalidToken, TokenIssuer
from infra.readmodels.security import SecurityProjection
from schemas.security import RoleBinding, User
from schemas.security import StudyScope as ScopeModel

SESSION_COOKIE = "pacs_session"
CSRF_COOKIE = "pacs_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Via = Literal["token", "api-key", "session", "oidc", "service", "password", "dimse"]


class Unauthenticated(Exception):
    """Credentials were presented but are not valid; the message says why."""


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: who, with which roles, how, and from where."""

    name: str
    roles: frozenset[str]
    via: Via
    address: str
    permissions: frozenset[Permission] = field(default=frozenset())
    # The studies it may read (infra/auth/scope.py); None: every study.
    scope: StudyScope = None

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions


class Authenticator:
    """Built once per API process; `resolve` is called on every request."""

    def __init__(
        self,
        issuer: TokenIssuer,
        security: SecurityProjection | None,
        oidc: OidcVerifier | None = None,
    ) -> None:
        self.issuer = issuer
        self.security = security
        self.oidc = oidc

    async def resolve(self, request: Request) -> Caller | None:
        """The caller, None when no credential was presented; Unauthenticated when one was
        presented and is not valid (a bad credential is never treated as none)."""
        address = request.client.host if request.client else ""
        authorization = request.headers.get("authorization", "")
        scheme, _, credential = authorization.partition(" ")
        if authorization and scheme.lower() != "bearer":
            raise Unauthenticated(f"unsupported authorization scheme {scheme!r}; use Bearer")
        credential = credential.strip() or request.headers.get("x-api-key", "").strip()
        if credential:
            return await self._bearer(credential, address)
        session = request.cookies.get(SESSION_COOKIE)
        if session:
            return self._session(session, request, address)
        return None

    async def password_user(self, username: str, password: str) -> User | None:
        """The enabled local user whose password this is, else None. Verified even for an
        unknown user (against a decoy hash): the same time either way."""
        user = self.security.user(username) if self.security is not None else None
        ok = await asyncio.to_thread(
            verify_password, user.password_hash if user else None, password
        )
        return user if ok and user is not None and not user.disabled else None

    async def bearer(self, credential: str, address: str) -> Caller:
        """The caller a bearer credential (a token or an API key) names; Unauthenticated."""
        return await self._bearer(credential, address)

    async def _bearer(self, credential: str, address: str) -> Caller:
        if (parts := api_keys.split_key(credential)) is not None:
            return self._api_key(*parts, address)
        if self.oidc is not None and self.oidc.issued_by_it(credential):
            try:
                identity = await asyncio.to_thread(self.oidc.verify, credential)
            except InvalidToken as exc:
                raise Unauthenticated(str(exc)) from exc
            return _caller(identity.username, identity.roles, "oidc", address)
        try:
            claims = self.issuer.verify(credential)
        except InvalidToken as exc:
            raise Unauthenticated(str(exc)) from exc
        if claims.kind == "session":
            raise Unauthenticated("a session token is only accepted as the session cookie")
        if claims.kind == "service":
            return _caller(claims.subject, claims.roles, "service", address)
        return self._user(claims.subject, claims.roles, "token", address)

    def _api_key(self, key_id: str, secret: str, address: str) -> Caller:
        key = self.security.api_key(key_id) if self.security else None
        if key is None or not api_keys.matches(secret, key.secret_sha256):
            raise Unauthenticated("unknown API key")
        if self.security is not None and not self.security.key_usable(key):
            raise Unauthenticated("the API key is revoked or expired")
        return _caller(f"api-key:{key_id}", frozenset(key.roles), "api-key", address)

    def _session(self, token: str, request: Request, address: str) -> Caller:
        try:
            claims = self.issuer.verify(token)
        except InvalidToken as exc:
            raise Unauthenticated(f"session: {exc}; log in again") from exc
        if claims.kind != "session":
            raise Unauthenticated("the session cookie does not hold a session")
        if request.method not in SAFE_METHODS and request.headers.get(CSRF_HEADER) != claims.csrf:
            raise Unauthenticated(
                "a request authenticated by the session cookie that changes something must "
                "carry the X-CSRF-Token header (the value of the pacs_csrf cookie)"
            )
        return self._user(claims.subject, claims.roles, "session", address)

    def _user(self, username: str, claimed: frozenset[str], via: Via, address: str) -> Caller:
        """A user's token carries the roles they had when it was issued; what counts is what
        they have now: disabled or deleted since, it is refused; roles or bindings changed,
        the new ones."""
        if self.security is None:
            return _caller(username, claimed, via, address)
        user = self.security.user(username)
        if self.security.was_deleted(username) or (user is not None and user.disabled):
            raise Unauthenticated(f"user {username} is disabled or deleted")
        if user is None:
            return _caller(username, claimed, via, address)
        return user_caller(user, via, address)


def user_caller(user: User, via: Via, address: str) -> Caller:
    """A local user as a caller: roles over every study plus the scoped bindings' roles."""
    bindings = tuple(
        (b.role, tuple(b.scope.institutions), tuple(b.scope.labels)) for b in user.bindings
    )
    roles, permissions, scope = _grants(frozenset(user.roles), bindings)
    return Caller(user.username, roles, via, address, permissions, scope)


def _caller(name: str, roles: frozenset[str], via: Via, address: str) -> Caller:
    roles, permissions, scope = _grants(roles, ())
    return Caller(name, roles, via, address, permissions, scope)


Binding = tuple[str, tuple[str, ...], tuple[str, ...]]


@lru_cache(maxsize=4096)
def _grants(
    roles: frozenset[str], bindings: tuple[Binding, ...]
) -> tuple[frozenset[str], frozenset[Permission], StudyScope]:
    """Every role, the permissions and the study scope of roles plus bindings: the same for
    every request of a user until their roles change, so worked out once (per request it
    was a tenth of a QIDO's time in the API)."""
    models = [
        RoleBinding(role=role, scope=ScopeModel(institutions=list(i), labels=list(labels)))
        for role, i, labels in bindings
    ]
    every = roles | {role for role, _, _ in bindings}
    return every, permissions_of(every), study_scope(roles, models)
