"""Sync activities: each side's study list with instance counts, and pushing one study there.
(Pulling one study here is the prefetch's `pull_study`.)

Here, the catalog answers (the API's internal C-FIND); there, a C-FIND at study level
(Study Root, every study) or QIDO-RS, paged. A push sends every stored instance of the
study, in series order, as routing does (activities/sending.py); instances the other side
holds already arrive again with identical bytes, a no-op there.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.prefetch import dicom_date
from activities.sending import registered_node, send_dimse, send_stow
from infra.internal_api import InternalApi
from infra.scu.find import find
from infra.scu.identifier import Level, Root
from infra.scu.peer import Peer
from infra.storage.archive import ArchiveStore
from infra.storage.landing import Landing
from infra.storage.locate import load_instance
from schemas.catalog import InstanceQuery
from schemas.nodes import Node
from schemas.sync import ListStudies, Pushed, PushStudy, StudyCount

PAGE = 1000
PUSH_BATCH = 50
UID, DATE, COUNT = "0020000D", "00080020", "00201208"


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
        archive: ArchiveStore,
        calling_ae: str,
        tls: ssl.SSLContext | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.catalog = catalog
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
        with httpx.Client(timeout=self.timeout) as client:
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
        query = InstanceQuery(study_instance_uids=[request.study_instance_uid], caught_up=True)
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
                data = next(
                    (d for area in self.landings if (d := load_instance(area, self.archive, *ids))),
                    None,
                )
                if data is None:
                    raise OSError(f"{ids[2]} is in the catalog but its bytes were not found")
                batch.append((instance.sop_instance_uid, data))
            if request.via == "stow":
                send_stow(node, [data for _, data in batch], self.timeout)
            else:
                send_dimse(node, batch, self.calling_ae, self.timeout, self.tls)
            sent += len(batch)
        return Pushed(study_instance_uid=request.study_instance_uid, sent=sent)

    @activity.defn
    async def push_study(self, request: PushStudy) -> Pushed:
        return await heartbeating(asyncio.to_thread(self._push, request))
