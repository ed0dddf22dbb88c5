"""Transcoding keeps the pixels (or, from lossy sources, their decoded values) and the header."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from infra.dicom.transcode import TranscodeError, choose_transfer_syntax, transcode

NATIVE = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian]
LOSSLESS_ENCODED = [RLELossless, JPEGLSLossless, JPEG2000Lossless]


def _testdata(name: str) -> bytes:
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(str(path)).read_bytes()


def _read(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def _reference(name: str) -> np.ndarray:
    return _read(_testdata(name)).pixel_array


# Compressed or big-endian sources with their uncompressed reference (lossless pairs).
LOSSLESS_SOURCES = [
    ("MR_small_RLE.dcm", "MR_small.dcm"),
    ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
    ("MR_small_bigendian.dcm", "MR_small.dcm"),
    ("MR_small_implicit.dcm", "MR_small.dcm"),
    ("rtdose_rle.dcm", "rtdose.dcm"),
    ("rtdose_expb.dcm", "rtdose.dcm"),
    ("SC_rgb_rle_2frame.dcm", "SC_rgb_rle_2frame.dcm"),
    ("SC_rgb_rle_16bit_2frame.dcm", "SC_rgb_rle_16bit_2frame.dcm"),
    ("SC_rgb_small_odd_big_endian.dcm", "SC_rgb_small_odd.dcm"),
    ("ExplVR_BigEnd.dcm", "ExplVR_BigEnd.dcm"),
    ("liver_expb_1frame.dcm", "liver_1frame.dcm"),
    ("image_dfl.dcm", "image_dfl.dcm"),
]


@pytest.mark.parametrize("target", NATIVE)
@pytest.mark.parametrize(("source", "reference"), LOSSLESS_SOURCES)
def test_lossless_sources_decode_to_identical_native_pixels(
    source: str, reference: str, target: str
) -> None:
    original = _read(_testdata(source))
    out = _read(transcode(_testdata(source), target))
    assert out.file_meta.TransferSyntaxUID == target
    np.testing.assert_array_equal(out.pixel_array, _reference(reference))
    # Identity and the rest of the header survive.
    assert out.SOPInstanceUID == original.SOPInstanceUID
    assert out.file_meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID
    for keyword in ("PatientName", "StudyInstanceUID", "SeriesInstanceUID", "Rows", "Columns"):
        assert out.get(keyword) == original.get(keyword), keyword


@pytest.mark.parametrize("target", LOSSLESS_ENCODED)
@pytest.mark.parametrize(
    ("source", "reference"),
    [
        ("MR_small.dcm", "MR_small.dcm"),
        ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
        ("MR_small_bigendian.dcm", "MR_small.dcm"),
        ("SC_rgb_rle_2frame.dcm", "SC_rgb_rle_2frame.dcm"),
        ("CT_small.dcm", "CT_small.dcm"),
    ],
)
def test_encoding_into_lossless_syntaxes_round_trips(
    source: str, reference: str, target: str
) -> None:
    out = _read(transcode(_testdata(source), target))
    assert out.file_meta.TransferSyntaxUID == target
    assert out.PixelData[:4] != b""  # encapsulated: pydicom decodes it again below
    np.testing.assert_array_equal(out.pixel_array, _reference(reference))


@pytest.mark.parametrize(
    "source",
    ["SC_rgb_dcmtk_+eb+cy+np.dcm", "examples_ybr_color.dcm", "SC_rgb_jpeg_dcmtk.dcm"],
)
def test_jpeg_ybr_becomes_rgb_with_the_decoded_values(source: str) -> None:
    decoded = _read(_testdata(source)).pixel_array  # pydicom converts YBR to RGB too
    out = _read(transcode(_testdata(source), ExplicitVRLittleEndian))
    assert out.PhotometricInterpretation == "RGB"
    assert out.PlanarConfiguration == 0
    assert out.get("NumberOfFrames", 1) == _read(_testdata(source)).get("NumberOfFrames", 1)
    np.testing.assert_array_equal(out.pixel_array, decoded)


def test_lossy_jpeg_stays_close_to_the_uncompressed_original() -> None:
    out = _read(transcode(_testdata("SC_rgb_small_odd_jpeg.dcm"), ExplicitVRLittleEndian))
    reference = _reference("SC_rgb_small_odd.dcm").astype(int)
    assert np.abs(out.pixel_array.astype(int) - reference).mean() < 8


def test_jpeg_lossless_process14_decodes() -> None:
    out = _read(transcode(_testdata("SC_rgb_jpeg_gdcm.dcm"), ImplicitVRLittleEndian))
    assert out.PhotometricInterpretation == "RGB"
    assert out.pixel_array.shape == (100, 100, 3)


def test_same_syntax_returns_the_stored_bytes_unchanged() -> None:
    data = _testdata("MR_small_RLE.dcm")
    assert transcode(data, RLELossless) is data


def test_unknown_decoder_is_a_clear_error() -> None:
    ds = _read(_testdata("MR_small_RLE.dcm"))
    ds.file_meta.TransferSyntaxUID = HTJ2KLossless  # as long as the JPEG XL UID below
    buffer = io.BytesIO()
    ds.save_as(buffer)
    jpeg_xl = buffer.getvalue().replace(HTJ2KLossless.encode(), b"1.2.840.10008.1.2.4.110")
    with pytest.raises(TranscodeError, match=r"no decoder .*1\.2\.840\.10008\.1\.2\.4\.110"):
        transcode(jpeg_xl, ExplicitVRLittleEndian)


def test_unproducible_target_is_a_clear_error() -> None:
    with pytest.raises(TranscodeError, match="cannot produce"):
        transcode(_testdata("MR_small.dcm"), JPEGBaseline8Bit)
    with pytest.raises(TranscodeError, match="cannot produce"):
        transcode(_testdata("MR_small.dcm"), ExplicitVRBigEndian)


def test_encoder_limits_are_reported_not_crashed() -> None:
    with pytest.raises(TranscodeError, match="JPEG-LS"):
        transcode(_testdata("rtdose.dcm"), JPEGLSLossless)  # 32 bits allocated


def test_choose_prefers_the_stored_syntax_then_lossless() -> None:
    assert choose_transfer_syntax(RLELossless, [ExplicitVRLittleEndian, RLELossless]) == (
        RLELossless
    )
    assert (
        choose_transfer_syntax(JPEGBaseline8Bit, [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
        == ExplicitVRLittleEndian
    )
    assert choose_transfer_syntax(ExplicitVRLittleEndian, [JPEGLSLossless]) == JPEGLSLossless
    assert choose_transfer_syntax(ExplicitVRLittleEndian, [JPEGBaseline8Bit]) is None
    assert choose_transfer_syntax("1.2.840.10008.1.2.4.110", [ExplicitVRLittleEndian]) is None
    # Without pixel data, no decoder is needed.
    assert (
        choose_transfer_syntax(
            "1.2.840.10008.1.2.4.110", [ExplicitVRLittleEndian], has_pixels=False
        )
        == ExplicitVRLittleEndian
    )
