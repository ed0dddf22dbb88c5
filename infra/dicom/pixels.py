"""Frames of a stored object: their stored bytes, their decoded pixels, and rendered images.

A frame request touches one frame: native pixel data is sliced, encapsulated pixel data is
split into fragments by the Basic (or Extended) Offset Table, and only the frame asked for
is decoded. Rendering follows PS3.3 C.11 (modality LUT, then VOI window, then presentation:
MONOCHROME1 inverted) and PS3.18 8.3.5 (`window`, `viewport`, `quality`).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.encaps import get_frame
from pydicom.multival import MultiValue
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.uid import ExplicitVRBigEndian

from infra.dicom.transcode import can_decode, syntax_name
from infra.dicom.transfer_syntaxes import NATIVE_SYNTAXES

PIXEL_DATA = 0x7FE00010


class PixelError(ValueError):
    """The object has no such frame or its pixels cannot be decoded; `reason` says why.

    `missing` is True when what was asked for is not there (no pixel data, no such frame),
    as opposed to being there but not decodable here.
    """

    def __init__(self, reason: str, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing


class WindowFunction(StrEnum):
    """VOI LUT Function (PS3.3 C.11.2.1.2)."""

    LINEAR = "linear"
    LINEAR_EXACT = "linear-exact"
    SIGMOID = "sigmoid"


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: WindowFunction = WindowFunction.LINEAR


@dataclass(frozen=True)
class Viewport:
    """Output size, and optionally the source region (sx, sy, sw, sh) to show in it."""

    width: int
    height: int
    region: tuple[int, int, int, int] | None = None


class ImageFormat(StrEnum):
    JPEG = "image/jpeg"
    PNG = "image/png"


@dataclass(frozen=True)
class RenderOptions:
    format: ImageFormat = ImageFormat.JPEG
    window: Window | None = None
    viewport: Viewport | None = None
    quality: int = 90


def load_dataset(part10: bytes) -> Dataset:
    """Parse the whole object; pixel data stays encoded bytes until a frame is decoded."""
    try:
        return dcmread(io.BytesIO(part10))
    except Exception as exc:
        raise PixelError(f"the stored object cannot be parsed: {exc}") from exc


def transfer_syntax(ds: Dataset) -> str:
    return str(ds.file_meta.get("TransferSyntaxUID", "") or "")


def number_of_frames(ds: Dataset) -> int:
    if "PixelData" not in ds:
        return 0
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def is_encapsulated(ds: Dataset) -> bool:
    return transfer_syntax(ds) not in NATIVE_SYNTAXES


def check_frame(ds: Dataset, frame: int) -> None:
    """`frame` is 1-based, as in WADO-RS frame lists."""
    count = number_of_frames(ds)
    if count == 0:
        raise PixelError("the instance has no pixel data", missing=True)
    if not 1 <= frame <= count:
        raise PixelError(
            f"frame {frame} does not exist: the instance has {count} frame(s)", missing=True
        )


def stored_frame(ds: Dataset, frame: int) -> bytes:
    """The frame as stored: a compressed bitstream, or native little-endian pixel bytes."""
    check_frame(ds, frame)
    if not is_encapsulated(ds):
        return native_frame(ds, frame)
    count = number_of_frames(ds)
    offsets = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    try:
        return bytes(
            get_frame(ds.PixelData, frame - 1, number_of_frames=count, extended_offsets=offsets)
        )
    except Exception as exc:
        raise PixelError(f"frame {frame} cannot be found in the encapsulated data: {exc}") from exc


def native_frame(ds: Dataset, frame: int) -> bytes:
    """The frame's uncompressed pixel bytes, little endian, colour as stored or RGB if decoded.

    Native little-endian data is sliced without decoding; anything else is decoded.
    """
    check_frame(ds, frame)
    syntax = transfer_syntax(ds)
    bits_allocated = int(ds.get("BitsAllocated", 16))
    if syntax in NATIVE_SYNTAXES and syntax != ExplicitVRBigEndian and bits_allocated % 8 == 0:
        length = (
            int(ds.Rows)
            * int(ds.Columns)
            * int(ds.get("SamplesPerPixel", 1))
            * (bits_allocated // 8)
        )
        if str(ds.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
            length = length * 2 // 3  # two chroma samples shared by each pair of pixels
        start = (frame - 1) * length
        data = bytes(ds.PixelData[start : start + length])
        if len(data) != length:
            raise PixelError(f"the pixel data ends before frame {frame}")
        return data
    arr = decode_frame(ds, frame)
    if bits_allocated == 1:
        return np.packbits(arr.ravel(), bitorder="little").tobytes()
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def decode_frame(ds: Dataset, frame: int) -> np.ndarray:
    """The frame as an array (rows, columns[, samples]); YBR comes out as RGB."""
    check_frame(ds, frame)
    syntax = transfer_syntax(ds)
    if not can_decode(syntax):
        raise PixelError(f"no decoder is available for {syntax_name(syntax)}")
    try:
        arr, _ = get_decoder(syntax).as_array(ds, index=frame - 1)
    except Exception as exc:
        raise PixelError(f"decoding frame {frame} ({syntax_name(syntax)}) failed: {exc}") from exc
    return arr


def render_frame(ds: Dataset, frame: int, options: RenderOptions) -> bytes:
    """The frame as a JPEG or PNG, windowed and scaled as asked."""
    arr = decode_frame(ds, frame)
    image = to_display(ds, arr, options.window)
    if options.viewport is not None:
        image = fit_viewport(image, options.viewport)
    return encode_image(image, options)


def to_display(ds: Dataset, arr: np.ndarray, window: Window | None) -> Image.Image:
    """8-bit grey or RGB, the way a viewer would show it by default."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    samples = int(ds.get("SamplesPerPixel", 1))
    if photometric == "PALETTE COLOR" and samples == 1:
        rgb = apply_color_lut(arr, ds)
        return Image.fromarray(_scale_to_uint8(rgb, _lut_max(rgb)), mode="RGB")
    if samples > 1:
        if arr.dtype != np.uint8:
            arr = _scale_to_uint8(arr, float(2 ** int(ds.get("BitsStored", 8)) - 1))
        return Image.fromarray(np.ascontiguousarray(arr[..., :3]), mode="RGB")
    values = apply_modality_lut(arr, ds).astype(np.float64)
    grey = _apply_window(ds, values, window)
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return Image.fromarray(grey, mode="L")


def _apply_window(ds: Dataset, values: np.ndarray, window: Window | None) -> np.ndarray:
    if window is None:
        window = _window_from_dataset(ds)
    if window is None and "VOILUTSequence" in ds:
        out = apply_voi_lut(values, ds).astype(np.float64)
        low, high = float(out.min()), float(out.max())
        return _stretch(out, low, high)
    if window is None:
        # No window anywhere: show the frame's full range.
        return _stretch(values, float(values.min()), float(values.max()))
    return window_to_uint8(values, window)


def _window_from_dataset(ds: Dataset) -> Window | None:
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    try:
        c = float(center[0] if _is_multi(center) else center)
        w = float(width[0] if _is_multi(width) else width)
    except (TypeError, ValueError, IndexError):
        return None
    function = str(ds.get("VOILUTFunction", "LINEAR")).lower().replace("_", "-")
    try:
        chosen = WindowFunction(function)
    except ValueError:
        chosen = WindowFunction.LINEAR
    if w <= 0 or (chosen == WindowFunction.LINEAR and w < 1):
        return None
    return Window(c, w, chosen)


def _is_multi(value: object) -> bool:
    return isinstance(value, MultiValue | list | tuple)


def window_to_uint8(values: np.ndarray, window: Window) -> np.ndarray:
    """PS3.3 C.11.2.1.2: the VOI LUT functions, onto 0..255."""
    c, w = window.center, window.width
    if window.function == WindowFunction.SIGMOID:
        out = 255.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    elif window.function == WindowFunction.LINEAR_EXACT:
        out = ((values - c) / w + 0.5) * 255.0
    elif w <= 1:
        # Width 1: the linear ramp is empty, a threshold at the centre (C.11.2.1.2.1).
        out = np.where(values > c - 0.5, 255.0, 0.0)
    else:
        out = ((values - (c - 0.5)) / (w - 1) + 0.5) * 255.0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.clip(np.rint((values - low) / (high - low) * 255.0), 0, 255).astype(np.uint8)


def _lut_max(rgb: np.ndarray) -> float:
    return 255.0 if rgb.dtype == np.uint8 else 65535.0


def _scale_to_uint8(arr: np.ndarray, maximum: float) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    return np.clip(np.rint(arr.astype(np.float64) / max(maximum, 1.0) * 255.0), 0, 255).astype(
        np.uint8
    )


def fit_viewport(image: Image.Image, viewport: Viewport) -> Image.Image:
    """Crop to the region if given, then scale to fit the viewport keeping the aspect ratio."""
    if viewport.region is not None:
        sx, sy, sw, sh = viewport.region
        image = image.crop((sx, sy, sx + sw, sy + sh))
    scale = min(viewport.width / image.width, viewport.height / image.height)
    size = (max(1, math.floor(image.width * scale)), max(1, math.floor(image.height * scale)))
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS)


def encode_image(image: Image.Image, options: RenderOptions) -> bytes:
    out = io.BytesIO()
    if options.format == ImageFormat.PNG:
        image.save(out, format="PNG")
    else:
        image.save(out, format="JPEG", quality=options.quality)
    return out.getvalue()


def middle_frame(ds: Dataset) -> int:
    """The frame a thumbnail shows: the middle one, 1-based."""
    return number_of_frames(ds) // 2 + 1


def render_frames(data: bytes, frames: list[int] | None, options: RenderOptions) -> list[bytes]:
    """Rendered images of the frames asked for (None: the middle one)."""
    ds = load_dataset(data)
    if number_of_frames(ds) == 0:
        raise PixelError("the instance has no pixel data to render", missing=True)
    return [render_frame(ds, frame, options) for frame in (frames or [middle_frame(ds)])]
