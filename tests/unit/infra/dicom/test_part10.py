from __future__ import annotations

import io

import pydicom

from infra.dicom.header import read_header
from infra.dicom.part10 import normalize_part10
from tests.dicom_factory import ct_dataset, part10_bytes


def test_file_meta_without_preamble_gets_one_and_keeps_the_dataset_bytes() -> None:
    ds = ct_dataset("1.2.3", "1.2.3.4", 1, size=8)
    proper = part10_bytes(ds)
    bare = io.BytesIO()
    pydicom.dcmwrite(bare, ds)  # pydicom 3 writes no preamble unless asked
    assert bare.getvalue()[128:132] != b"DICM"
    fixed = normalize_part10(bare.getvalue())
    assert fixed[128:132] == b"DICM"
    assert read_header(fixed).sop_instance_uid == ds.SOPInstanceUID
    assert fixed.endswith(proper[-(len(ds.PixelData) + 200) :])


def test_proper_part10_and_garbage_are_left_alone() -> None:
    proper = part10_bytes(ct_dataset("1.2.3", "1.2.3.4", 1, size=8))
    assert normalize_part10(proper) is proper
    assert normalize_part10(b"garbage") == b"garbage"
