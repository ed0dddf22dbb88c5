"""Patient corrections and merges (admin, audited): `PATCH /api/patients/{patient_id}`
changes PatientName, PatientID, PatientBirthDate or PatientSex on every study of the
patient; `POST /api/patients/merge` makes every study of one patient a study of another,
with that patient's demographics. Each changed study is a `pacs.study.patient-updated`
event; the catalog (QIDO, C-FIND, WADO-RS metadata) shows the new values when the answer
comes, and retrieves coerce them into the objects they send (docs/lifecycle.md)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request

from api.deps import CallerDep, Services, ServicesDep, audit, catalog_of, publish_visible, require
from infra.auth.permissions import Permission
from infra.readmodels.catalog.attributes import Level
from infra.readmodels.catalog.search import Search
from schemas.events import Event, StudyPatientUpdated
from schemas.patients import PatientCorrection, PatientMerge, PatientUpdated

router = APIRouter(
    prefix="/api/patients", tags=["patients"], dependencies=[require(Permission.ADMIN)]
)

PatientIdPath = Annotated[str, Path(min_length=1, max_length=64)]


def _value(row: dict[str, Any], tag: str) -> str:
    values = row.get(tag, {}).get("Value") or [""]
    first = values[0]
    return str(first.get("Alphabetic", "")) if isinstance(first, dict) else str(first)


async def _studies_of(services: Services, patient_id: str) -> list[str]:
    found = await asyncio.to_thread(
        catalog_of(services).search,
        Search(Level.STUDY, {"PatientID": patient_id}, ["StudyInstanceUID"], defaults=False),
    )
    return sorted({_value(row, "0020000D") for row in found.rows} - {""})


async def _record(
    services: Services,
    kind: Literal["correction", "merge"],
    patient_id: str,
    studies: list[str],
    changes: dict[str, str],
    reason: str,
    actor: str,
) -> PatientUpdated:
    events: list[Event] = [
        StudyPatientUpdated(
            study_instance_uid=study,
            patient_id=patient_id,
            kind=kind,
            changes=changes,
            reason=reason,
            actor=actor,
        )
        for study in studies
    ]
    await publish_visible(services, *events)
    return PatientUpdated(kind=kind, patient_id=patient_id, changes=changes, studies=studies)


@router.patch("/{patient_id}", response_model=PatientUpdated)
async def correct_patient(
    patient_id: PatientIdPath,
    body: PatientCorrection,
    request: Request,
    services: ServicesDep,
    caller: CallerDep,
) -> PatientUpdated:
    """Correct the patient's attributes on every one of its studies (404: no study has
    this PatientID; 422: nothing to change)."""
    changes = body.values()
    changes.pop("reason", None)
    if not changes:
        keys = "PatientName, PatientID, PatientBirthDate or PatientSex"
        raise HTTPException(422, f"nothing to change: give {keys}")
    studies = await _studies_of(services, patient_id)
    if not studies:
        raise HTTPException(404, f"no study of patient {patient_id} is stored")
    done = await _record(
        services, "correction", patient_id, studies, changes, body.reason, caller.name
    )
    detail = f"{', '.join(sorted(changes))} on {len(studies)} studies"
    audit(request, "patient-correct", "success", detail, caller, patient_id=patient_id)
    return done


@router.post("/merge", response_model=PatientUpdated)
async def merge_patients(
    body: PatientMerge, request: Request, services: ServicesDep, caller: CallerDep
) -> PatientUpdated:
    """Every study of the source patient becomes a study of the target patient, with the
    target's PatientID, PatientName, PatientBirthDate and PatientSex."""
    source, target = body.source_patient_id, body.target_patient_id
    if source == target:
        raise HTTPException(422, "a patient cannot be merged into itself")
    found = await asyncio.to_thread(
        catalog_of(services).search,
        Search(
            Level.PATIENT, {"PatientID": target},
            ["PatientName", "PatientBirthDate", "PatientSex"], defaults=False,
        ),
    )  # fmt: skip
    if not found.rows:
        raise HTTPException(404, f"the target patient {target} has no stored study")
    row = found.rows[0]
    changes = {
        "PatientID": target,
        "PatientName": _value(row, "00100010"),
        "PatientBirthDate": _value(row, "00100030"),
        "PatientSex": _value(row, "00100040"),
    }
    studies = await _studies_of(services, source)
    if not studies:
        raise HTTPException(404, f"no study of patient {source} is stored")
    done = await _record(services, "merge", source, studies, changes, body.reason, caller.name)
    detail = f"{len(studies)} studies into {target}"
    audit(request, "patient-merge", "success", detail, caller, patient_id=source)
    return done
