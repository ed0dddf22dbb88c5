"""Patient corrections and merges, per study: in a table of the catalog and in memory.

A `pacs.study.patient-updated` event rewrites the study's catalog rows (instances, their
DICOM JSON, then series, study and patient rows recomputed) with the new values, and is
kept here, merged with the study's earlier corrections, so that

- an instance of the study received later is listed with the corrected values too;
- every retrieve (WADO-RS/URI, C-GET, C-MOVE) coerces them into the object it sends: the
  stored bytes are never rewritten (stored as received), a dictionary look-up by study
  says whether an object needs it.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from infra.clickhouse import ClickHouse
from schemas.patients import PATIENT_ATTRIBUTES

CORRECTIONS_DDL = """
CREATE TABLE IF NOT EXISTS patient_corrections (
    study_instance_uid String,
    changes String,  -- JSON: DICOM keyword -> value, every correction of the study merged
    log_partition UInt32,
    log_offset UInt64
) ENGINE = ReplacingMergeTree(log_offset)
ORDER BY study_instance_uid
"""
CORRECTION_COLUMNS = ["study_instance_uid", "changes", "log_partition", "log_offset"]


def json_value(keyword: str, value: str) -> dict[str, Any]:
    """The DICOM JSON of a patient attribute (an empty one has no Value)."""
    _, vr = PATIENT_ATTRIBUTES[keyword]
    if not value:
        return {"vr": vr}
    return {"vr": vr, "Value": [{"Alphabetic": value} if vr == "PN" else value]}


def corrected_metadata(metadata: dict[str, Any], changes: dict[str, str]) -> dict[str, Any]:
    out = dict(metadata)
    for keyword, value in changes.items():
        out[PATIENT_ATTRIBUTES[keyword][0]] = json_value(keyword, value)
    return out


class PatientCorrections:
    def __init__(self) -> None:
        self._by_study: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def load(self, clickhouse: ClickHouse) -> None:
        rows = clickhouse.rows("SELECT study_instance_uid, changes FROM patient_corrections FINAL")
        with self._lock:
            self._by_study = {str(study): json.loads(changes) for study, changes in rows}

    def of(self, study: str) -> dict[str, str]:
        """The study's corrected attributes (empty: none), by DICOM keyword."""
        with self._lock:
            return dict(self._by_study.get(study, {}))

    def merged(self, study: str, changes: dict[str, str]) -> dict[str, str]:
        """Record a correction; the study's corrections so far with it."""
        with self._lock:
            merged = {**self._by_study.get(study, {}), **changes}
            self._by_study[study] = merged
            return dict(merged)

    def clear(self) -> None:
        with self._lock:
            self._by_study.clear()


def rewrite_study(
    clickhouse: ClickHouse,
    study: str,
    changes: dict[str, str],
    position: tuple[int, int],
    columns: dict[str, str],
) -> set[str]:
    """Rewrite the study's instance rows and their DICOM JSON with `changes`, as new
    versions at `position` (the event's: newer than every row of the study, which is on
    the same partition); the PatientIDs the study had before, whose rows must be redone.

    `columns`: the catalog column of each DICOM keyword changed."""
    params: dict[str, Any] = {"study": study, "p": position[0], "o": position[1]}
    before = {
        str(r[0])
        for r in clickhouse.rows(
            "SELECT DISTINCT patient_id FROM instances FINAL"
            " WHERE study_instance_uid = {study:String}",
            params,
        )
    }
    replaced = []
    for n, (keyword, value) in enumerate(changes.items()):
        params[f"v{n}"] = value
        replaced.append(f"{{v{n}:String}} AS {columns[keyword]}")
    replaced += ["{p:UInt32} AS log_partition", "{o:UInt64} AS log_offset"]
    clickhouse.command(
        f"INSERT INTO instances SELECT * REPLACE ({', '.join(replaced)}) FROM instances FINAL"
        " WHERE study_instance_uid = {study:String}",
        params,
    )
    rows = clickhouse.rows(
        "SELECT study_instance_uid, series_instance_uid, sop_instance_uid, instance_number,"
        " metadata FROM instance_metadata FINAL WHERE study_instance_uid = {study:String}",
        params,
    )
    if rows:
        rewritten = [
            [*row[:4], json.dumps(corrected_metadata(json.loads(row[4]), changes),
                                  separators=(",", ":")), *position]
            for row in rows
        ]  # fmt: skip
        clickhouse.insert(
            "instance_metadata",
            rewritten,
            ["study_instance_uid", "series_instance_uid", "sop_instance_uid", "instance_number",
             "metadata", "log_partition", "log_offset"],
        )  # fmt: skip
    return before
