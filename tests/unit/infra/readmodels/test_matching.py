"""PS3.4 C.2.2.2 matching: over worklist items (the MWL SCP), and both front ends agreeing."""

from __future__ import annotations

import datetime as dt

import pytest
from pydicom.dataset import Dataset

from infra.readmodels.catalog.search import attribute
from infra.readmodels.matching import Conditions, matches, response
from ingest.dimse.worklist import coarse_query, item_dataset
from schemas.worklist import ScheduledStep, WorklistItemView

ITEM = WorklistItemView(
    item_id="i1",
    patient_name="Doe^John",
    patient_id="P1",
    accession_number="ACC1",
    study_instance_uid="1.2.3",
    scheduled_step=ScheduledStep(
        step_id="S1",
        station_ae_title="CT1",
        modality="CT",
        start_date=dt.date(2024, 3, 5),
        start_time=dt.time(9, 30),
    ),
)


def query(**step: str) -> Dataset:
    ds = Dataset()
    ds.PatientName = ""
    ds.PatientID = ""
    sps = Dataset()
    sps.ScheduledStationAETitle = ""
    sps.ScheduledProcedureStepStartDate = ""
    sps.Modality = ""
    for key, value in step.items():
        setattr(sps, key, value)
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def test_universal_query_matches_and_returns_the_requested_keys_only() -> None:
    identifier = query()
    candidate = item_dataset(ITEM)
    assert matches(identifier, candidate)
    found = response(identifier, candidate)
    assert found.PatientName == "Doe^John" and "AccessionNumber" not in found
    step = found.ScheduledProcedureStepSequence[0]
    assert (
        step.ScheduledStationAETitle == "CT1" and step.ScheduledProcedureStepStartDate == "20240305"
    )
    assert "ScheduledProcedureStepID" not in step


def test_station_modality_and_date_range_inside_the_sequence() -> None:
    candidate = item_dataset(ITEM)
    assert matches(query(ScheduledStationAETitle="CT1"), candidate)
    assert not matches(query(ScheduledStationAETitle="MR1"), candidate)
    assert matches(query(Modality="CT"), candidate)
    assert not matches(query(Modality="MR"), candidate)
    assert matches(query(ScheduledProcedureStepStartDate="20240301-20240310"), candidate)
    assert matches(query(ScheduledProcedureStepStartDate="-20240305"), candidate)
    assert matches(query(ScheduledProcedureStepStartDate="20240305-"), candidate)
    assert not matches(query(ScheduledProcedureStepStartDate="20240306-"), candidate)
    assert not matches(query(ScheduledProcedureStepStartDate="20240304"), candidate)


def test_patient_name_wildcards_ignore_case() -> None:
    candidate = item_dataset(ITEM)
    for pattern, expected in [
        ("doe*", True),
        ("DOE^JOHN", True),
        ("D?e^*", True),
        ("Smith*", False),
    ]:
        identifier = query()
        identifier.PatientName = pattern
        assert matches(identifier, candidate) is expected, pattern


def test_patient_id_is_case_sensitive_and_uid_lists_match_any() -> None:
    candidate = item_dataset(ITEM)
    identifier = query()
    identifier.PatientID = "p1"
    assert not matches(identifier, candidate)
    identifier = query()
    identifier.StudyInstanceUID = ["9.9", "1.2.3"]
    assert matches(identifier, candidate)


def test_exact_keys_become_read_model_filters() -> None:
    identifier = query(
        ScheduledStationAETitle="CT1", ScheduledProcedureStepStartDate="20240301-20240310"
    )
    identifier.PatientID = "P*"
    q = coarse_query(identifier)
    assert q.station_ae_title == "CT1" and q.modality is None and q.patient_id is None
    assert q.date_from == dt.date(2024, 3, 1) and q.date_to == dt.date(2024, 3, 10)


def test_step_status_is_the_items_real_state_and_a_status_key_asks_for_exactly_it() -> None:
    started = item_dataset(ITEM.model_copy(update={"step_status": "STARTED"}))
    assert started.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "STARTED"
    assert matches(query(ScheduledProcedureStepStatus="STARTED"), started)
    assert not matches(query(ScheduledProcedureStepStatus="SCHEDULED"), started)
    completed = coarse_query(query(ScheduledProcedureStepStatus="COMPLETED"))
    assert completed.step_status == "COMPLETED"
    assert coarse_query(query(ScheduledProcedureStepStatus="")).step_status is None


# The catalog (C-FIND, QIDO) and the worklist apply one set of rules: a key and a value
# match in both front ends or in neither.
AGREEMENT = [
    ("PatientName", "DOE^J*", "Doe^John", True),
    ("PatientName", "doe^john", "DOE^JOHN", True),
    ("PatientName", "SMITH*", "Doe^John", False),
    ("AccessionNumber", "A?3", "A23", True),
    ("AccessionNumber", "A?3", "A233", False),
    ("AccessionNumber", "a23", "A23", False),
    ("StudyDate", "20261101-20261130", "20261115", True),
    ("StudyDate", "20261101-20261130", "20261201", False),
    ("StudyDate", "-20261130", "20261130", True),
    ("StudyDate", "20261201-", "20261130", False),
    ("StudyTime", "1200-1300", "130059", True),
    ("StudyTime", "1200-1300", "130100", False),
    ("StudyInstanceUID", "1.2.3\\1.2.4", "1.2.4", True),
    ("StudyInstanceUID", "1.2.3\\1.2.4", "1.2.5", False),
]


@pytest.mark.parametrize(("keyword", "query", "value", "expected"), AGREEMENT)
def test_catalog_and_dataset_front_ends_agree(
    keyword: str, query: str, value: str, expected: bool
) -> None:
    found = attribute(keyword)
    assert found is not None
    conditions = Conditions()
    conditions.add(found, query)
    ((_, test),) = conditions.tests
    identifier, candidate = Dataset(), Dataset()
    setattr(identifier, keyword, query)
    setattr(candidate, keyword, value)
    assert test(value) is expected
    assert matches(identifier, candidate) is expected
