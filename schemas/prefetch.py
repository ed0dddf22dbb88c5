"""Prefetch of priors: rules (which scheduled procedures pull which prior studies, from
where), the on-demand request, and the workflow's input, findings and result.

Which priors are chosen is decided here, as a pure function of what the sources answered
and what is stored here (`choose_priors`), so the workflow and its tests share one rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from schemas.nodes import NODE_NAME_PATTERN, NodeNames, SavedVersion
from schemas.routing import value_matches

RULE_NAME_PATTERN = NODE_NAME_PATTERN
# On a scheduled procedure, rules match on these (of the worklist item).
TriggerKey = Literal["Modality", "ScheduledStationAETitle", "RequestedProcedureDescription"]
# How priors are pulled: C-GET (over our own association), C-MOVE (the source sends them
# to our AE title, so it must know us), or WADO-RS from the node's dicomweb_url.
PrefetchVia = Literal["c-get", "c-move", "wado"]


class PriorChoice(BaseModel):
    """Which of the patient's studies on the sources are wanted."""

    sources: NodeNames = Field(min_length=1, max_length=16)
    via: PrefetchVia = "c-get"
    # Prior studies with any of these modalities (ModalitiesInStudy; DICOM wildcards);
    # empty = any modality.
    modalities: list[str] = Field(default_factory=list, max_length=32)
    # With any series of these body parts (BodyPartExamined, asked at series level);
    # empty = any.
    body_parts: list[str] = Field(default_factory=list, max_length=32)
    lookback_days: int = Field(default=5 * 365, ge=1, le=200 * 365)
    max_studies: int = Field(default=3, ge=1, le=100)


class PrefetchRuleBody(PriorChoice):
    """On each scheduled worklist item that `match` matches, prefetch the priors `PriorChoice`
    names."""

    match: dict[TriggerKey, str] = Field(default_factory=dict)
    enabled: bool = True
    description: str = Field(default="", max_length=1024)

    def matches(self, attributes: Mapping[str, str]) -> bool:
        return all(value_matches(p, attributes.get(k, "")) for k, p in self.match.items())


class PrefetchRule(PrefetchRuleBody, SavedVersion):
    """A saved rule."""


class PrefetchRequest(PriorChoice):
    """POST /api/prefetch: the priors of this patient, now."""

    patient_id: str = Field(min_length=1, max_length=64)
    accession_number: str = Field(default="", max_length=16)
    # The study the priors are for (left out of the priors), if known.
    study_instance_uid: str = Field(default="", max_length=64)
    # Wanted here by then (reported late otherwise); none = as soon as may be.
    deadline: datetime | None = None


class PrefetchInput(PrefetchRequest):
    """Start input of PrefetchWorkflow."""

    rule: str = ""  # the rule that asked, or "" on demand
    requested_by: str = ""


def prefetch_workflow_id(patient_id: str, accession_number: str) -> str:
    """One prefetch per patient and accession at a time: a repeat (the same item scheduled
    again, or asked for on demand meanwhile) finds the running one. Hashed: the id is shown
    in places (the Temporal UI, logs) that should not show a PatientID in clear."""
    digest = hashlib.sha256(f"{patient_id}\x00{accession_number}".encode()).hexdigest()
    return f"prefetch:{digest[:32]}"


class RemoteStudy(BaseModel):
    """A study a source holds for the patient (its C-FIND or QIDO answer)."""

    source: str
    study_instance_uid: str
    study_date: date | None = None
    modalities: list[str] = Field(default_factory=list)
    body_parts: list[str] = Field(default_factory=list)  # only when asked (series level)
    instances: int | None = None  # NumberOfStudyRelatedInstances, if the source says
    description: str = ""


Decision = Literal["pull", "complete here", "too old", "not wanted", "over the maximum"]


class PriorDecision(BaseModel):
    study: RemoteStudy
    decision: Decision
    local_instances: int = 0


def choose_priors(
    found: list[RemoteStudy],
    local_counts: Mapping[str, int],
    choice: PriorChoice,
    today: date,
    exclude: str = "",
) -> list[PriorDecision]:
    """Every study found, with what to do with it: the newest `max_studies` of the wanted
    ones within the lookback are pulled unless they are complete here already (as many
    instances here as the source reports). A study on two sources is decided once, from
    the first source that listed it."""
    seen: set[str] = {exclude} if exclude else set()
    unique: list[RemoteStudy] = []
    for study in found:
        if study.study_instance_uid not in seen:
            seen.add(study.study_instance_uid)
            unique.append(study)
    unique.sort(key=lambda s: s.study_date or date.min, reverse=True)
    oldest = today - timedelta(days=choice.lookback_days)
    out: list[PriorDecision] = []
    chosen = 0
    for study in unique:
        here = local_counts.get(study.study_instance_uid, 0)
        decision: Decision
        if study.study_date is not None and study.study_date < oldest:
            decision = "too old"
        elif not _wanted(study, choice):
            decision = "not wanted"
        elif chosen >= choice.max_studies:
            decision = "over the maximum"
        else:
            chosen += 1
            complete = study.instances is not None and here >= study.instances > 0
            decision = "complete here" if complete else "pull"
        out.append(PriorDecision(study=study, decision=decision, local_instances=here))
    return out


def _wanted(study: RemoteStudy, choice: PriorChoice) -> bool:
    def any_match(patterns: list[str], values: list[str]) -> bool:
        return not patterns or any(value_matches(p, v) for p in patterns for v in values)

    return any_match(choice.modalities, study.modalities) and any_match(
        choice.body_parts, study.body_parts
    )


class FindPriors(BaseModel):
    """Activity input: ask every source for the patient's studies."""

    patient_id: str
    choice: PriorChoice


class LocalCounts(BaseModel):
    study_instance_uids: list[str]


class PullStudy(BaseModel):
    """Activity input: bring one study here from its source."""

    study: RemoteStudy
    via: PrefetchVia
    expected: int | None = None  # instances the source reported
    series_instance_uids: list[str] = Field(default_factory=list)  # none: the whole study


class Pulled(BaseModel):
    study_instance_uid: str
    source: str
    received: int  # instances the source sent (C-GET/WADO: stored through our ingest path)
    failed: int = 0
    detail: str = ""


class PrefetchResult(BaseModel):
    """What the workflow returns, and its progress query shows while it runs."""

    decisions: list[PriorDecision] = Field(default_factory=list)
    pulled: list[Pulled] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)  # studies that could not be pulled, why
    late: bool = False  # finished after the deadline
