"""Sync activities: each side's study list with instance counts, the detailed comparison of
the studies both sides hold, pushing a study (or some of its series) there, and settling
conflicts. (Pulling here is the prefetch's `pull_study`.)

Here, the catalog answers (the API's internal C-FIND); there, C-FIND (Study Root) or
QIDO-RS, paged. Compared instance by instance, each side gives the digest of every data set
(infra/dicom/part10.py): here read from storage, there from the node's
`GET /api/studies/{study}/storage?dataset_digest=true` (it being another instance of ours).
A push sends every stored instance of what moves, in series order, as routing does
(activities/sending.py); instances the other side holds already arrive again with identical
bytes, a no-op there.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.prefetch import dicom_date
from activities.sending import NotStored, node_headers, registered_node, send_dimse, send_stow
from infra.auth.sealing import Sealer
from infra.dicom.part10 import dataset_sha256
from infra.internal_api import ApiRefused, InternalApi
from infra.scu.find import find
from infra.scu.identifier import Level, Root
from infra.scu.peer import Peer
from infra.storage.landing import Landing
from infra.storage.locate import load_instance
from infra.storage.tiers import Tiers
from schemas.catalog import InstanceQuery
from schemas.nodes import Node
from schemas.sync import (
    CompareStudies,
    InstanceConflict,
    InstanceDigest,
    ListStudies,
    Pushed,
    PushStudy,
    SettleConflicts,
    SettledConflict,
    StudyCount,
    StudyDiff,
    diff_instances,
    diff_series,
)

PAGE = 1000
PUSH_BATCH = 50
UID, DATE, COUNT = "0020000D", "00080020", "00201208"
SERIES_UID, SERIES_COUNT = "0020000E", "00201209"
READ_AHEAD = 8  # instances read at once for their digests


def _first(item: dict[str, Any], tag: str) -> str:
    values = (item.get(tag) or {}).get("Value") or []
    return str(values[0]) if values else ""


def count_of(item: dict[str, Any]) -> StudyCount | None:
    """A DICOM JSON study (our catalog's answer, or QIDO's) as a count."""
    uid = _first(item, UID)
    if not uid:
        return None
    count = _first(item, COUNT)
    return StudyCount(
        study_instance_uid=uid,
        instances=int(count) if count else 0,
        study_date=dicom_date(_first(item, DATE)),
    )


class SyncActivities:
    def __init__(
        self,
        catalog: InternalApi,
        landings: Iterable[Landing],
        archive: Tiers,
        calling_ae: str,
        tls: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        sealer: Sealer | None = None,
        writer: InternalApi | None = None,
    ) -> None:
        self.catalog = catalog
        self.writer = writer or catalog  # stores what a settled conflict brings here
        self.sealer = sealer
        self.landings = list(landings)
        self.archive = archive
        self.calling_ae = calling_ae
        self.tls = tls
        self.timeout = timeout

    def _node(self, name: str) -> Node:
        return registered_node(self.catalog, name)

    @staticmethod
    def _since(request: ListStudies) -> str:
        if request.lookback_days is None:
            return ""
        return f"{date.today() - timedelta(days=request.lookback_days):%Y%m%d}-"

    def _here(self, request: ListStudies) -> list[StudyCount]:
        filters = {"StudyDate": self._since(request)} if request.lookback_days else {}
        keys = ["StudyInstanceUID", "StudyDate", "NumberOfStudyRelatedInstances"]
        out: list[StudyCount] = []
        while True:
            page = self.catalog.find("STUDY", filters, keys, PAGE, offset=len(out))
            out += [c for item in page if (c := count_of(item))]
            if len(page) < PAGE:
                return out

    def _there_dimse(self, node: Node, request: ListStudies) -> list[StudyCount]:
        peer = Peer.of_node(node, self.calling_ae, self.timeout, self.tls)
        keys = [
            "StudyInstanceUID",
            f"StudyDate={self._since(request)}",
            "NumberOfStudyRelatedInstances",
        ]
        out = []
        for ds in find(peer, Root.STUDY, Level.STUDY, keys):
            uid = str(ds.get("StudyInstanceUID", "") or "")
            count = ds.get("NumberOfStudyRelatedInstances")
            if uid:
                out.append(
                    StudyCount(
                        study_instance_uid=uid,
                        instances=int(count) if count not in (None, "") else 0,
                        study_date=dicom_date(str(ds.get("StudyDate", "") or "")),
                    )
                )
        return out

    def _there_qido(self, node: Node, request: ListStudies) -> list[StudyCount]:
        if not node.dicomweb_url:
            raise ApplicationError(f"{node.name} has no dicomweb_url", non_retryable=True)
        params: dict[str, str | int] = {"includefield": "NumberOfStudyRelatedInstances"}
        if request.lookback_days:
            params["StudyDate"] = self._since(request)
        out: list[StudyCount] = []
        headers = node_headers(node, self.sealer)
        with httpx.Client(timeout=self.timeout, headers=headers) as client:
            while True:
                answer = client.get(
                    f"{node.dicomweb_url.rstrip('/')}/studies",
                    params=params | {"limit": PAGE, "offset": len(out)},
                )
                if answer.status_code == 204:
                    return out
                answer.raise_for_status()
                page = answer.json()
                out += [c for item in page if (c := count_of(item))]
                if len(page) < PAGE:
                    return out

    def _list(self, request: ListStudies) -> list[StudyCount]:
        if not request.node:
            return self._here(request)
        node = self._node(request.node)
        if request.via == "wado":
            return self._there_qido(node, request)
        return self._there_dimse(node, request)

    @activity.defn
    async def list_studies(self, request: ListStudies) -> list[StudyCount]:
        """One side's studies (here when `node` is empty), with their instance counts."""
        return await heartbeating(asyncio.to_thread(self._list, request))

    def _push(self, request: PushStudy) -> Pushed:
        node = self._node(request.node)
        query = InstanceQuery(
            study_instance_uids=[request.study_instance_uid],
            series_instance_uids=request.series_instance_uids,
            caught_up=True,
        )
        instances = self.catalog.instances(query)  # in series, then instance number, order
        sent = 0
        for at in range(0, len(instances), PUSH_BATCH):
            batch = []
            for instance in instances[at : at + PUSH_BATCH]:
                ids = (
                    instance.study_instance_uid,
                    instance.series_instance_uid,
                    instance.sop_instance_uid,
                )
                data = self._bytes(*ids)
                if data is None:
                    raise OSError(f"{ids[2]} is in the catalog but its bytes were not found")
                batch.append((instance.sop_instance_uid, data))
            self._send(node, request.via, batch)
            sent += len(batch)
        return Pushed(study_instance_uid=request.study_instance_uid, sent=sent)

    def _bytes(self, study: str, series: str, sop: str) -> bytes | None:
        return next(
            (d for a in self.landings if (d := load_instance(a, self.archive, study, series, sop))),
            None,
        )

    def _send(self, node: Node, via: str, batch: list[tuple[str, bytes]]) -> None:
        if via == "stow":
            send_stow(node, [data for _, data in batch], self.timeout, self.sealer)
        else:
            send_dimse(node, batch, self.calling_ae, self.timeout, self.tls)

    @activity.defn
    async def push_study(self, request: PushStudy) -> Pushed:
        return await heartbeating(asyncio.to_thread(self._push, request))

    # ---- comparing the studies both sides hold -------------------------------------------

    def _series_here(self, studies: list[str]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {uid: {} for uid in studies}
        keys = ["StudyInstanceUID", "SeriesInstanceUID", "NumberOfSeriesRelatedInstances"]
        filters = {"StudyInstanceUID": "\\".join(studies)}  # UID list matching
        seen = 0
        while True:
            page = self.catalog.find("SERIES", filters, keys, PAGE, offset=seen)
            seen += len(page)
            for item in page:
                study, series = _first(item, UID), _first(item, SERIES_UID)
                if study in out and series:
                    out[study][series] = int(_first(item, SERIES_COUNT) or 0)
            if len(page) < PAGE:
                return out

    def _series_there(self, node: Node, via: str, study: str) -> dict[str, int]:
        if via == "wado":
            if not node.dicomweb_url:
                raise ApplicationError(f"{node.name} has no dicomweb_url", non_retryable=True)
            answer = httpx.get(
                f"{node.dicomweb_url.rstrip('/')}/studies/{study}/series",
                params={"includefield": "NumberOfSeriesRelatedInstances"},
                headers=node_headers(node, self.sealer),
                timeout=self.timeout,
            )
            if answer.status_code in (204, 404):
                return {}
            answer.raise_for_status()
            return {
                _first(item, SERIES_UID): int(_first(item, SERIES_COUNT) or 0)
                for item in answer.json()
                if _first(item, SERIES_UID)
            }
        peer = Peer.of_node(node, self.calling_ae, self.timeout, self.tls)
        keys = [f"StudyInstanceUID={study}", "SeriesInstanceUID", "NumberOfSeriesRelatedInstances"]
        out = {}
        for ds in find(peer, Root.STUDY, Level.SERIES, keys):
            series = str(ds.get("SeriesInstanceUID", "") or "")
            count = ds.get("NumberOfSeriesRelatedInstances")
            if series:
                out[series] = int(count) if count not in (None, "") else 0
        return out

    def _digests_here(self, study: str) -> list[InstanceDigest]:
        query = InstanceQuery(study_instance_uids=[study], caught_up=True)
        instances = self.catalog.instances(query)

        def digest(item: Any) -> InstanceDigest:
            data = self._bytes(item.study_instance_uid, item.series_instance_uid,
                               item.sop_instance_uid)  # fmt: skip
            return InstanceDigest(
                series_instance_uid=item.series_instance_uid,
                sop_instance_uid=item.sop_instance_uid,
                dataset_sha256=dataset_sha256(data) if data else "",
                received_at=item.received_at,
            )

        with ThreadPoolExecutor(READ_AHEAD) as pool:
            return list(pool.map(digest, instances))

    def _digests_there(self, node: Node, study: str) -> list[InstanceDigest]:
        answer = httpx.get(
            f"{platform_api(node)}/studies/{study}/storage",
            params={"dataset_digest": "true"},
            headers=node_headers(node, self.sealer),
            timeout=max(self.timeout, 300.0),
        )
        if answer.status_code == 404:
            return []  # gone there since it was listed
        if answer.status_code in (401, 403):
            raise ApplicationError(
                f"{node.name} refused our API key: HTTP {answer.status_code} {answer.text[:200]}",
                non_retryable=True,
            )
        answer.raise_for_status()
        return [
            InstanceDigest(**{**item, "dataset_sha256": item.get("dataset_sha256") or ""})
            for item in answer.json()
        ]

    def _compare(self, request: CompareStudies) -> list[StudyDiff]:
        node = self._node(request.node)
        diffs = []
        if request.compare == "instances":
            for study in request.studies:
                here, there = self._digests_here(study), self._digests_there(node, study)
                diffs.append(diff_instances(study, here, there, request.direction))
            return diffs
        here_series = self._series_here(request.studies)
        for study in request.studies:
            counts = self._series_there(node, request.via, study)
            pull, push = diff_series(here_series[study], counts, request.direction)
            diffs.append(StudyDiff(study_instance_uid=study, pull_series=pull, push_series=push))
        return diffs

    @activity.defn
    async def compare_studies(self, request: CompareStudies) -> list[StudyDiff]:
        """What differs in each of these studies, which both sides hold."""
        return await heartbeating(asyncio.to_thread(self._compare, request))

    # ---- settling conflicts --------------------------------------------------------------

    def _fetch_there(self, node: Node, conflict: InstanceConflict) -> bytes:
        url = (
            f"{(node.dicomweb_url or '').rstrip('/')}/studies/{conflict.study_instance_uid}"
            f"/series/{conflict.series_instance_uid}/instances/{conflict.sop_instance_uid}"
        )
        answer = httpx.get(
            url,
            headers={"Accept": "application/dicom", **node_headers(node, self.sealer)},
            timeout=max(self.timeout, 120.0),
        )
        answer.raise_for_status()
        return answer.content

    def _settle_one(self, node: Node, request: SettleConflicts, index: int) -> SettledConflict:
        conflict, side = request.conflicts[index], request.winners[index]
        ids = (conflict.study_instance_uid, conflict.series_instance_uid,
               conflict.sop_instance_uid)  # fmt: skip
        try:
            if side == "here":
                data = self._bytes(*ids)
                if data is None:
                    raise OSError(f"{ids[2]} is in the catalog but its bytes were not found")
                self._send(node, request.push_via, [(ids[2], data)])
            else:
                self.writer.store_instances([self._fetch_there(node, conflict)])
        except (NotStored, ApiRefused) as exc:
            return SettledConflict(
                **conflict.model_dump(), policy=request.policy, resolution="refused",
                detail=str(exc)[:500],
            )  # fmt: skip
        resolution = "sent-there" if side == "here" else "sent-here"
        return SettledConflict(
            **conflict.model_dump(), policy=request.policy, resolution=resolution
        )

    def _settle(self, request: SettleConflicts) -> list[SettledConflict]:
        node = self._node(request.node)
        return [self._settle_one(node, request, i) for i in range(len(request.conflicts))]

    @activity.defn
    async def settle_conflicts(self, request: SettleConflicts) -> list[SettledConflict]:
        """Send each conflict's winning version to the other side, through its accept path:
        that side replaces its version only if its duplicate policy lets it (else the
        conflict is `refused`, with the answer)."""
        return await heartbeating(asyncio.to_thread(self._settle, request))


def platform_api(node: Node) -> str:
    """The REST API of a node that is another instance of ours: its DICOMweb root is
    `<base>/dicom-web`, its API `<base>/api`."""
    url = (node.dicomweb_url or "").rstrip("/")
    if not url.endswith("/dicom-web"):
        raise ApplicationError(
            f"{node.name} is not another instance of this platform (its dicomweb_url "
            f"{url or 'is empty'} does not end in /dicom-web)",
            non_retryable=True,
        )
    return f"{url.removesuffix('/dicom-web')}/api"
