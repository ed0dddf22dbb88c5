"""Presentation contexts to propose when we send C-STOREs (C-MOVE sub-operations, `pacs store`).

One context per (SOP class, transfer syntax) we hold, so the peer can take the bytes as
stored, plus an uncompressed fallback per SOP class that `infra.dicom.transcode` can produce.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.presentation import PresentationContext, build_context

log = logging.getLogger(__name__)

# PS3.8 9.3.2.2: at most 128 presentation contexts in one association request.
MAX_CONTEXTS = 128
UNCOMPRESSED = (str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian))


def store_contexts(pairs: Iterable[tuple[str, str]]) -> list[PresentationContext]:
    """Contexts for sending objects of these (SOP class, stored transfer syntax) pairs."""
    stored: dict[str, list[str]] = {}
    for sop_class, syntax in pairs:
        syntaxes = stored.setdefault(sop_class, [])
        if syntax not in syntaxes:
            syntaxes.append(syntax)
    fallbacks: list[PresentationContext] = []
    exact: list[PresentationContext] = []
    for sop_class, syntaxes in stored.items():
        exact.extend(build_context(sop_class, syntax) for syntax in syntaxes)
        rest = [syntax for syntax in UNCOMPRESSED if syntax not in syntaxes]
        if rest:
            fallbacks.append(build_context(sop_class, rest))
    if len(fallbacks) > MAX_CONTEXTS:
        log.warning("%d SOP classes: only %d can be proposed", len(stored), MAX_CONTEXTS)
        return fallbacks[:MAX_CONTEXTS]
    # Over the limit, a class keeps its fallback (send transcoded) before others' exact ones.
    return exact[: MAX_CONTEXTS - len(fallbacks)] + fallbacks
