"""Password hashing with argon2id (argon2-cffi's defaults: RFC 9106's second recommendation)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()

# A hash that no password matches, verified against when the user does not exist, so a
# login for an unknown name takes as long as one with a wrong password.
_DECOY = _HASHER.hash("decoy password that is never anyone's")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; False for a wrong one, a malformed hash or no user."""
    try:
        return _HASHER.verify(stored_hash or _DECOY, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """The hash was made with weaker parameters than today's defaults."""
    return _HASHER.check_needs_rehash(stored_hash)
