"""Sending a stored object over an association: as stored when the peer takes its transfer
syntax, else re-encoded. Shared by the C-MOVE/C-GET SCP and the `pacs store` SCU."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset

from infra.dicom.transcode import TranscodeError, choose_transfer_syntax, syntax_name, transcode


def accepted_syntaxes(assoc: Any, sop_class: str) -> list[str]:
    """Transfer syntaxes on which we may send C-STOREs of `sop_class` over `assoc`."""
    return [
        str(cx.transfer_syntax[0])
        for cx in assoc.accepted_contexts
        if cx.abstract_syntax == sop_class and cx.as_scu
    ]


def prepare(part10: bytes, accepted: Sequence[str]) -> Dataset:
    """The dataset to send: as stored when the peer takes the stored syntax, else transcoded.

    Raises TranscodeError with the reason when neither is possible.
    """
    ds = dcmread(io.BytesIO(part10))
    stored = str(ds.file_meta.TransferSyntaxUID)
    target = choose_transfer_syntax(stored, accepted, has_pixels="PixelData" in ds)
    if target is None:
        offered = ", ".join(syntax_name(uid) for uid in accepted) or "nothing"
        raise TranscodeError(
            f"stored as {syntax_name(stored)}; the peer accepts {offered}, which we cannot make"
        )
    if target == stored:
        return ds
    return dcmread(io.BytesIO(transcode(part10, target)))
