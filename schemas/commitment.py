"""Storage Commitment Push Model (PS3.4 J): references asked for and the outcome reported."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class CommitmentRef(BaseModel):
    """One ReferencedSOPSequence item."""

    sop_class_uid: str
    sop_instance_uid: str


class CommitmentFailure(BaseModel):
    """One FailedSOPSequence item, with the reason code and a reason people can read."""

    ref: CommitmentRef
    failure_reason: int
    detail: str = ""


class CommitmentReport(BaseModel):
    """What goes into the N-EVENT-REPORT (event type 1: all committed, 2: some failed)."""

    transaction_uid: str
    success: list[CommitmentRef] = Field(default_factory=list)
    failed: list[CommitmentFailure] = Field(default_factory=list)

    @property
    def event_type_id(self) -> int:
        """PS3.4 J.3.3.1: 1 = request successful, 2 = complete, failures exist."""
        return 2 if self.failed else 1


DeliveryPath = Literal["same-association", "new-association", "undelivered"]


class StorageCommitmentInput(BaseModel):
    """Start input of StorageCommitmentWorkflow (from N-ACTION)."""

    transaction_uid: str
    calling_ae: str
    references: list[CommitmentRef]
    # Instances received but not yet archived are waited for this long, then reported as
    # failed; one never received is failed at once.
    wait_timeout_seconds: float = 30.0
    poll_seconds: float = 1.0
    # How long the result waits for the gateway holding the requester's association to
    # take it before a new association is opened instead (covers a gateway that died).
    claim_window_seconds: float = 15.0
    # How long a claimed report may take to be sent on that association.
    delivery_timeout_seconds: float = 60.0
    new_association_attempts: int = 5
    # How far the receiving gateway's own announcements reached on the log (partition ->
    # offset) when the N-ACTION came: the catalog, once past them, knows every instance
    # stored through that gateway before the request.
    log_positions: dict[int, int] = Field(default_factory=dict)


class CommitmentCheck(BaseModel):
    """Activity input: which of these instances are archived with a matching checksum?"""

    references: list[CommitmentRef]
    log_positions: dict[int, int] = Field(default_factory=dict)


# "missing" is final: not landed and absent from a caught-up catalog. "unconfirmed" is not
# found, but the catalog could not confirm the absence yet: checked again, like "not-archived".
RefState = Literal[
    "committed", "missing", "unconfirmed", "not-archived", "checksum-mismatch", "class-conflict"
]


class RefOutcome(BaseModel):
    ref: CommitmentRef
    state: RefState
    detail: str = ""


class CommitmentCheckResult(BaseModel):
    outcomes: list[RefOutcome]


class ClaimRequest(BaseModel):
    """Update: the gateway that holds the requester's association asks for the report."""

    gateway: str = ""


class ClaimResult(BaseModel):
    """Granted: the caller sends the report on its association and signals the outcome."""

    granted: bool
    report: CommitmentReport | None = None


class DeliveryOutcome(BaseModel):
    """Signal: whether the N-EVENT-REPORT was answered with success on that association."""

    delivered: bool
    detail: str = ""


class RequesterGone(BaseModel):
    """Signal: the association the request came on has ended."""

    detail: str = ""


class ReportDelivery(BaseModel):
    """Activity input: open an association to the requester and send the report."""

    report: CommitmentReport
    calling_ae: str


class CommitmentResult(BaseModel):
    """Workflow result: what was reported, and how it reached the requester."""

    report: CommitmentReport
    delivered_via: DeliveryPath
    detail: str = ""
