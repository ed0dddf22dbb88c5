"""API keys: random secrets shown once, stored only as a hash.

A key reads `pacs_<id>_<secret>`: the id finds the stored record, the secret (256 random
bits) is compared by its SHA-256. A fast hash is right here, unlike for passwords: the
secret is random, so there is nothing to guess, and every request is checked against it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "pacs_"


def new_api_key() -> tuple[str, str, str]:
    """(key id, the full key to hand out once, the hash to store)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{PREFIX}{key_id}_{secret}", digest(secret)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of something shaped like one of our keys, else None."""
    if not key.startswith(PREFIX):
        return None
    key_id, sep, secret = key[len(PREFIX) :].partition("_")
    if not sep or len(key_id) != 12 or not secret:
        return None
    return key_id, secret


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)
