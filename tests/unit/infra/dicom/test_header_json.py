"""Our fast header JSON must say what pydicom's own DICOM JSON says, for every test file."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file, get_testdata_files

from infra.dicom.header_json import header_json


def _normalise(value: Any) -> Any:
    """Differences the standard allows: trimmed padding, null for an empty value, no Value
    for an empty sequence, and where bulk data lives."""
    if isinstance(value, dict):
        if value.get("vr") == "SQ" and value.get("Value") == []:
            return {"vr": "SQ"}
        if "BulkDataURI" in value:
            return {"vr": value["vr"], "BulkDataURI": "bulk"}
        return {key: _normalise(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    if isinstance(value, str):
        return value.strip() or None
    return value


def _files() -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = get_testdata_files("*")
    return sorted(name for name in names if name.endswith(".dcm"))


@pytest.mark.parametrize("path", _files(), ids=lambda p: Path(p).name)
def test_same_as_pydicom(path: str) -> None:
    data = Path(path).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reference = dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
            expected = reference.to_json_dict(1024, lambda _: "bulk")
        except Exception:  # noqa: BLE001 - a file pydicom cannot convert proves nothing here
            pytest.skip("pydicom itself cannot convert this file")
        ours = header_json(
            dcmread(io.BytesIO(data), stop_before_pixels=True, force=True), lambda p: p
        )
    expected = {k: v for k, v in expected.items() if not k.startswith("0002") and k[4:] != "0000"}
    assert _normalise(ours) == _normalise(expected)


def test_bulk_data_uri_names_the_tag_path() -> None:
    ds = dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    ds.add_new(0x00880200, "SQ", [])
    icon = Dataset()
    icon.add_new(0x7FE00010, "OB", b"\0" * 4096)
    ds[0x00880200].value = [icon]
    ours = header_json(ds, lambda path: f"bulkdata/{path}")
    assert ours["00880200"]["Value"][0]["7FE00010"] == {
        "vr": "OB",
        "BulkDataURI": "bulkdata/00880200/0/7FE00010",
    }


def test_a_malformed_value_is_left_out_not_refused() -> None:
    """badVR.dcm has InstanceNumber "1A": the instance is still described (and stored)."""
    from infra.dicom.header import read_header

    data = Path(get_testdata_file("badVR.dcm")).read_bytes()  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = read_header(data, metadata=True)
    assert header.metadata is not None
    assert header.metadata["00200013"] == {"vr": "IS"}
    assert header.metadata["00200011"] == {"vr": "IS", "Value": [1]}
