"""The de-identification transform against the profile: every element, nested ones too."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.dataset import Dataset

from infra.dicom.deidentify.clean import shift_date, shift_datetime
from infra.dicom.deidentify.keyed import DeidentificationKey
from infra.dicom.deidentify.profile import Action, action_for, basic_code
from infra.dicom.deidentify.transform import DeidentificationRefused, deidentify
from schemas.deidentify import DeidentifyOptions
from tests import deid_factory as phi
from tests.deid_factory import identified_ct_series, referencing_sr
from tests.deid_scan import elements, kept_values, text_of
from tests.dicom_factory import part10_bytes

KEY = DeidentificationKey(b"unit-test-key-" * 3)
UID = re.compile(r"^2\.25\.[0-9]+$")

options_strategy = st.builds(
    DeidentifyOptions,
    retain_longitudinal_modified_dates=st.booleans(),
    retain_patient_characteristics=st.booleans(),
    clean_descriptors=st.booleans(),
    retain_device_identity=st.booleans(),
)


@pytest.fixture(scope="module")
def originals() -> list[bytes]:
    cts = identified_ct_series(3, size=16)
    return [part10_bytes(ds) for ds in [*cts, referencing_sr(cts)]]


def read(data: bytes) -> Dataset:
    return dcmread(io.BytesIO(data))


@settings(max_examples=12, deadline=None)
@given(options=options_strategy)
def test_nothing_the_profile_removes_or_replaces_keeps_its_value(
    originals: list[bytes], options: DeidentifyOptions
) -> None:
    for data in originals:
        original = read(data)
        copy = deidentify(data, KEY, options).dataset
        assert kept_values(original, copy, options) == []
        assert copy.PatientID != original.PatientID
        assert str(copy.PatientName) != str(original.PatientName)
        assert copy.PatientIdentityRemoved == "YES"
        assert copy.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        # Nor does any identifying value survive anywhere, in any attribute.
        everything = text_of(copy)
        for value in (
            phi.PATIENT_ID,
            "Doe",
            "Jonathan",
            phi.INSTITUTION,
            "House",
            "Carla",
            "OLD-0815",
            "ACC-20261127-42",
            phi.BIRTH_DATE,
            "Boston",
            "RP-77",
        ):
            assert value not in everything, value
        assert ("CTROOM7" in everything) == options.retain_device_identity
        assert ("SN-998877" in everything) == options.retain_device_identity


@settings(max_examples=8, deadline=None)
@given(options=options_strategy)
def test_private_attributes_are_gone_unless_safe_listed(
    originals: list[bytes], options: DeidentifyOptions
) -> None:
    copy = deidentify(originals[0], KEY, options).dataset
    private = {int(e.tag) for _, e in elements(copy) if e.tag.is_private}  # type: ignore[attr-defined]
    assert private == {0x00430010, 0x00431039}  # GEMS_PARM_01 and its b-value
    assert copy[0x00431039].value == [1000, 0, 0, 0]
    assert "Retain Safe Private Option" in copy.DeidentificationMethod


def test_uids_are_consistent_across_the_study_its_references_and_runs(
    originals: list[bytes],
) -> None:
    options = DeidentifyOptions()
    copies = [deidentify(data, KEY, options).dataset for data in originals]
    cts, sr = copies[:-1], copies[-1]
    assert len({c.StudyInstanceUID for c in copies}) == 1
    assert len({c.FrameOfReferenceUID for c in cts}) == 1
    sops = {c.SOPInstanceUID for c in cts}
    for c in copies:
        assert UID.match(c.SOPInstanceUID) and len(c.SOPInstanceUID) <= 64
        assert c.file_meta.MediaStorageSOPInstanceUID == c.SOPInstanceUID
        assert c.SOPClassUID == read(originals[copies.index(c)]).SOPClassUID
    referenced = {
        e.value
        for _, e in elements(sr)
        if int(e.tag) == 0x00081155  # type: ignore[attr-defined]
    }
    assert referenced == sops
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == sr.StudyInstanceUID
    assert evidence.ReferencedSeriesSequence[0].SeriesInstanceUID == cts[0].SeriesInstanceUID
    assert cts[1].ReferencedImageSequence[0].ReferencedSOPInstanceUID == cts[0].SOPInstanceUID
    # The same input gives the same bytes in a later run; another key, other UIDs.
    again = deidentify(originals[0], KEY, options)
    assert again.part10() == deidentify(originals[0], KEY, options).part10()
    other = deidentify(originals[0], DeidentificationKey(b"another key"), options).dataset
    assert other.SOPInstanceUID != cts[0].SOPInstanceUID


def test_pixel_data_is_untouched(originals: list[bytes]) -> None:
    for data in originals[:-1]:
        assert deidentify(data, KEY, DeidentifyOptions()).dataset.PixelData == read(data).PixelData


def test_dates_move_by_one_keyed_offset_per_patient(originals: list[bytes]) -> None:
    result = deidentify(originals[-1], KEY, DeidentifyOptions())
    offset = result.replaced.date_offset_days
    assert 365 <= offset <= 3652
    original, copy = read(originals[-1]), result.dataset
    moved = dt.datetime.strptime(original.StudyDate, "%Y%m%d") - dt.timedelta(days=offset)
    assert copy.StudyDate == moved.strftime("%Y%m%d")
    assert copy.LongitudinalTemporalInformationModified == "MODIFIED"
    assert copy.StudyTime == original.StudyTime  # whole days: times stay
    for data in originals:
        assert deidentify(data, KEY, DeidentifyOptions()).replaced.date_offset_days == offset
    removed = read(
        deidentify(
            originals[0], KEY, DeidentifyOptions(retain_longitudinal_modified_dates=False)
        ).part10()
    )
    assert removed.StudyDate == "" and removed.LongitudinalTemporalInformationModified == "REMOVED"
    assert removed.AcquisitionDate == ""


def test_options_keep_what_they_promise(originals: list[bytes]) -> None:
    basic = read(deidentify(originals[0], KEY, DeidentifyOptions()).part10())
    assert basic.PatientSex == "" and "PatientAge" not in basic and "PatientWeight" not in basic
    assert "StudyDescription" not in basic and basic.StationName == "ANONYMIZED"
    every = DeidentifyOptions(
        retain_patient_characteristics=True, clean_descriptors=True, retain_device_identity=True
    )
    kept = deidentify(originals[0], KEY, every).dataset
    assert (kept.PatientSex, kept.PatientAge, kept.PatientWeight) == ("M", "068Y", 81)
    assert kept.StationName == phi.STATION and kept.DeviceSerialNumber == phi.SERIAL
    assert kept.StudyDescription == "CT chest *** follow-up ***"
    assert kept.SeriesDescription == "Axial 5mm"
    codes = [item.CodeValue for item in kept.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107", "113108", "113105", "113109", "113111"]


def test_sr_text_is_cleaned_of_the_patients_name(originals: list[bytes]) -> None:
    copy = deidentify(originals[-1], KEY, DeidentifyOptions()).dataset
    text = copy.ContentSequence[0].TextValue
    assert "Doe" not in text and "Jonathan" not in text and text.startswith("Nodule unchanged")


def test_burned_in_annotation_is_refused() -> None:
    ds = identified_ct_series(1, size=8)[0]
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(DeidentificationRefused, match="BurnedInAnnotation"):
        deidentify(part10_bytes(ds), KEY, DeidentifyOptions())
    with pytest.raises(DeidentificationRefused, match="not a readable DICOM"):
        deidentify(b"not dicom at all", KEY, DeidentifyOptions())


def test_the_table_is_the_published_one() -> None:
    options = DeidentifyOptions(retain_longitudinal_modified_dates=False)
    assert basic_code(0x00100010) == "Z"  # Patient's Name
    assert basic_code(0x00080018) == "U"  # SOP Instance UID
    assert basic_code(0x00080080) == "X/Z/D"  # Institution Name
    assert basic_code(0x60023000) == "X"  # Overlay Data, a repeating group
    assert basic_code(0x00080016) is None  # SOP Class UID: not listed, kept
    assert action_for(0x00080020, options) is Action.EMPTY  # Study Date
    assert action_for(0x00080020, DeidentifyOptions()) is Action.CLEAN


@given(uid=st.from_regex(r"\A[1-9][0-9]{0,3}(\.[1-9][0-9]{0,8}){1,12}\Z"))
def test_keyed_uids_are_valid_and_repeatable(uid: str) -> None:
    new = KEY.uid(uid)
    assert UID.match(new) and len(new) <= 64 and new == KEY.uid(uid) and new != uid


@given(
    day=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 1, 1)),
    days=st.integers(365, 3652),
)
def test_date_shift_moves_dates_and_datetimes_alike(day: dt.date, days: int) -> None:
    moved = (day - dt.timedelta(days=days)).strftime("%Y%m%d")
    assert shift_date(day.strftime("%Y%m%d"), days) == moved
    assert (
        shift_datetime(day.strftime("%Y%m%d") + "101500.25+0100", days) == moved + "101500.25+0100"
    )
