"""The data set digest ignores the File Meta group, which each receiver writes for itself."""

from __future__ import annotations

import hashlib

from pydicom.uid import ExplicitVRLittleEndian

from infra.dicom.part10 import dataset_sha256
from tests.dicom_factory import ct_series, part10_bytes


def test_same_data_set_under_different_file_meta_has_one_digest() -> None:
    ds = next(iter(ct_series(1, size=8)))
    first = part10_bytes(ds)
    ds.file_meta.SourceApplicationEntityTitle = "ANOTHERAE"
    ds.file_meta.ImplementationVersionName = "OTHER_1"
    second = part10_bytes(ds)
    assert first != second
    assert dataset_sha256(first) == dataset_sha256(second)
    ds.PatientName = "Changed^Name"
    assert dataset_sha256(part10_bytes(ds)) != dataset_sha256(first)


def test_bytes_without_a_preamble_are_hashed_whole() -> None:
    ds = next(iter(ct_series(1, size=8)))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    raw = part10_bytes(ds)[200:]
    assert dataset_sha256(raw) == hashlib.sha256(raw).hexdigest()
