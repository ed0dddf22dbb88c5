"""What storage commitment tells a modality about each instance, from catalog, landing and
archive (CommitmentActivities._check with stand-ins for the three)."""

from __future__ import annotations

from activities.commitment import CommitmentActivities
from infra.internal_api import ApiUnavailable
from infra.settings import DicomSettings
from infra.storage.archive import StoredObject
from schemas.catalog import CatalogInstance, InstanceQuery
from schemas.commitment import CommitmentRef

CT = "1.2.840.10008.5.1.4.1.1.2"


def entry(sop: str) -> CatalogInstance:
    return CatalogInstance(
        study_instance_uid="1.2",
        series_instance_uid="1.2.3",
        sop_instance_uid=sop,
        sop_class_uid=CT,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        sha256="ab" * 32,
    )


class Catalog:
    """Lists `now`; a caught-up listing also lists `after_catch_up` (or fails)."""

    def __init__(self, now: set[str], after_catch_up: set[str] | None = None) -> None:
        self.now = now
        self.after_catch_up = after_catch_up
        self.queries: list[InstanceQuery] = []

    def instances(self, query: InstanceQuery) -> list[CatalogInstance]:
        self.queries.append(query)
        known = set(self.now)
        if query.caught_up:
            if self.after_catch_up is None:
                raise ApiUnavailable("catalog failed: HTTP 503")
            known |= self.after_catch_up
        return [entry(s) for s in query.sop_instance_uids if s in known]


class Landed:
    def __init__(self, sops: set[str]) -> None:
        self.sops = sops

    def holds_sop(self, sop: str) -> bool:
        return sop in self.sops


class Archive:
    bucket = "archive"

    def __init__(self, sops: set[str]) -> None:
        self.sops = sops

    def head(self, key: str) -> StoredObject | None:
        sop = key.rsplit("/", 1)[-1].removesuffix(".dcm")
        return StoredObject(key, "ab" * 32, 10) if sop in self.sops else None


def check(catalog: Catalog, landed: set[str], archived: set[str], *sops: str) -> dict[str, str]:
    activities = CommitmentActivities(
        catalog,  # type: ignore[arg-type]
        [Landed(landed)],  # type: ignore[list-item]
        Archive(archived),  # type: ignore[arg-type]
        DicomSettings(),
    )
    refs = [CommitmentRef(sop_class_uid=CT, sop_instance_uid=s) for s in sops]
    return {o.ref.sop_instance_uid: o.state for o in activities._check(refs)}


def test_never_received_is_missing_once_the_catalog_has_caught_up() -> None:
    catalog = Catalog(now={"a"}, after_catch_up=set())
    assert check(catalog, set(), {"a"}, "a", "never") == {"a": "committed", "never": "missing"}
    # Only the instance the first listing lacked is asked for again, behind the barrier.
    assert [(q.sop_instance_uids, q.caught_up) for q in catalog.queries] == [
        (["a", "never"], False),
        (["never"], True),
    ]


def test_received_but_not_yet_in_the_catalog_is_waited_for() -> None:
    catalog = Catalog(now=set(), after_catch_up=set())
    assert check(catalog, {"landed"}, set(), "landed") == {"landed": "not-archived"}
    assert [q.caught_up for q in catalog.queries] == [False]


def test_archived_and_gone_from_landing_before_it_was_projected() -> None:
    catalog = Catalog(now=set(), after_catch_up={"late"})
    assert check(catalog, set(), {"late"}, "late") == {"late": "committed"}


def test_an_absence_the_catalog_cannot_confirm_is_not_final() -> None:
    catalog = Catalog(now=set(), after_catch_up=None)
    assert check(catalog, set(), set(), "gone") == {"gone": "unconfirmed"}
