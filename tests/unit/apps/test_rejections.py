"""The dispatcher's IOCM handler: which received instances start a rejection, and with what."""

from __future__ import annotations

import hashlib

from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from apps.rejections import rejection_input
from infra.dicom.header import read_header
from ingest.accept import Origin, instance_ref, received_event
from schemas.events import InstanceReceived
from tests.dicom_factory import ct_series, key_object_selection, part10_bytes


def received(ds: Dataset, calling_ae: str = "CT_SCANNER") -> InstanceReceived:
    data = part10_bytes(ds)
    header = read_header(data, metadata=True)
    ref = instance_ref(header, hashlib.sha256(data).hexdigest(), len(data))
    origin = Origin(via="dimse", calling_ae=calling_ae)
    return received_event(ref, header, "key", "spool", origin, None)


def test_a_rejection_note_starts_a_rejection_with_the_same_deletion_ids_each_time() -> None:
    images = list(ct_series(4, size=8, patient_id="IOCM-1"))
    other = list(ct_series(1, size=8, study_uid=str(images[0].StudyInstanceUID)))
    event = received(key_object_selection([images[1], images[3], other[0]]))
    job = rejection_input(event, grace_seconds=60)
    assert job is not None
    assert job.actor == "iocm:CT_SCANNER" and job.patient_id == "IOCM-1"
    assert job.grace_seconds == 60
    assert len(job.deletion_ids) == len(job.note.scopes) == 2
    assert len(set(job.deletion_ids)) == 2
    again = rejection_input(InstanceReceived.model_validate(event.model_dump()), 60)
    assert again is not None and again.deletion_ids == job.deletion_ids
    # Another note rejecting the same instances is another deletion.
    second = rejection_input(received(key_object_selection([images[1], images[3]])), 60)
    assert second is not None and set(second.deletion_ids).isdisjoint(job.deletion_ids)


def test_images_and_other_key_objects_start_nothing() -> None:
    images = list(ct_series(2, size=8))
    assert rejection_input(received(images[0]), 60) is None
    of_interest = key_object_selection(images, codes.DCM.OfInterest)
    assert rejection_input(received(of_interest), 60) is None
    no_header = received(key_object_selection(images)).model_copy(update={"metadata": None})
    assert rejection_input(no_header, 60) is None
