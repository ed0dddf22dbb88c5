"""De-identification activities: make the copy, then deliver it.

`deidentify_study` reads every stored instance of the study (landing first, then the
archive), de-identifies it (infra/dicom/deidentify) and stages the copy under the job's
private prefix of the archive bucket, with the re-identification map beside it; the map
never passes through Temporal. `deliver_copy` sends the staged copy where it was asked for:
a new study through our own STOW-RS (so the accept path's promise, events, projections and
audit apply to it as to any study), a registered node by C-STORE, or a zip to download.
Both are safe to retry: the transform is deterministic and every write lands on the same key.
"""

from __future__ import annotations

import asyncio
import io
import logging
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from infra.dicom.deidentify.keyed import DeidentificationKey
from infra.dicom.deidentify.transform import DeidentificationRefused, Replacements, deidentify
from infra.internal_api import ApiRefused, InternalApi
from infra.scu.peer import Peer
from infra.scu.store import store_files
from infra.storage.archive import get_bytes
from infra.storage.landing import Landing
from infra.storage.locate import load_instance
from infra.storage.tiers import Tiers
from schemas.catalog import CatalogInstance, InstanceQuery
from schemas.deidentify import (
    DeidentificationInput,
    Delivered,
    DeliverInput,
    InstanceMapping,
    ReidentificationMap,
    StagedStudy,
    UidPair,
)

log = logging.getLogger(__name__)

PREFIX = "deidentify"
TRANSFORM_CONCURRENCY = 4
STOW_BATCH = 20


def job_prefix(job_id: str) -> str:
    """Where one job keeps its staged copy, its map and its zip, in the archive bucket."""
    return f"{PREFIX}/{job_id}/"


def map_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}map.json"


def zip_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}study.zip"


def _staged_key(prefix: str, result: Replacements) -> str:
    return f"{prefix}{result.series[1]}/{result.sop[1]}.dcm"


class DeidentificationActivities:
    """Built once per worker: the catalog (to list a study), a writer credential for
    STOW-RS, the stores to read from, and the de-identification key."""

    def __init__(
        self,
        catalog: InternalApi,
        writer: InternalApi,
        landings: Iterable[Landing],
        tiers: Tiers,  # read from any tier; staged in the archive bucket (hot)
        key: bytes,
        calling_ae_title: str,
    ) -> None:
        self.catalog = catalog
        self.writer = writer
        self.landings = list(landings)
        self.tiers = tiers
        self.archive = tiers.hot
        self.key = key
        self.calling_ae_title = calling_ae_title
        self._limit = asyncio.Semaphore(TRANSFORM_CONCURRENCY)

    def _load(self, instance: CatalogInstance) -> bytes:
        ids = (instance.study_instance_uid, instance.series_instance_uid, instance.sop_instance_uid)
        for landing in self.landings:
            if landing.versions(*ids):
                data = load_instance(landing, self.tiers, *ids)
                if data is not None:
                    return data
        data = self.tiers.instance(*ids)
        if data is None:
            raise OSError(f"instance {ids[2]} is in the catalog but its bytes were not found")
        return data

    def _copy_one(
        self, instance: CatalogInstance, key: DeidentificationKey, job: DeidentificationInput
    ) -> Replacements:
        """One instance; only what was replaced is kept (never its pixels) until the map."""
        try:
            result = deidentify(self._load(instance), key, job.options)
        except DeidentificationRefused as exc:
            raise ApplicationError(
                str(exc), type="DeidentificationRefused", non_retryable=True
            ) from exc
        data = result.part10()
        self.archive.client.put_object(
            self.archive.bucket,
            _staged_key(job_prefix(job.job_id) + "staged/", result.replaced),
            io.BytesIO(data),
            len(data),
            content_type="application/dicom",
        )
        return result.replaced

    async def _copy_limited(
        self, instance: CatalogInstance, key: DeidentificationKey, job: DeidentificationInput
    ) -> Replacements:
        async with self._limit:
            return await asyncio.to_thread(self._copy_one, instance, key, job)

    @activity.defn
    async def deidentify_study(self, job: DeidentificationInput) -> StagedStudy:
        """De-identify every stored instance of the study into the job's staging prefix."""
        query = InstanceQuery(study_instance_uids=[job.study_instance_uid], caught_up=True)
        instances = await asyncio.to_thread(self.catalog.instances, query)
        if not instances:
            raise ApplicationError(
                f"no stored instance of study {job.study_instance_uid}",
                type="StudyNotFound",
                non_retryable=True,
            )
        key = DeidentificationKey(self.key, scope=",".join(job.options.names()))
        results = await heartbeating(
            asyncio.gather(*(self._copy_limited(i, key, job) for i in instances))
        )
        reid = _reidentification_map(job, results)
        body = reid.model_dump_json(indent=1).encode()
        await asyncio.to_thread(
            self.archive.client.put_object,
            self.archive.bucket,
            map_key(job.job_id),
            io.BytesIO(body),
            len(body),
            content_type="application/json",
        )
        return StagedStudy(
            job_id=job.job_id,
            study_instance_uid=results[0].study[1],
            instance_count=len(results),
            series_count=len({r.series[1] for r in results}),
            staging_prefix=job_prefix(job.job_id) + "staged/",
            map_key=map_key(job.job_id),
        )

    def _staged(self, prefix: str) -> list[str]:
        listed = self.archive.client.list_objects(self.archive.bucket, prefix, recursive=True)
        return sorted(str(o.object_name) for o in listed)

    def _get(self, key: str) -> bytes:
        data = get_bytes(self.archive.client, self.archive.bucket, key)
        if data is None:
            raise OSError(f"staged copy {key} vanished")
        return data

    def _to_archive(self, keys: list[str]) -> Delivered:
        for start in range(0, len(keys), STOW_BATCH):
            batch = [self._get(key) for key in keys[start : start + STOW_BATCH]]
            try:
                self.writer.store_instances(batch)
            except ApiRefused as exc:
                raise ApplicationError(
                    f"the archive refused the copy: {exc}", type="StowRefused", non_retryable=True
                ) from exc
        return Delivered(delivered=len(keys), detail="stored as a new study")

    def _to_zip(self, job_id: str, prefix: str, keys: list[str]) -> Delivered:
        with tempfile.TemporaryFile() as spool:
            # Level 1: most of a study is pixel data, which deflates little at any level.
            with zipfile.ZipFile(
                spool, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1
            ) as archive:
                for key in keys:
                    archive.writestr(key.removeprefix(prefix), self._get(key))
            size = spool.tell()
            spool.seek(0)
            self.archive.client.put_object(
                self.archive.bucket, zip_key(job_id), spool, size, content_type="application/zip"
            )
        return Delivered(delivered=len(keys), zip_key=zip_key(job_id), detail=f"{size} bytes")

    def _to_node(self, name: str, keys: list[str]) -> Delivered:
        node = next((n for n in self.catalog.nodes() if n.name == name), None)
        if node is None:
            raise ApplicationError(f"no node {name}", type="NodeNotFound", non_retryable=True)
        peer = Peer(
            host=node.host,
            port=node.port,
            ae_title=node.ae_title,
            calling_ae_title=self.calling_ae_title,
        )
        with tempfile.TemporaryDirectory() as folder:
            files = []
            for key in keys:
                path = Path(folder) / key.rsplit("/", 1)[-1]
                path.write_bytes(self._get(key))
                files.append(path)
            results = store_files(peer, files, 2, lambda _: None)
        failed = [r for r in results if not r.ok]
        if failed:
            # A peer's refusal or a lost association: retried by the workflow's policy.
            raise OSError(f"{len(failed)} of {len(files)} not stored at {name}: {failed[0].reason}")
        return Delivered(delivered=len(results), detail=f"C-STORE to {node.ae_title}")

    def _deliver(self, deliver: DeliverInput) -> Delivered:
        keys = self._staged(deliver.staging_prefix)
        if deliver.target == "archive":
            done = self._to_archive(keys)
        elif deliver.target == "zip":
            done = self._to_zip(deliver.job_id, deliver.staging_prefix, keys)
        else:
            done = self._to_node(deliver.target, keys)
        return done

    @activity.defn
    async def deliver_copy(self, deliver: DeliverInput) -> Delivered:
        """Send the staged copy to its target (the staged objects stay for a retry)."""
        return await heartbeating(asyncio.to_thread(self._deliver, deliver))

    def _drop(self, prefix: str) -> int:
        keys = self._staged(prefix)
        for key in keys:
            self.archive.client.remove_object(self.archive.bucket, key)
        return len(keys)

    @activity.defn
    async def drop_staged(self, deliver: DeliverInput) -> int:
        """Remove the staged copy once delivered (the zip and the map stay)."""
        return await asyncio.to_thread(self._drop, deliver.staging_prefix)


def _reidentification_map(
    job: DeidentificationInput, results: list[Replacements]
) -> ReidentificationMap:
    first = results[0]
    named = {first.study[0]} | {r.series[0] for r in results} | {r.sop[0] for r in results}
    others: dict[str, str] = {}
    for result in results:
        others.update((old, new) for old, new in result.uids.items() if old not in named)
    return ReidentificationMap(
        job_id=job.job_id,
        options=job.options,
        patient_id=UidPair(original=first.patient_id[0], deidentified=first.patient_id[1]),
        patient_name=UidPair(original=first.patient_name[0], deidentified=first.patient_name[1]),
        date_offset_days=first.date_offset_days,
        study_instance_uid=UidPair(original=first.study[0], deidentified=first.study[1]),
        instances=[
            InstanceMapping(
                series_instance_uid=UidPair(original=r.series[0], deidentified=r.series[1]),
                sop_instance_uid=UidPair(original=r.sop[0], deidentified=r.sop[1]),
            )
            for r in results
        ],
        other_uids=[UidPair(original=o, deidentified=n) for o, n in sorted(others.items())],
    )
