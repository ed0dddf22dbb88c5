"""Which studies a storage or retention rule selects now: one query joining the catalog's
study and instance tables, the audit trail's reads and (for storage rules) the tiers, all
in the same ClickHouse, by their table names (read models do not import each other)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from infra.clickhouse import ClickHouse
from schemas.study_ages import StudyAges

# What counts as reading a study's images (audit_access actions): WADO of any kind, C-GET,
# C-MOVE. Queries (QIDO, C-FIND) do not keep a study in use.
READ_ACTIONS = "(action LIKE 'wado%' OR action IN ('c-get', 'c-move'))"


def matching_studies(
    clickhouse: ClickHouse,
    ages: StudyAges,
    limit: int,
    now: datetime | None = None,
    in_tiers: list[str] | None = None,
) -> list[tuple[str, str]]:
    """(StudyInstanceUID, PatientID) of the studies that meet every condition `ages`
    names (and, given `in_tiers`, have an instance in one of those tiers), in UID order."""
    now = now or datetime.now(UTC)
    conditions = []
    params: dict[str, Any] = {"limit": limit}

    def before(days: float) -> datetime:
        return now - timedelta(days=days)

    if ages.study_older_than_days is not None:
        # StudyDate is DICOM DA (YYYYMMDD): compared as text; a study without one is never
        # old by this condition.
        conditions.append("s.study_date != '' AND s.study_date < {study_before:String}")
        params["study_before"] = before(ages.study_older_than_days).strftime("%Y%m%d")
    if ages.received_more_than_days is not None:
        conditions.append("r.received < {received_before:DateTime64(3, 'UTC')}")
        params["received_before"] = before(ages.received_more_than_days)
    if ages.idle_more_than_days is not None:
        # Never read: idle since it was received (a missing join row is 1970 in
        # ClickHouse's LEFT JOIN, which greatest() passes over).
        conditions.append("greatest(r.received, a.accessed) < {idle_before:DateTime64(3, 'UTC')}")
        params["idle_before"] = before(ages.idle_more_than_days)
    if ages.modalities:
        conditions.append("hasAny(s.modalities_in_study, {modalities:Array(String)})")
        params["modalities"] = ages.modalities
    if in_tiers is not None:
        conditions.append(
            "s.study_instance_uid IN (SELECT study_instance_uid FROM instance_tiers FINAL"
            " WHERE tier IN {tiers:Array(String)})"
        )
        params["tiers"] = in_tiers
    sql = f"""
        SELECT s.study_instance_uid, s.patient_id
        FROM (SELECT study_instance_uid, patient_id, study_date, modalities_in_study
              FROM studies FINAL) AS s
        INNER JOIN (SELECT study_instance_uid, max(received_at) AS received
                    FROM instances FINAL GROUP BY study_instance_uid) AS r
            USING (study_instance_uid)
        LEFT JOIN (SELECT study_instance_uid, max(occurred_at) AS accessed
                   FROM audit_access WHERE {READ_ACTIONS} GROUP BY study_instance_uid) AS a
            USING (study_instance_uid)
        WHERE {" AND ".join(conditions)}
        ORDER BY s.study_instance_uid
        LIMIT {{limit:UInt32}}
    """
    return [(str(s), str(p)) for s, p in clickhouse.rows(sql, params)]
