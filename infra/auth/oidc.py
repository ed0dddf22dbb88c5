"""Bearer JWTs from an external OpenID Connect provider (Keycloak, Entra ID, Okta).

The provider's signing keys come from its JWKS URL and are cached by PyJWT's `PyJWKClient`
(re-fetched when a token names a key id not yet seen, so key rotation just works).
`iss`, `aud` and `exp` are checked; the roles come from a configured claim and are mapped
to ours, so the provider's group names never leak into the permission table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from infra.auth.tokens import InvalidToken
from infra.settings import OidcSettings

# Asymmetric algorithms only: an HS256 token claiming to be the provider's is refused.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


@dataclass(frozen=True)
class ExternalIdentity:
    username: str
    roles: frozenset[str]
    expires_at: int


def _claim(payload: dict[str, Any], path: str) -> Any:
    value: Any = payload
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class OidcVerifier:
    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._keys = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300)

    @staticmethod
    def configured(settings: OidcSettings) -> bool:
        return bool(settings.issuer and settings.jwks_url)

    def issued_by_it(self, token: str) -> bool:
        """Whether the (unverified) token names this provider as its issuer."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return False
        return bool(claims.get("iss") == self.settings.issuer)

    def verify(self, token: str) -> ExternalIdentity:
        """Blocking on a JWKS fetch when the key is not cached: call from a thread."""
        s = self.settings
        try:
            key = self._keys.get_signing_key_from_jwt(token)
            payload = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=s.audience or None,
                issuer=s.issuer,
                options={"require": ["exp", "iss"], "verify_aud": bool(s.audience)},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the identity provider's token is not valid: {exc}") from exc
        granted = _claim(payload, s.roles_claim) or []
        if isinstance(granted, str):
            granted = granted.split()
        roles = frozenset(s.role_map[g] for g in granted if isinstance(g, str) and g in s.role_map)
        username = _claim(payload, s.username_claim) or payload.get("sub", "")
        return ExternalIdentity(f"oidc:{username}", roles, int(payload["exp"]))
