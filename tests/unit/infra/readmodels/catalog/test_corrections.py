"""Patient corrections in the catalog: a corrected study is listed with the new values at
every level (its old patient gone when it has no study left), in its DICOM JSON too; an
instance received later is listed corrected; a replay ends the same; coercion rewrites
only the patient attributes of an object."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pydicom

from infra.clickhouse import ClickHouse
from infra.dicom.coerce import coerce_patient
from infra.readmodels.base import LogRecord
from infra.readmodels.catalog.attributes import Level
from infra.readmodels.catalog.projection import CatalogProjection
from infra.readmodels.catalog.resident import ResidentCatalog
from infra.readmodels.catalog.search import CatalogReader, Search
from schemas.catalog import InstanceQuery
from schemas.events import Event, StudyPatientUpdated
from tests.dicom_factory import ct_dataset, part10_bytes
from tests.synthetic import synthetic_events


def patient_ids(reader: CatalogReader, level: Level, **filters: str) -> list[str]:
    rows = reader.search(Search(level, filters, ["PatientID"])).rows
    return sorted(str(r["00100020"]["Value"][0]) for r in rows)


def test_a_merge_moves_the_study_at_every_level_and_later_arrivals_follow(
    tmp_path: Path,
) -> None:
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    resident = ResidentCatalog(clickhouse)
    projection = CatalogProjection(clickhouse, resident)
    projection.ensure_tables()
    received = list(synthetic_events(8, per_series=2, series_per_study=2, seed=5))
    study = received[0].instance.study_instance_uid
    mine = [e for e in received if e.instance.study_instance_uid == study]
    late, early = mine[-1], [e for e in received if e is not mine[-1]]
    source = received[0].patient_id
    projection.apply([LogRecord(0, n, e, b"") for n, e in enumerate(early)])
    reader = CatalogReader(clickhouse, resident)

    merge = StudyPatientUpdated(
        study_instance_uid=study, patient_id=source, kind="merge", actor="admin",
        changes={"PatientID": "MERGED-1", "PatientName": "MERGED^ONE", "PatientSex": "F"},
    )  # fmt: skip
    events: list[Event] = [*early, merge, late]
    records = [LogRecord(0, n, e, b"") for n, e in enumerate(events)]
    projection.apply(records[len(early) :])
    for level in (Level.STUDY, Level.SERIES):
        assert set(patient_ids(reader, level, StudyInstanceUID=study)) == {"MERGED-1"}
    assert patient_ids(reader, Level.PATIENT, PatientID="MERGED-1") == ["MERGED-1"]
    [row] = reader.search(Search(Level.PATIENT, {"PatientID": "MERGED-1"})).rows
    assert row["00100010"]["Value"] == [{"Alphabetic": "MERGED^ONE"}]
    assert row["00201200"]["Value"] == [1]
    if all(e.patient_id != source for e in received if e.instance.study_instance_uid != study):
        assert patient_ids(reader, Level.PATIENT, PatientID=source) == []
    listed = reader.instances(InstanceQuery(study_instance_uids=[study]))
    assert len(listed) == len(mine)  # the late arrival, corrected like the rest
    documents = [json.loads(m) for m in reader.metadata(study)]
    assert {d["00100020"]["Value"][0] for d in documents} == {"MERGED-1"}
    assert projection.corrections.of(study)["PatientSex"] == "F"

    # Replayed (at-least-once delivery, a rebuild's overlap): the same rows.
    before = reader.search(Search(Level.STUDY, {"StudyInstanceUID": study})).rows
    projection.apply(records[len(early) - 2 :])
    assert reader.search(Search(Level.STUDY, {"StudyInstanceUID": study})).rows == before

    # Rebuilt from the log: the same again.
    projection.drop()
    projection.ensure_tables()
    projection.apply(records)
    assert reader.search(Search(Level.STUDY, {"StudyInstanceUID": study})).rows == before
    assert projection.corrections.of(study)["PatientID"] == "MERGED-1"
    clickhouse.close()


def test_coercion_changes_the_patient_and_nothing_else() -> None:
    stored = part10_bytes(ct_dataset("1.2.3", "1.2.3.4", 1, size=8, patient_id="OLD"))
    sent = coerce_patient(stored, {"PatientID": "NEW", "PatientName": "NEW^NAME"})
    before, after = (pydicom.dcmread(io.BytesIO(b)) for b in (stored, sent))
    assert (after.PatientID, str(after.PatientName)) == ("NEW", "NEW^NAME")
    assert after.PixelData == before.PixelData
    assert after.file_meta.TransferSyntaxUID == before.file_meta.TransferSyntaxUID
    for element in before:
        if element.keyword not in ("PatientID", "PatientName"):
            assert after[element.tag] == element
    assert coerce_patient(stored, {}) is stored
