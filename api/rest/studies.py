"""Study administration: access labels (admin only), which scope role bindings by label.

Lifecycle actions on a study (migrate, lock, delete) will join this module.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from api.deps import CallerDep, CatalogDep, ServicesDep, publish_visible, require
from infra.auth.permissions import Permission
from schemas.events import StudyLabelsSet

router = APIRouter(prefix="/api", tags=["studies"], dependencies=[require(Permission.ADMIN)])

UidPath = Annotated[str, Path(max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$")]
Label = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]


class StudyLabels(BaseModel):
    """A study's access labels; a role binding scoped by a label reaches the studies with it."""

    labels: list[Label] = Field(default_factory=list, max_length=50)


@router.get("/studies/{study}/labels", response_model=StudyLabels)
async def get_study_labels(study: UidPath, catalog: CatalogDep) -> StudyLabels:
    return StudyLabels(labels=await asyncio.to_thread(catalog.labels, study))


@router.put("/studies/{study}/labels", response_model=StudyLabels)
async def set_study_labels(
    study: UidPath, body: StudyLabels, services: ServicesDep, caller: CallerDep
) -> StudyLabels:
    """Replace the study's labels (an empty list removes them). The study need not be
    stored yet: labels set ahead of a prefetch apply once it arrives."""
    labels = sorted(set(body.labels))
    event = StudyLabelsSet(study_instance_uid=study, labels=labels, actor=caller.name)
    await publish_visible(services, event)
    return StudyLabels(labels=labels)
