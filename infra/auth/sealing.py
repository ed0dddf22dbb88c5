"""Secrets the platform must keep to use later (a remote node's API key), sealed so that
the event log, the read models and the admin API hold only ciphertext.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) under a key derived by HKDF
from the platform's token key: every process on the data dir (or every host given the same
PACS_AUTH__TOKEN_KEY) can open what another sealed; a new token key makes old seals
unreadable, and the credentials must then be entered again.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from infra.auth.tokens import token_key
from infra.settings import Settings


class SealError(ValueError):
    """A sealed value this platform cannot open (another key, or not a seal at all)."""


class Sealer:
    def __init__(self, key: bytes) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"pacs sealed credentials"
        ).derive(key)
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    @classmethod
    def of(cls, settings: Settings) -> Sealer:
        return cls(token_key(settings))

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def unseal(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise SealError("sealed with another key (was the token key changed?)") from exc
