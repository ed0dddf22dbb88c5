"""Bring what a STOW-RS client sent into the DICOM File Format without touching the dataset.

PS3.18 asks for Part-10 files, but common clients (dicomweb-client with pydicom 3, for one)
send the File Meta group without the 128-byte preamble and "DICM" prefix, sometimes without
the group length. Such objects get a proper preamble and File Meta; the dataset bytes that
follow are kept exactly as sent.
"""

from __future__ import annotations

import hashlib
import io

from pydicom.filebase import DicomBytesIO
from pydicom.filereader import _read_file_meta_info
from pydicom.filewriter import write_file_meta_info

PREAMBLE = b"\x00" * 128 + b"DICM"
_META_GROUP = b"\x02\x00"


def normalize_part10(data: bytes) -> bytes:
    """The object as a Part-10 file; unchanged when it already is one or cannot be helped."""
    if data[128:132] == b"DICM" or not data.startswith(_META_GROUP):
        return data
    stream = io.BytesIO(data)
    try:
        meta = _read_file_meta_info(stream)
    except Exception:  # noqa: BLE001 - leave it to the header check to explain
        return data
    dataset = data[stream.tell() :]
    out = DicomBytesIO()
    out.write(PREAMBLE)
    write_file_meta_info(out, meta, enforce_standard=True)
    return out.getvalue() + dataset


def dataset_offset(part10: bytes) -> int:
    """Where the data set starts: after the preamble and File Meta group (0 without them)."""
    if part10[128:132] != b"DICM":
        return 0
    stream = io.BytesIO(part10)
    stream.seek(132)
    _read_file_meta_info(stream)
    return stream.tell()


def dataset_sha256(part10: bytes) -> str:
    """SHA-256 of the data set as encoded, without the File Meta group: that group is each
    receiver's own (its implementation, the AE title the object came from), so two archives
    holding the same object agree on this digest and not on the file's."""
    return hashlib.sha256(memoryview(part10)[dataset_offset(part10) :]).hexdigest()
