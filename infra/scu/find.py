"""C-FIND: the matches a peer returns for an identifier."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pynetdicom.presentation import build_context

from infra.scu.identifier import MODELS, Level, Root, build_identifier
from infra.scu.peer import Peer, ScuError, associate

_PENDING = (0xFF00, 0xFF01)


def find(peer: Peer, root: Root, level: Level, keys: list[str]) -> list[Dataset]:
    """Every match, or ScuError with the peer's failure status and comment."""
    model = MODELS[(root, "find")]
    identifier = build_identifier(level, keys)
    assoc = associate(peer, [build_context(model)])
    matches: list[Dataset] = []
    try:
        for status, match in assoc.send_c_find(identifier, model):
            if "Status" not in status:
                raise ScuError(f"{peer} sent no C-FIND response (association lost)")
            if status.Status in _PENDING:
                if match is not None:
                    matches.append(match)
                continue
            if status.Status != 0x0000:
                comment = status.get("ErrorComment", "")
                raise ScuError(
                    f"{peer} answered C-FIND with 0x{status.Status:04X}"
                    + (f": {comment}" if comment else "")
                )
    finally:
        if assoc.is_established:
            assoc.release()
    return matches
