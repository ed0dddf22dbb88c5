"""ClickHouse DDL of the catalog, derived from the attribute list so the two never disagree.

Every table is a ReplacingMergeTree versioned by the log offset of what it reflects and read
with FINAL: replaying an event (at-least-once delivery, a rebuild) writes the same row again
and changes nothing, and a later version of an instance (duplicate policy overwrite) wins.
ORDER BY is each level's unique key, which is also how retrieve and the hierarchy narrow
down (study, then series); flat searches (PatientID, dates) scan one small table per level.
"""

from __future__ import annotations

from infra.readmodels.catalog.attributes import ATTRIBUTES, COPIED, LISTS, Attribute, Level

KEYS = {
    Level.PATIENT: ("patient_id",),
    Level.STUDY: ("study_instance_uid",),
    Level.SERIES: ("study_instance_uid", "series_instance_uid"),
    Level.IMAGE: ("study_instance_uid", "series_instance_uid", "sop_instance_uid"),
}

# Search results in the order a reader expects: series and instances by number, then by UID.
# ClickHouse gets it as ORDER BY; the resident levels sort by the same columns.
RESULT_ORDER = {
    Level.PATIENT: ("patient_id",),
    Level.STUDY: ("study_instance_uid",),
    Level.SERIES: ("study_instance_uid", "series_number", "series_instance_uid"),
    Level.IMAGE: (
        "study_instance_uid", "series_instance_uid", "instance_number", "sop_instance_uid",
    ),
}  # fmt: skip

# Columns only the instance table has: where the bytes are and who sent them.
INSTANCE_EXTRAS = (
    ("size", "UInt64"),
    ("sha256", "String"),
    ("received_at", "DateTime64(3, 'UTC')"),
    ("calling_ae", "String"),
)
POSITION_COLUMNS = (("log_partition", "UInt32"), ("log_offset", "UInt64"))


def column_type(attribute: Attribute) -> str:
    if attribute.keyword in LISTS:
        return "Array(String)"
    if attribute.origin == "derived":
        return "UInt64"
    if attribute.numeric:
        return "Nullable(Int64)"
    return "String"


def level_attributes(level: Level) -> tuple[Attribute, ...]:
    """What a level's table stores: copied attributes of it and outer levels, its own counts."""
    return tuple(
        a for a in ATTRIBUTES if (a.origin == "copied" and a.level <= level) or a.only_at == level
    )


def columns(level: Level) -> list[tuple[str, str]]:
    cols = [(a.column, column_type(a)) for a in level_attributes(level)]
    if level is Level.IMAGE:
        cols += list(INSTANCE_EXTRAS)
    return cols + list(POSITION_COLUMNS)


# Instance searches that do not name the study cannot use the table's order: without these a
# QIDO `/instances?SOPInstanceUID=` scans every row (~740 ms at 1M instances, ~30 ms with).
SKIP_INDEXES = {
    Level.IMAGE: ("sop_instance_uid", "series_instance_uid", "patient_id", "accession_number"),
}


def skip_index(column: str) -> tuple[str, str]:
    """Name and definition of a column's bloom-filter skip index."""
    return f"bloom_{column}", f"{column} TYPE bloom_filter GRANULARITY 1"


def table_ddl(level: Level, table: str) -> str:
    body = ",\n    ".join(
        [f"{name} {kind}" for name, kind in columns(level)]
        + [f"INDEX {' '.join(skip_index(c))}" for c in SKIP_INDEXES.get(level, ())]
    )
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (\n    {body}\n)\n"
        f"ENGINE = ReplacingMergeTree(log_offset)\nORDER BY ({', '.join(KEYS[level])})"
    )


METADATA_DDL = """
CREATE TABLE IF NOT EXISTS instance_metadata (
    study_instance_uid String,
    series_instance_uid String,
    sop_instance_uid String,
    instance_number Nullable(Int64),
    -- The instance's DICOM JSON, compact, BulkDataURIs relative to the DICOMweb root:
    -- a series' /metadata answer is these rows joined, one range read.
    metadata String,
    log_partition UInt32,
    log_offset UInt64
)
ENGINE = ReplacingMergeTree(log_offset)
ORDER BY (study_instance_uid, series_instance_uid, sop_instance_uid)
"""

# Access labels an administrator set on a study (pacs.study.labels-set): the newest set wins.
LABELS_DDL = """
CREATE TABLE IF NOT EXISTS study_labels (
    study_instance_uid String,
    labels Array(String),
    log_partition UInt32,
    log_offset UInt64
)
ENGINE = ReplacingMergeTree(log_offset)
ORDER BY study_instance_uid
"""

POSITIONS_DDL = """
CREATE TABLE IF NOT EXISTS catalog_positions (
    log_partition UInt32,
    log_offset UInt64
)
ENGINE = ReplacingMergeTree(log_offset)
ORDER BY log_partition
"""

COPIED_COLUMNS = [a.column for a in COPIED]
