"""Re-encode a stored Part-10 object in another transfer syntax (C-GET/C-MOVE, WADO).

Objects are stored exactly as received, in whatever syntax the sender chose. A peer or a
viewer that does not accept that syntax gets a copy re-encoded here: compressed pixel data is
decoded with whichever plugin pydicom finds (pylibjpeg, openjpeg, rle, gdcm, pyjpegls,
pillow) into native little endian, and re-encoded when the target is a compressed syntax
pydicom can write (RLE Lossless, JPEG-LS Lossless, JPEG 2000 Lossless). Every attribute other
than the pixel description (PhotometricInterpretation, PlanarConfiguration, NumberOfFrames)
and the File Meta's TransferSyntaxUID is kept as it was, SOP Instance UID included.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.dataelem import DataElement
from pydicom.filewriter import dcmwrite
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.encoders.base import get_encoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)
from pydicom.valuerep import VR

from infra.dicom.transfer_syntaxes import NATIVE_SYNTAXES

log = logging.getLogger(__name__)

# Native syntaxes we write (big endian is retired: we read it but never produce it).
_NATIVE_TARGETS = (
    str(ExplicitVRLittleEndian),
    str(ImplicitVRLittleEndian),
    str(DeflatedExplicitVRLittleEndian),
)
# Compressed syntaxes pydicom 3 has encoders for, all lossless.
_ENCODED_TARGETS = (str(JPEGLSLossless), str(JPEG2000Lossless), str(RLELossless))
# What a peer that does not take the stored syntax gets, best first: uncompressed costs no
# encoder time on our two cores, and every peer must accept Implicit VR LE anyway.
LOSSLESS_PREFERENCE = _NATIVE_TARGETS + _ENCODED_TARGETS

# gdcm's RLE encoder aborts the whole process (an uncaught C++ exception) on some inputs,
# so pydicom must not pick it: pylibjpeg-rle is the fast one.
# pylibjpeg-rle is fast but takes at most 16 bits; pydicom's own takes 32.
_ENCODING_PLUGINS = {str(RLELossless): ("pylibjpeg", "pydicom")}

# Value representations whose bytes follow the dataset's endianness, and their word size.
_SWAPPED_VRS = {VR.OW: 2, VR.OF: 4, VR.OL: 4, VR.OD: 8, VR.OV: 8}


class TranscodeError(Exception):
    """The object cannot be produced in the requested syntax; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def syntax_name(uid: str) -> str:
    """`JPEG-LS Lossless Image Compression (1.2.840.10008.1.2.4.80)`, or the bare UID."""
    name = UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


def can_decode(transfer_syntax: str) -> bool:
    """True when pixel data stored in this syntax can be turned into native pixels here."""
    if transfer_syntax in NATIVE_SYNTAXES:
        return True
    try:
        return bool(get_decoder(transfer_syntax).is_available)
    except NotImplementedError:
        return False


def can_encode(transfer_syntax: str) -> bool:
    """True when we can write pixel data in this syntax."""
    if transfer_syntax in _NATIVE_TARGETS:
        return True
    if transfer_syntax not in _ENCODED_TARGETS:
        return False
    try:
        return bool(get_encoder(transfer_syntax).is_available)
    except NotImplementedError:
        return False


def choose_transfer_syntax(
    stored: str, accepted: Sequence[str], has_pixels: bool = True
) -> str | None:
    """The syntax to send in: as stored if accepted, else the best lossless one we can make.

    None when the peer accepts nothing we can produce from the stored encoding.
    """
    if stored in accepted:
        return stored
    if has_pixels and not can_decode(stored):
        return None
    for candidate in LOSSLESS_PREFERENCE:
        if candidate in accepted and can_encode(candidate):
            return candidate
    return None


def transcode(part10: bytes, target_transfer_syntax: str) -> bytes:
    """The same object re-encoded in `target_transfer_syntax`; raises TranscodeError."""
    target = str(target_transfer_syntax)
    try:
        ds = dcmread(io.BytesIO(part10))
    except Exception as exc:
        raise TranscodeError(f"the stored object cannot be parsed: {exc}") from exc
    stored = str(ds.file_meta.get("TransferSyntaxUID", "") or "")
    if stored == target:
        return part10
    if not can_encode(target):
        raise TranscodeError(f"we cannot produce {syntax_name(target)}")
    has_pixels = "PixelData" in ds
    if not has_pixels and target in _ENCODED_TARGETS and _has_float_pixels(ds):
        raise TranscodeError(f"float pixel data cannot be encoded as {syntax_name(target)}")
    if has_pixels:
        if not can_decode(stored):
            raise TranscodeError(f"no decoder is available for {syntax_name(stored)}")
        needs_decode = stored not in _NATIVE_TARGETS or (
            target in _ENCODED_TARGETS and _encoders_reject_photometric(ds)
        )
        if needs_decode:
            _decode_to_native(ds, stored)
    if stored == str(ExplicitVRBigEndian):
        _swap_to_little_endian(ds)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if target in _NATIVE_TARGETS or not has_pixels:
        ds.file_meta.TransferSyntaxUID = UID(target)
    else:
        # compress() starts from native little endian and sets the File Meta syntax itself.
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        _compress(ds, target)
    out = io.BytesIO()
    try:
        dcmwrite(out, ds, enforce_file_format=True)
    except Exception as exc:
        raise TranscodeError(f"the re-encoded object cannot be written: {exc}") from exc
    log.debug("transcoded %s from %s to %s", ds.get("SOPInstanceUID", "?"), stored, target)
    return out.getvalue()


def _compress(ds: Dataset, target: str) -> None:
    failures: list[str] = []
    for plugin in _ENCODING_PLUGINS.get(target, ("",)):
        try:
            ds.compress(target, encoding_plugin=plugin, generate_instance_uid=False)
            return
        except Exception as exc:  # noqa: BLE001 - encoders raise many types for bad input
            failures.append(str(exc))
    raise TranscodeError(
        f"encoding as {syntax_name(target)} failed "
        f"({ds.get('PhotometricInterpretation', '?')}, {ds.get('BitsAllocated', '?')} bits "
        f"allocated): {'; '.join(failures)}"
    )


def _has_float_pixels(ds: Dataset) -> bool:
    return "FloatPixelData" in ds or "DoubleFloatPixelData" in ds


def _encoders_reject_photometric(ds: Dataset) -> bool:
    """pydicom's encoders take MONOCHROME*, PALETTE COLOR, RGB and YBR_FULL, not subsampled."""
    return str(ds.get("PhotometricInterpretation", "")) not in (
        "MONOCHROME1",
        "MONOCHROME2",
        "PALETTE COLOR",
        "RGB",
        "YBR_FULL",
    )


def _decode_to_native(ds: Dataset, stored: str) -> None:
    """Replace the pixel data by native little-endian frames, colour as RGB."""
    try:
        decoder = get_decoder(stored)
        frames: list[bytes] = []
        packed_bits: list[np.ndarray] = []
        image_pixel: dict[str, str | int] = {}
        bits_allocated = int(ds.BitsAllocated)
        # YBR comes out as RGB (pydicom's default). Frame by frame with as_array because
        # iter_array's sign correction writes into a read-only buffer for some JPEG 2000
        # streams (pydicom 3.0).
        for index in range(int(ds.get("NumberOfFrames", 1) or 1)):
            arr, image_pixel = decoder.as_array(ds, index=index)
            if bits_allocated == 1:
                packed_bits.append(arr.ravel())
            else:
                frames.append(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    except Exception as exc:
        raise TranscodeError(f"decoding {syntax_name(stored)} failed: {exc}") from exc
    if bits_allocated == 1:
        # Single-bit frames are not byte aligned: pack them all as one bit stream.
        frames = [np.packbits(np.concatenate(packed_bits), bitorder="little").tobytes()]
    pixel_bytes = b"".join(frames)
    if len(pixel_bytes) % 2:
        pixel_bytes += b"\x00"
    element = ds["PixelData"]
    element.value = pixel_bytes
    element.is_undefined_length = False
    element.VR = VR.OB if bits_allocated <= 8 else VR.OW
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if image_pixel:
        ds.PhotometricInterpretation = str(image_pixel["photometric_interpretation"])
        if int(ds.get("SamplesPerPixel", 1)) > 1:
            ds.PlanarConfiguration = image_pixel["planar_configuration"]
    ds._pixel_array = None
    ds._pixel_id = {}


def _swap_to_little_endian(ds: Dataset) -> None:
    """Big-endian OW/OF/OL/OD/OV values (not pixel data, already decoded) to little endian."""

    def swap(dataset: Dataset) -> None:
        for element in dataset:
            if element.VR == VR.SQ:
                for item in element.value:
                    swap(item)
            elif element.tag != 0x7FE00010 and element.VR in _SWAPPED_VRS:
                _swap_element(element, _SWAPPED_VRS[VR(element.VR)])

    swap(ds)


def _swap_element(element: DataElement, width: int) -> None:
    value = element.value
    if not isinstance(value, bytes | bytearray) or len(value) % width:
        return
    element.value = np.frombuffer(value, dtype=f">u{width}").astype(f"<u{width}").tobytes()
