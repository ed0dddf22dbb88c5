"""What every WADO route needs: validated UIDs, an instance's bytes, a study's instance list.

Blocking work (object store reads, read-model queries, decoding) runs in worker threads so
the event loop keeps serving other requests.
"""

from __future__ import annotations

import asyncio

from fastapi import HTTPException
from pydicom import Dataset

from api.deps import Services, catalog_of
from api.dicomweb.recall import read_from
from infra.dicom.coerce import coerce_patient
from infra.dicom.header import validate_uid
from infra.dicom.pixels import PixelError, load_dataset
from infra.storage.locate import locate_instance
from schemas.catalog import CatalogInstance, InstanceQuery


def check_uids(**uids: str | None) -> None:
    """400 naming the first identifier that breaks PS3.5 9.1."""
    names = {
        "study": "StudyInstanceUID",
        "series": "SeriesInstanceUID",
        "instance": "SOPInstanceUID",
    }
    for key, value in uids.items():
        if value is None:
            continue
        if problem := validate_uid(names.get(key, key), value):
            raise HTTPException(400, problem)


async def instance_bytes(services: Services, study: str, series: str, instance: str) -> bytes:
    """The stored Part-10 bytes, or 404 naming what is missing (or deleted: its bytes stay
    until the purge, but it is no longer stored as far as anyone may see)."""
    check_uids(study=study, series=series, instance=instance)
    if services.pending_deletions.covers(study, series, instance):
        query = InstanceQuery(
            study_instance_uids=[study], series_instance_uids=[series], sop_instance_uids=[instance]
        )
        if not await asyncio.to_thread(catalog_of(services).instances, query):
            raise HTTPException(
                404, f"instance {instance} of series {series} not found in study {study}"
            )
    found = await asyncio.to_thread(
        locate_instance, services.landing, services.tiers, study, series, instance
    )
    if found is None:
        raise HTTPException(
            404, f"instance {instance} of series {series} not found in study {study}"
        )
    read_from(services, study, found[0])
    return await _coerced(services, study, found[1])


async def _coerced(services: Services, study: str, data: bytes) -> bytes:
    """With the study's corrected patient attributes, if it has any (a dict look-up)."""
    changes = services.corrections.of(study)
    return await asyncio.to_thread(coerce_patient, data, changes) if changes else data


async def listed_bytes(services: Services, item: CatalogInstance) -> bytes | None:
    """The bytes of a listed instance, or None when it went away since it was listed."""
    found = await asyncio.to_thread(
        locate_instance,
        services.landing,
        services.tiers,
        item.study_instance_uid,
        item.series_instance_uid,
        item.sop_instance_uid,
    )
    if found is None:
        return None
    read_from(services, item.study_instance_uid, found[0])
    return await _coerced(services, item.study_instance_uid, found[1])


async def instance_dataset(services: Services, study: str, series: str, instance: str) -> Dataset:
    data = await instance_bytes(services, study, series, instance)
    try:
        return await asyncio.to_thread(load_dataset, data)
    except PixelError as exc:
        raise HTTPException(500, exc.reason) from exc


async def list_instances(
    services: Services, study: str, series: str | None = None
) -> list[CatalogInstance]:
    """The instances of a study (or one of its series) in the read model, or 404."""
    check_uids(study=study, series=series)
    query = InstanceQuery(
        study_instance_uids=[study], series_instance_uids=[series] if series else []
    )
    found = await asyncio.to_thread(catalog_of(services).instances, query)
    if not found:
        where = f"series {series} of study {study}" if series else f"study {study}"
        raise HTTPException(404, f"no instances of {where} are stored")
    return found


def parse_frame_list(frame_list: str) -> list[int]:
    """`1,3,5` -> [1, 3, 5]; 400 with the offending item otherwise."""
    frames: list[int] = []
    for item in frame_list.split(","):
        text = item.strip()
        if not text.isdigit():
            raise HTTPException(400, f"frame number {text!r} is not a positive integer")
        number = int(text)
        if number < 1:
            raise HTTPException(400, "frame numbers start at 1")
        frames.append(number)
    return frames


def middle(items: list[CatalogInstance]) -> CatalogInstance:
    return items[len(items) // 2]
