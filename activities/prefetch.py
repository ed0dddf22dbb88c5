"""Prefetch activities: ask the sources for a patient's studies, count what is here, and
pull one study.

Pulled instances enter through our own accept path: C-GET and WADO-RS bring the bytes to
the worker, which stores them by STOW-RS through the API (so landing, events, projections
and the audit trail apply, as to any study); C-MOVE has the source send them to our
gateway's AE title. Re-pulling what is already here is harmless: identical bytes are a
no-op success on either path, so every activity is safe to retry.

Per source at most `per_source` pulls run at once in this worker: a prefetch storm (a
morning's worklist) must not flood one archive's retrieve service.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import tempfile
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
from pydicom.dataset import Dataset
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.sending import node_headers, registered_node
from infra.auth.sealing import Sealer
from infra.internal_api import InternalApi
from infra.multipart import parse_content_type, split_multipart
from infra.scu.find import find
from infra.scu.identifier import Level, Root
from infra.scu.peer import Peer, ScuError
from infra.scu.retrieve import get, move
from schemas.catalog import InstanceQuery
from schemas.nodes import Node
from schemas.prefetch import FindPriors, LocalCounts, PrefetchVia, Pulled, PullStudy, RemoteStudy

log = logging.getLogger(__name__)

STOW_BATCH = 20
RETURN_KEYS = ["StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"]
# DICOM JSON tags of what a QIDO study answer carries.
QIDO_TAGS = {
    "study_instance_uid": "0020000D",
    "study_date": "00080020",
    "description": "00081030",
    "modalities": "00080061",
    "instances": "00201208",
    "body_part": "00180015",
}


def dicom_date(value: str) -> date | None:
    try:
        return datetime.strptime(value.strip()[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _values(ds: Dataset, keyword: str) -> list[str]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def study_of(source: str, ds: Dataset) -> RemoteStudy | None:
    uid = str(ds.get("StudyInstanceUID", "") or "")
    if not uid:
        return None
    count = ds.get("NumberOfStudyRelatedInstances")
    return RemoteStudy(
        source=source,
        study_instance_uid=uid,
        study_date=dicom_date(str(ds.get("StudyDate", "") or "")),
        modalities=_values(ds, "ModalitiesInStudy"),
        instances=int(count) if count not in (None, "") else None,
        description=str(ds.get("StudyDescription", "") or ""),
    )


def _json_values(item: dict[str, object], tag: str) -> list[str]:
    element = item.get(tag)
    values = element.get("Value", []) if isinstance(element, dict) else []
    return [str(v) for v in values] if isinstance(values, list) else []


def study_of_json(source: str, item: dict[str, object]) -> RemoteStudy | None:
    uids = _json_values(item, QIDO_TAGS["study_instance_uid"])
    if not uids:
        return None
    dates = _json_values(item, QIDO_TAGS["study_date"])
    counts = _json_values(item, QIDO_TAGS["instances"])
    return RemoteStudy(
        source=source,
        study_instance_uid=uids[0],
        study_date=dicom_date(dates[0]) if dates else None,
        modalities=_json_values(item, QIDO_TAGS["modalities"]),
        instances=int(counts[0]) if counts else None,
        description=" ".join(_json_values(item, QIDO_TAGS["description"])),
    )


def dicom_parts(body: bytes, content_type: str) -> Iterator[bytes]:
    """The Part 10 objects of a WADO-RS multipart answer."""
    _, params = parse_content_type(content_type)
    boundary = params.get("boundary")
    if not boundary:
        raise OSError(f"WADO-RS answer without a multipart boundary ({content_type})")
    for part in split_multipart(body, boundary):
        yield part.body


class PrefetchActivities:
    def __init__(
        self,
        registry: InternalApi,
        writer: InternalApi,
        calling_ae: str,
        tls: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        per_source: int = 2,
        sealer: Sealer | None = None,
    ) -> None:
        self.registry = registry
        self.sealer = sealer
        self.writer = writer
        self.calling_ae = calling_ae
        self.tls = tls
        self.timeout = timeout
        self.per_source = per_source
        self._limits: dict[str, asyncio.Semaphore] = {}

    def _node(self, name: str) -> Node:
        return registered_node(self.registry, name)

    def _peer(self, node: Node) -> Peer:
        return Peer.of_node(node, self.calling_ae, self.timeout, self.tls)

    # ---- finding ------------------------------------------------------------------------

    def _find_dimse(self, node: Node, request: FindPriors) -> list[RemoteStudy]:
        since = date.today() - timedelta(days=request.choice.lookback_days)
        keys = [
            "StudyInstanceUID",
            f"PatientID={request.patient_id}",
            f"StudyDate={since:%Y%m%d}-",
            *RETURN_KEYS,
        ]
        peer = self._peer(node)
        found = [
            s for ds in find(peer, Root.STUDY, Level.STUDY, keys) if (s := study_of(node.name, ds))
        ]
        if request.choice.body_parts:
            for study in found:
                series = find(
                    peer,
                    Root.STUDY,
                    Level.SERIES,
                    [f"StudyInstanceUID={study.study_instance_uid}", "BodyPartExamined"],
                )
                study.body_parts = sorted(
                    {p for ds in series for p in _values(ds, "BodyPartExamined")}
                )
        return found

    def _find_qido(self, node: Node, request: FindPriors) -> list[RemoteStudy]:
        if not node.dicomweb_url:
            raise OSError(f"source {node.name} has no dicomweb_url for QIDO-RS")
        base = node.dicomweb_url.rstrip("/")
        since = date.today() - timedelta(days=request.choice.lookback_days)
        params = {
            "PatientID": request.patient_id,
            "StudyDate": f"{since:%Y%m%d}-",
            "includefield": "ModalitiesInStudy,NumberOfStudyRelatedInstances,StudyDescription",
        }
        headers = node_headers(node, self.sealer)
        with httpx.Client(timeout=self.timeout, headers=headers) as client:
            answer = client.get(f"{base}/studies", params=params)
            if answer.status_code == 204:
                return []
            answer.raise_for_status()
            found = [s for item in answer.json() if (s := study_of_json(node.name, item))]
            for study in found if request.choice.body_parts else []:
                series = client.get(
                    f"{base}/studies/{study.study_instance_uid}/series",
                    params={"includefield": "BodyPartExamined"},
                )
                series.raise_for_status()
                items = series.json() if series.status_code == 200 else []
                parts = {p for item in items for p in _json_values(item, QIDO_TAGS["body_part"])}
                study.body_parts = sorted(parts)
        return found

    def _find(self, request: FindPriors) -> list[RemoteStudy]:
        """Every source's studies of the patient, in the order the sources are listed.
        A source that does not answer is skipped (logged) unless none answers: the priors
        the others hold are still worth having before the patient arrives."""
        found: list[RemoteStudy] = []
        errors: list[str] = []
        for name in request.choice.sources:
            node = self._node(name)
            try:
                if request.choice.via == "wado":
                    found += self._find_qido(node, request)
                else:
                    found += self._find_dimse(node, request)
            except (ScuError, OSError, httpx.HTTPError) as exc:
                log.warning("prefetch: source %s did not answer: %s", name, exc)
                errors.append(f"{name}: {exc}")
        if errors and len(errors) == len(request.choice.sources):
            raise OSError("no source answered: " + "; ".join(errors))
        return found

    @activity.defn
    async def find_priors(self, request: FindPriors) -> list[RemoteStudy]:
        return await heartbeating(asyncio.to_thread(self._find, request))

    @activity.defn
    async def local_counts(self, request: LocalCounts) -> dict[str, int]:
        """Instances stored here per study (0 for a study not here)."""
        if not request.study_instance_uids:
            return {}
        query = InstanceQuery(study_instance_uids=request.study_instance_uids, caught_up=True)
        instances = await asyncio.to_thread(self.registry.instances, query)
        counts = dict.fromkeys(request.study_instance_uids, 0)
        for instance in instances:
            counts[instance.study_instance_uid] = counts.get(instance.study_instance_uid, 0) + 1
        return counts

    # ---- pulling ------------------------------------------------------------------------

    def _store(self, objects: Iterator[bytes]) -> int:
        """Through our own STOW-RS, in batches; how many were stored."""
        stored, batch = 0, []
        for data in objects:
            batch.append(data)
            if len(batch) == STOW_BATCH:
                self.writer.store_instances(batch)
                stored, batch = stored + len(batch), []
        if batch:
            self.writer.store_instances(batch)
            stored += len(batch)
        return stored

    def _pull(self, request: PullStudy) -> Pulled:
        """The whole study, or (`series_instance_uids`) those series of it, one at a time."""
        study = request.study
        node = self._node(study.source)
        uid = study.study_instance_uid
        received = 0
        targets: list[str | None] = [*request.series_instance_uids] or [None]
        for series in targets:
            received += self._pull_one(node, request.via, uid, series)
        return Pulled(study_instance_uid=uid, source=node.name, received=received)

    def _pull_one(self, node: Node, via: PrefetchVia, study: str, series: str | None) -> int:
        level = Level.SERIES if series else Level.STUDY
        keys = [f"StudyInstanceUID={study}", *([f"SeriesInstanceUID={series}"] if series else [])]
        what = f"series {series} of {study}" if series else study
        if via == "c-move":
            outcome = move(self._peer(node), Root.STUDY, level, keys, self.calling_ae)
            if not outcome.ok or outcome.failed:
                raise OSError(
                    f"C-MOVE of {what} from {node.name}: status 0x{outcome.status:04X}, "
                    f"{outcome.failed} failed {outcome.comment}".strip()
                )
            return outcome.completed
        if via == "c-get":
            with tempfile.TemporaryDirectory(prefix="prefetch-") as folder:
                outcome = get(
                    self._peer(node), Root.STUDY, level, keys, Path(folder), lambda _: None
                )
                if not outcome.ok or outcome.failed:
                    raise OSError(
                        f"C-GET of {what} from {node.name}: status 0x{outcome.status:04X}, "
                        f"{outcome.failed} failed {outcome.comment}".strip()
                    )
                return self._store(p.read_bytes() for p in sorted(outcome.received))
        if not node.dicomweb_url:
            raise ApplicationError(
                f"source {node.name} has no dicomweb_url for WADO-RS", non_retryable=True
            )
        url = f"{node.dicomweb_url.rstrip('/')}/studies/{study}"
        url += f"/series/{series}" if series else ""
        accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
        headers = {"Accept": accept, **node_headers(node, self.sealer)}
        answer = httpx.get(url, headers=headers, timeout=max(self.timeout, 300.0))
        if answer.status_code != 200:
            raise OSError(f"WADO-RS of {what} from {node.name}: HTTP {answer.status_code}")
        return self._store(dicom_parts(answer.content, answer.headers.get("content-type", "")))

    @activity.defn
    async def pull_study(self, request: PullStudy) -> Pulled:
        limit = self._limits.setdefault(request.study.source, asyncio.Semaphore(self.per_source))
        async with limit:
            return await heartbeating(asyncio.to_thread(self._pull, request))
