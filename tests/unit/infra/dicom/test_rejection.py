"""Reading IOCM rejection notes from the header JSON a received event carries."""

from __future__ import annotations

from pydicom.sr.codedict import codes

from infra.dicom.header import read_header
from infra.dicom.rejection import rejection_note
from tests.dicom_factory import ct_series, key_object_selection, part10_bytes


def _header(ds: object) -> tuple[str, dict[str, object]]:
    header = read_header(part10_bytes(ds), metadata=True)  # type: ignore[arg-type]
    assert header.metadata is not None
    return header.sop_class_uid, header.metadata


def test_a_rejection_note_lists_its_instances_per_series() -> None:
    first = list(ct_series(3, size=8))
    study = str(first[0].StudyInstanceUID)
    second = list(ct_series(2, size=8, study_uid=study))
    kos = key_object_selection([first[0], first[2], second[1]])
    note = rejection_note(*_header(kos))
    assert note is not None
    assert (note.reason_code, note.reason) == ("113001", "Rejected for Quality Reasons")
    assert note.sop_instance_uid == kos.SOPInstanceUID and note.study_instance_uid == study
    found = {s.series_instance_uid: s.sop_instance_uids for s in note.scopes}
    assert found == {
        first[0].SeriesInstanceUID: [first[0].SOPInstanceUID, first[2].SOPInstanceUID],
        second[0].SeriesInstanceUID: [second[1].SOPInstanceUID],
    }
    assert {s.study_instance_uid for s in note.scopes} == {study}
    # What the scope covers is exactly what the note lists.
    [scope] = [s for s in note.scopes if s.series_instance_uid == first[0].SeriesInstanceUID]
    assert not scope.covers(study, str(first[1].SeriesInstanceUID), str(first[1].SOPInstanceUID))


def test_every_iocm_title_rejects_and_other_key_objects_do_not() -> None:
    images = list(ct_series(1, size=8))
    for title, code in (
        (codes.DCM.IncorrectModalityWorklistEntry, "113038"),
        (codes.DCM.DataRetentionPolicyExpired, "113039"),
    ):
        note = rejection_note(*_header(key_object_selection(images, title)))
        assert note is not None and note.reason_code == code
    assert rejection_note(*_header(key_object_selection(images, codes.DCM.OfInterest))) is None
    assert rejection_note(*_header(images[0])) is None
