"""Large synthetic instances on disk and a client that streams them as one STOW-RS body."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pydicom.uid import MultiFrameGrayscaleWordSecondaryCaptureImageStorage, generate_uid

from tests.dicom_factory import new_dataset

FRAME_BYTES = 512 * 512 * 2
READ_CHUNK = 1 << 20


def write_multiframe_series(folder: Path, count: int, frames: int) -> list[Path]:
    """`count` multi-frame objects of `frames` 512x512 16-bit frames (0.5 MiB each) in one
    study; the pixels are generated once and shared, the UIDs are new for every object."""
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(7).integers(0, 4096, frames * FRAME_BYTES // 2, np.uint16)
    pixel_bytes = pixels.tobytes()
    study, series = generate_uid(), generate_uid()
    paths = []
    for number in range(1, count + 1):
        ds = new_dataset(MultiFrameGrayscaleWordSecondaryCaptureImageStorage, study, series)
        ds.PatientID, ds.PatientName, ds.Modality = "TEST-LARGE", "Large^Stow", "OT"
        ds.SeriesNumber, ds.InstanceNumber = 1, number
        ds.NumberOfFrames = frames
        ds.Rows = ds.Columns = 512
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation, ds.SamplesPerPixel = 0, 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelData = pixel_bytes
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


class StreamedBody:
    """A multipart/related body read from files while it is sent: the client never holds
    more than one read chunk of it."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.boundary = uuid.uuid4().hex
        self.sent = 0

    @property
    def content_type(self) -> str:
        return f'multipart/related; type="application/dicom"; boundary={self.boundary}'

    def _head(self) -> bytes:
        return f"--{self.boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()

    def _tail(self) -> bytes:
        return f"--{self.boundary}--\r\n".encode()

    def __len__(self) -> int:
        overhead = len(self._head()) + 2
        return sum(p.stat().st_size + overhead for p in self.paths) + len(self._tail())

    def __iter__(self) -> Iterator[bytes]:
        for path in self.paths:
            yield from self._count(self._head())
            with path.open("rb") as handle:
                while chunk := handle.read(READ_CHUNK):
                    yield from self._count(chunk)
            yield from self._count(b"\r\n")
        yield from self._count(self._tail())

    def _count(self, chunk: bytes) -> Iterator[bytes]:
        self.sent += len(chunk)
        yield chunk
