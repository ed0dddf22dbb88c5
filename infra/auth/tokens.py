"""The platform's own bearer tokens: JWTs signed with HS256 (PyJWT).

Three kinds: `access` (from POST /api/auth/token), `session` (the login page's cookie; it
also names the CSRF token that cookie-authenticated writes must echo) and `service` (what
our gateway and worker present to the API's internal routes, minted from the shared key).
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from infra.auth.permissions import Role
from infra.auth.secrets import load_or_create
from infra.settings import Settings

ISSUER = "pacs"
AUDIENCE = "pacs"
TokenKind = Literal["access", "session", "service"]


class InvalidToken(ValueError):
    """Expired, tampered with, or not one of ours; the message says which."""


@dataclass(frozen=True)
class Claims:
    subject: str
    roles: frozenset[str]
    kind: TokenKind
    expires_at: int
    csrf: str = ""


def token_key(settings: Settings) -> bytes:
    """The signing key: PACS_AUTH__TOKEN_KEY, else the one kept in the data dir."""
    if settings.auth.token_key is not None:
        return settings.auth.token_key.get_secret_value().encode()
    key, _ = load_or_create(settings.secrets_dir / "token-key")
    return key.encode()


# Verified tokens kept, so a client sending the same token on every request costs a
# dictionary look-up instead of a signature check (~40 µs, a twentieth of a QIDO).
VERIFIED_CACHE_SIZE = 4096


class TokenIssuer:
    def __init__(self, key: bytes, ttl_seconds: int) -> None:
        self._key = key
        self.ttl_seconds = ttl_seconds
        self._verified: dict[str, Claims] = {}

    def issue(
        self,
        subject: str,
        roles: frozenset[str] | set[str],
        kind: TokenKind = "access",
        ttl_seconds: int | None = None,
    ) -> tuple[str, Claims]:
        now = int(time.time())
        claims = Claims(
            subject=subject,
            roles=frozenset(roles),
            kind=kind,
            expires_at=now + (ttl_seconds or self.ttl_seconds),
            csrf=secrets.token_urlsafe(16) if kind == "session" else "",
        )
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "iat": now,
            "exp": claims.expires_at,
            "jti": uuid.uuid4().hex,
            "kind": kind,
            "roles": sorted(claims.roles),
        }
        if claims.csrf:
            payload["csrf"] = claims.csrf
        return jwt.encode(payload, self._key, algorithm="HS256"), claims

    def verify(self, token: str) -> Claims:
        """The token's claims; InvalidToken when it is expired, forged or not ours."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at > time.time():
                return cached
            del self._verified[token]
        claims = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()  # crude but bounded; a busy node re-verifies once
        self._verified[token] = claims
        return claims

    def _verify(self, token: str) -> Claims:
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token is not valid: {exc}") from exc
        kind = payload.get("kind")
        if kind not in ("access", "session", "service"):
            raise InvalidToken("the token is not valid: unknown kind")
        return Claims(
            subject=str(payload["sub"]),
            roles=frozenset(str(r) for r in payload.get("roles", [])),
            kind=kind,
            expires_at=int(payload["exp"]),
            csrf=str(payload.get("csrf", "")),
        )


class ServiceToken:
    """A service token for one process, re-minted when half its life has passed."""

    def __init__(
        self, issuer: TokenIssuer, name: str, roles: frozenset[str] = frozenset({Role.SERVICE})
    ) -> None:
        self._issuer = issuer
        self._name = name
        self._roles = roles
        self._token = ""
        self._renew_at = 0.0

    def __call__(self) -> str:
        now = time.time()
        if now >= self._renew_at:
            self._token, claims = self._issuer.issue(
                f"service:{self._name}", self._roles, kind="service"
            )
            self._renew_at = now + (claims.expires_at - now) / 2
        return self._token


def service_token(
    settings: Settings, name: str, roles: frozenset[str] = frozenset({Role.SERVICE})
) -> ServiceToken:
    """What a process of ours presents to the API: the gateway's and worker's calls to the
    internal routes, and the `pacs` admin commands run on the server (whoever can read the
    token key in the data dir administers this node anyway)."""
    return ServiceToken(
        TokenIssuer(token_key(settings), settings.auth.token_ttl_seconds), name, roles
    )
