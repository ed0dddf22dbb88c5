"""The in-memory patient/study/series levels answer every search exactly as ClickHouse does.

Each search below runs twice on the same embedded chDB catalog: once through the resident
levels and once as SQL; the answers (rows and order) must be identical, and across the set
of searches both empty and non-empty answers must occur.
"""

from __future__ import annotations

import pytest

from infra.clickhouse import ClickHouse
from infra.readmodels.base import LogRecord
from infra.readmodels.catalog.attributes import Level
from infra.readmodels.catalog.projection import CatalogProjection
from infra.readmodels.catalog.resident import ResidentCatalog
from infra.readmodels.catalog.search import CatalogReader, Search
from infra.readmodels.matching import Conditions
from schemas.events import InstanceReceived
from tests.synthetic import synthetic_events

NAMES = ["Müller^Jürgen", "MÜLLER^ANNA", "de la Cruz^José María", "O'BRIEN^SEAN", "Smith^Anna"]
TIMES = ["", "083000", "120000.5", "235959"]
DESCRIPTIONS = ["CT HEAD", "CT_HEAD", "Chest 100%", ""]


def varied_events() -> list[InstanceReceived]:
    """Synthetic studies with names, times and descriptions that exercise every rule."""
    events = list(synthetic_events(1200, per_series=10, series_per_study=4, seed=5))
    studies = sorted({e.instance.study_instance_uid for e in events})
    for event in events:
        assert event.metadata is not None
        n = studies.index(event.instance.study_instance_uid)
        event.metadata["00100010"] = {"vr": "PN", "Value": [{"Alphabetic": NAMES[n % 5]}]}
        if TIMES[n % 4]:
            event.metadata["00080030"] = {"vr": "TM", "Value": [TIMES[n % 4]]}
        if DESCRIPTIONS[n % 4]:
            event.metadata["00081030"] = {"vr": "LO", "Value": [DESCRIPTIONS[n % 4]]}
        if n % 7 == 0:
            event.metadata.pop("00080020", None)  # no StudyDate
    return events


def apply(projection: CatalogProjection, events: list[InstanceReceived], start: int) -> None:
    projection.apply([LogRecord(0, start + i, e, b"") for i, e in enumerate(events)])


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[CatalogReader, CatalogReader]:
    path = tmp_path_factory.mktemp("resident") / "ch"
    clickhouse = ClickHouse(f"chdb://{path}")
    resident = ResidentCatalog(clickhouse)
    projection = CatalogProjection(clickhouse, resident)
    projection.ensure_tables()
    events = varied_events()
    # Several batches, one study split across two of them, then one instance re-sent with a
    # corrected patient name: each refresh must leave the memory equal to the tables.
    apply(projection, events[:333], 0)
    apply(projection, events[333:900], 333)
    apply(projection, events[900:], 900)
    corrected = events[0].model_copy(deep=True)
    assert corrected.metadata is not None
    corrected.metadata["00100010"] = {"vr": "PN", "Value": [{"Alphabetic": "CORRECTED^NAME"}]}
    apply(projection, [corrected], 5000)
    return CatalogReader(clickhouse, resident), CatalogReader(clickhouse)


def patient_and_study(reader: CatalogReader) -> tuple[str, str, str]:
    row = reader.search(Search(Level.STUDY, return_keys=["PatientID"], limit=1, offset=7)).rows[0]
    return row["00100020"]["Value"][0], row["0020000D"]["Value"][0], row["00080050"]["Value"][0]


SEARCHES: list[dict[str, str]] = [
    {},
    {"PatientName": "müller*"},
    {"PatientName": "MÜLLER^JÜRGEN"},
    {"PatientName": "smith^anna"},
    {"PatientName": "*cruz*"},
    {"PatientName": "?'BRIEN*"},
    {"PatientName": "CORRECTED^NAME"},
    {"PatientName": "NOBODY"},
    {"StudyDate": "20180101-20201231"},
    {"StudyDate": "-20170101"},
    {"StudyDate": "20240101-"},
    {"StudyTime": "0800-1200"},
    {"StudyTime": "-1200"},
    {"StudyTime": "120000.5"},
    {"StudyDescription": "CT_HEAD"},
    {"StudyDescription": "CT?HEAD"},
    {"StudyDescription": "*100%"},
    {"ModalitiesInStudy": "MR"},
    {"ModalitiesInStudy": "US\\MR"},
    {"ModalitiesInStudy": "M*"},
    {"Modality": "CT"},
    {"SeriesNumber": "4"},
    {"PatientID": "SYN*"},
    {"PatientID": "SYN000000?"},
]


def pinned_searches(reader: CatalogReader) -> list[dict[str, str]]:
    patient, study, accession = patient_and_study(reader)
    return [
        {"PatientID": patient},
        {"PatientID": patient, "StudyDate": "20160101-"},
        {"PatientID": "NOT-THERE"},
        {"StudyInstanceUID": study},
        {"StudyInstanceUID": f"{study}\\1.2.3.4"},
        {"StudyInstanceUID": study, "PatientID": "SOMEONE-ELSE"},
        {"AccessionNumber": accession},
        {"AccessionNumber": accession, "Modality": "MR"},
    ]


@pytest.mark.parametrize("level", [Level.PATIENT, Level.STUDY, Level.SERIES])
@pytest.mark.parametrize("fuzzy", [False, True])
def test_memory_and_clickhouse_give_the_same_answers(
    catalog: tuple[CatalogReader, CatalogReader], level: Level, fuzzy: bool
) -> None:
    memory, sql = catalog
    answered = {"empty": 0, "rows": 0}
    for filters in [*SEARCHES, *pinned_searches(sql)]:
        for limit, offset in ((100_000, 0), (3, 2)):
            search = Search(level, dict(filters), [], limit=limit, offset=offset, fuzzy=fuzzy)
            expected = sql.search(search).rows
            assert memory.search(search).rows == expected, (filters, limit, offset)
            answered["rows" if expected else "empty"] += 1
    assert answered["rows"] > 10 and answered["empty"] > 3


def test_resident_levels_really_answer(catalog: tuple[CatalogReader, CatalogReader]) -> None:
    memory, _ = catalog
    assert memory.resident is not None
    for level in (Level.PATIENT, Level.STUDY, Level.SERIES):
        assert memory.resident.search(level, Conditions(), ["patient_id"], 10, 0)


def test_a_level_over_the_limit_is_searched_in_clickhouse(
    catalog: tuple[CatalogReader, CatalogReader],
) -> None:
    _, sql = catalog
    small = ResidentCatalog(sql.clickhouse, max_rows=20)
    small.load()
    # 15 patients fit, 30 studies and 120 series do not.
    assert small.search(Level.PATIENT, Conditions(), ["patient_id"], 100, 0) is not None
    assert small.search(Level.STUDY, Conditions(), ["patient_id"], 100, 0) is None
    reader = CatalogReader(sql.clickhouse, small)
    search = Search(Level.SERIES, {"Modality": "MR"}, [])
    assert reader.search(search).rows == sql.search(search).rows
