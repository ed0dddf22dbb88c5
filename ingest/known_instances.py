"""Which instances of a study already exist, so new ones skip per-instance S3 look-ups.

A HEAD on the archive for every received instance costs more than landing it (SeaweedFS
answers in ~20 ms on two cores). Instead the first instance of a study lists the study's
prefix in the archive and landing area once, and the set is kept for a short while, with
every instance landed here added to it. Only an instance already in the set takes the full
duplicate check. Another gateway landing the same SOP instance inside that window is the
one gap; the archive workflow then keeps the earlier version aside rather than lose it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from infra.storage.landing import Landing
from infra.storage.tiers import StoredCopies


@dataclass
class _Study:
    listed_at: float
    sops: set[str] = field(default_factory=set)


class KnownInstances:
    def __init__(self, archive: StoredCopies, landing: Landing, ttl_seconds: float = 30.0) -> None:
        self.archive = archive
        self.landing = landing
        self.ttl = ttl_seconds
        self._studies: dict[str, _Study] = {}
        self._lock = threading.Lock()

    def _fresh(self, study: str, now: float) -> _Study | None:
        entry = self._studies.get(study)
        return entry if entry is not None and now - entry.listed_at < self.ttl else None

    def may_exist(self, study: str, sop: str) -> bool:
        """False only when the SOP instance is certainly new to this archive."""
        now = time.monotonic()
        with self._lock:
            entry = self._fresh(study, now)
        if entry is None:
            listed = self.archive.sops_in_study(study) | self.landing.sops_in_study(study)
            with self._lock:
                self._prune(now)
                entry = self._fresh(study, now)
                if entry is None:
                    entry = self._studies[study] = _Study(listed_at=now, sops=listed)
                else:
                    entry.sops |= listed
        with self._lock:
            return sop in entry.sops

    def add(self, study: str, sop: str) -> None:
        with self._lock:
            entry = self._studies.get(study)
            if entry is not None:
                entry.sops.add(sop)

    def _prune(self, now: float) -> None:
        expired = [uid for uid, s in self._studies.items() if now - s.listed_at >= self.ttl]
        for uid in expired:
            del self._studies[uid]
