"""Keyed, repeatable replacements: UIDs, patient pseudonyms, the date offset.

Each is an HMAC-SHA-256 of the original under the de-identification key, so the same input
gives the same output in every instance of a study, in every study that refers to it, and
in every later run; without the key nobody can go from a replacement back to the original
(the re-identification map, admin only, is the way back).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass

# Dates move backwards by 1 to 10 years: far enough that no original date is guessable
# from a copy, near enough that ages and intervals keep their meaning.
MIN_OFFSET_DAYS = 365
MAX_OFFSET_DAYS = 3652


@dataclass(frozen=True)
class DeidentificationKey:
    """The secret and the scope the replacements are taken in.

    `scope` separates copies made with different options: the same original instance
    de-identified twice with different options yields two objects, so they get different
    UIDs (and the second does not overwrite the first). Pseudonyms and the date offset do
    not depend on it: a patient is the same pseudonymous patient in every copy.
    """

    secret: bytes
    scope: str = ""

    def _digest(self, purpose: str, value: str) -> bytes:
        return hmac.new(self.secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """A `2.25.<int>` UID (PS3.5 B.2): the HMAC's first 128 bits as a version-8 UUID."""
        digest = self._digest(f"uid:{self.scope}", original)
        # Version 8 ("custom") and the RFC 9562 variant, set by hand: uuid.UUID's `version=`
        # takes only 1-5 before Python 3.14.
        value = int.from_bytes(digest[:16], "big")
        value = (value & ~(0xF << 76)) | (0x8 << 76)
        value = (value & ~(0x3 << 62)) | (0x2 << 62)
        return f"2.25.{uuid.UUID(int=value).int}"

    def pseudonym(self, patient_id: str, issuer: str = "") -> str:
        """A patient's new ID: the same for every study of that patient."""
        return "ANON" + self._digest("patient", f"{issuer}\x00{patient_id}").hex()[:12].upper()

    def date_offset_days(self, patient_id: str, issuer: str = "") -> int:
        """How many days every date of this patient moves back (the same in every study)."""
        digest = self._digest("date-offset", f"{issuer}\x00{patient_id}")
        span = MAX_OFFSET_DAYS - MIN_OFFSET_DAYS + 1
        return MIN_OFFSET_DAYS + int.from_bytes(digest[:8], "big") % span
