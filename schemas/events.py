"""Events on the log: the source of truth for what happened.

An event's wire identity is `type` + `version`, never a Python class path. Old versions
are upcast when read, never rewritten. Every event carries an `event_id`; where the same
fact may be announced twice (a re-sent instance, a crash between landing and ack) the id is
derived from the fact itself, so consumers can drop the repeat.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.audit import AccessEntry
from schemas.commitment import CommitmentFailure, CommitmentRef, DeliveryPath
from schemas.instance_ref import InstanceRef as InstanceRef  # re-exported: events name it
from schemas.lifecycle import DeletionScope, FixityProblem
from schemas.mpps import InstanceVerification, MppsState
from schemas.nodes import HealthStatus, Node, NodeProbe
from schemas.prefetch import PrefetchRule
from schemas.retention import RetentionRule
from schemas.routing import RoutingRule, Via
from schemas.security import ApiKey, User
from schemas.sync import SettledConflict, SyncRelation
from schemas.tiers import StorageRule
from schemas.worklist import WorklistItem

# Fixed namespace for deterministic event ids (uuid5); changing it would break dedup.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a53-0d7e-4d0b-9a55-2f6b1f1c8e01")


def fact_event_id(*parts: str) -> uuid.UUID:
    """An event id derived from the fact it announces, so a repeat has the same id."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(parts))


def _now() -> datetime:
    return datetime.now(UTC)


class EventBase(BaseModel):
    """Fields every event has."""

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=_now)


class MetadataRef(BaseModel):
    """Where an instance's header (DICOM JSON) too large for its event was stored."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    sha256: str  # of the stored JSON bytes
    size: int


class InstanceReceived(EventBase):
    """An instance's bytes are durable in the landing area; the sender has (or will) get success."""

    type: Literal["pacs.instance.received"] = "pacs.instance.received"
    version: Literal[1] = 1
    instance: InstanceRef
    transfer_syntax_uid: str
    patient_id: str = ""
    modality: str = ""
    landing_mode: Literal["spool", "s3"]
    landing_key: str
    # "dimse" or "stow"; who sent it (calling AE title, or HTTP client address)
    via: Literal["dimse", "stow"]
    calling_ae: str = ""
    client: str = ""
    # Set when the duplicate policy let these bytes replace an earlier version.
    replaces_sha256: str | None = None
    # The header as DICOM JSON (PS3.18 F.2), bulk data as BulkDataURIs relative to the
    # DICOMweb root. Read models (C-FIND, QIDO, WADO-RS metadata) are built from this, so
    # they never re-read the object. Absent on events written before it existed.
    metadata: dict[str, Any] | None = None
    # Instead of `metadata`, when the header is too large to travel in the event (an enhanced
    # multi-frame object's per-frame functional groups): where it was stored first.
    metadata_ref: MetadataRef | None = None


class InstanceRejected(EventBase):
    """A received instance was refused after its bytes arrived (e.g. a different duplicate)."""

    type: Literal["pacs.instance.rejected"] = "pacs.instance.rejected"
    version: Literal[1] = 1
    instance: InstanceRef
    reason: str
    existing_sha256: str = ""
    via: Literal["dimse", "stow"]
    calling_ae: str = ""
    client: str = ""


class InstanceStored(EventBase):
    """An instance is in the archive bucket, its checksum verified after the write."""

    type: Literal["pacs.instance.stored"] = "pacs.instance.stored"
    version: Literal[1] = 1
    instance: InstanceRef
    bucket: str
    archive_key: str
    # Where the earlier version went when this one replaced it (duplicate policy overwrite).
    previous_version_key: str | None = None
    # The storage tier that holds it: hot on arrival; a copy sent again while its study is in
    # warm or cold is found there, identical, and stays there.
    tier: str = "hot"


class InstanceMigrated(EventBase):
    """An instance's verified copy is now in another tier; the source copy is removed next
    (an instance has one location after a move, and at least one at every step of it)."""

    type: Literal["pacs.instance.migrated"] = "pacs.instance.migrated"
    version: Literal[1] = 1
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sha256: str
    size: int
    from_tier: str
    to_tier: str
    key: str
    location: str  # s3://bucket or azure://container of the new copy
    migration_id: str  # the StudyMigrationWorkflow's id


class StorageRuleSaved(EventBase):
    """A storage rule was made or changed: its whole new version."""

    type: Literal["pacs.storage-rule.saved"] = "pacs.storage-rule.saved"
    version: Literal[1] = 1
    rule: StorageRule
    actor: str


class RetentionRuleSaved(EventBase):
    """A retention rule was made or changed: its whole new version."""

    type: Literal["pacs.retention-rule.saved"] = "pacs.retention-rule.saved"
    version: Literal[1] = 1
    rule: RetentionRule
    actor: str


class RetentionRuleDeleted(EventBase):
    type: Literal["pacs.retention-rule.deleted"] = "pacs.retention-rule.deleted"
    version: Literal[1] = 1
    name: str
    rule_version: int
    actor: str


class StorageRuleDeleted(EventBase):
    type: Literal["pacs.storage-rule.deleted"] = "pacs.storage-rule.deleted"
    version: Literal[1] = 1
    name: str
    rule_version: int
    actor: str


class StudyPatientUpdated(EventBase):
    """A study's patient attributes were corrected, or the study was merged into another
    patient: the catalog shows the new values, also for instances received later, and every
    retrieve coerces them into the objects it sends (stored objects are not rewritten).
    One event per study, keyed by it, so it is ordered with the study's instances."""

    type: Literal["pacs.study.patient-updated"] = "pacs.study.patient-updated"
    version: Literal[1] = 1
    study_instance_uid: str
    patient_id: str  # the study's PatientID before
    kind: Literal["correction", "merge"]
    changes: dict[str, str]  # DICOM keyword -> new value (schemas/patients.py)
    reason: str = ""
    actor: str


class InstancesDeleted(EventBase):
    """A study, series or instance was deleted: gone from every read model at once; its
    bytes stay until `purge_after`, then a DeletionWorkflow removes them. What is received
    again after this event is a new arrival."""

    type: Literal["pacs.instances.deleted"] = "pacs.instances.deleted"
    version: Literal[1] = 1
    deletion_id: str
    scope: DeletionScope
    patient_id: str = ""
    reason: str = ""
    actor: str
    purge_after: datetime

    @property
    def study_instance_uid(self) -> str:
        return self.scope.study_instance_uid


class InstanceDamaged(EventBase):
    """A fixity check found an archived object that no longer reads back as stored."""

    type: Literal["pacs.instance.damaged"] = "pacs.instance.damaged"
    version: Literal[1] = 1
    problem: FixityProblem
    workflow_id: str  # the FixityWorkflow run that found it

    @property
    def study_instance_uid(self) -> str:
        return self.problem.study_instance_uid


class FixityChecked(EventBase):
    """A fixity run re-read archived objects and compared their SHA-256 with the recorded."""

    type: Literal["pacs.fixity.checked"] = "pacs.fixity.checked"
    version: Literal[1] = 1
    workflow_id: str
    study_instance_uid: str = ""  # the study checked; "" for the whole archive
    checked: int
    bytes_read: int
    damaged: int


class InstancesPurged(EventBase):
    """The bytes of a deletion were removed from storage."""

    type: Literal["pacs.instances.purged"] = "pacs.instances.purged"
    version: Literal[1] = 1
    deletion_id: str
    scope: DeletionScope
    objects_removed: int
    bytes_removed: int
    kept: list[str] = Field(default_factory=list)  # received again since the deletion

    @property
    def study_instance_uid(self) -> str:
        return self.scope.study_instance_uid


class StudyStabilized(EventBase):
    """No new instance arrived for the study's quiet period."""

    type: Literal["pacs.study.stabilized"] = "pacs.study.stabilized"
    version: Literal[1] = 1
    study_instance_uid: str
    patient_id: str = ""
    series_count: int
    instance_count: int
    quiet_seconds: float


class WorklistItemScheduled(EventBase):
    """A procedure was scheduled through the worklist API; modalities now find it by C-FIND."""

    type: Literal["pacs.worklist.item-scheduled"] = "pacs.worklist.item-scheduled"
    version: Literal[1] = 1
    item: WorklistItem
    study_instance_uid: str
    patient_id: str
    client: str = ""


class WorklistItemUpdated(EventBase):
    """A scheduled procedure was replaced by a new version (the whole item is in the event)."""

    type: Literal["pacs.worklist.item-updated"] = "pacs.worklist.item-updated"
    version: Literal[1] = 1
    item: WorklistItem
    study_instance_uid: str
    patient_id: str
    client: str = ""


class WorklistItemCancelled(EventBase):
    """A scheduled procedure was withdrawn; the MWL stops returning it."""

    type: Literal["pacs.worklist.item-cancelled"] = "pacs.worklist.item-cancelled"
    version: Literal[1] = 1
    item_id: str
    study_instance_uid: str
    patient_id: str
    reason: str = ""
    client: str = ""


class MppsCreated(EventBase):
    """A modality started a procedure step (N-CREATE, status IN PROGRESS)."""

    type: Literal["pacs.mpps.created"] = "pacs.mpps.created"
    version: Literal[1] = 1
    mpps: MppsState
    study_instance_uid: str
    patient_id: str


class MppsUpdated(EventBase):
    """An N-SET changed a procedure step that is still IN PROGRESS."""

    type: Literal["pacs.mpps.updated"] = "pacs.mpps.updated"
    version: Literal[1] = 1
    mpps: MppsState
    study_instance_uid: str
    patient_id: str


class MppsCompleted(EventBase):
    """The modality finished the procedure step (N-SET COMPLETED); linked to its worklist item."""

    type: Literal["pacs.mpps.completed"] = "pacs.mpps.completed"
    version: Literal[1] = 1
    mpps: MppsState
    study_instance_uid: str
    patient_id: str
    worklist_item_id: str | None = None


class MppsDiscontinued(EventBase):
    """The modality abandoned the procedure step (N-SET DISCONTINUED)."""

    type: Literal["pacs.mpps.discontinued"] = "pacs.mpps.discontinued"
    version: Literal[1] = 1
    mpps: MppsState
    study_instance_uid: str
    patient_id: str
    worklist_item_id: str | None = None


class MppsVerified(EventBase):
    """Outcome of checking that the instances a completed MPPS lists reached the archive."""

    type: Literal["pacs.mpps.verified"] = "pacs.mpps.verified"
    version: Literal[1] = 1
    sop_instance_uid: str
    study_instance_uid: str
    patient_id: str
    worklist_item_id: str | None = None
    verification: InstanceVerification


class CommitmentRequested(EventBase):
    """A peer asked us to commit to keeping these instances (N-ACTION, Storage Commitment)."""

    type: Literal["pacs.commitment.requested"] = "pacs.commitment.requested"
    version: Literal[1] = 1
    transaction_uid: str
    calling_ae: str
    references: list[CommitmentRef]
    study_instance_uid: str = ""
    patient_id: str = ""


class CommitmentReported(EventBase):
    """The commitment outcome was sent (or could not be sent) to the requester."""

    type: Literal["pacs.commitment.reported"] = "pacs.commitment.reported"
    version: Literal[1] = 1
    transaction_uid: str
    calling_ae: str
    success: list[CommitmentRef]
    failed: list[CommitmentFailure]
    delivered_via: DeliveryPath
    detail: str = ""
    study_instance_uid: str = ""
    patient_id: str = ""


class UserSaved(EventBase):
    """A local user was created or changed: the whole new state (hash, roles, disabled)."""

    type: Literal["pacs.user.saved"] = "pacs.user.saved"
    version: Literal[1] = 1
    user: User
    actor: str  # who made the change ("bootstrap" for the first admin)


class UserDeleted(EventBase):
    """A local user was removed; its tokens stop working at once."""

    type: Literal["pacs.user.deleted"] = "pacs.user.deleted"
    version: Literal[1] = 1
    username: str
    actor: str


class ApiKeyCreated(EventBase):
    """An API key was issued (its secret is not in the event, only its SHA-256)."""

    type: Literal["pacs.api-key.created"] = "pacs.api-key.created"
    version: Literal[1] = 1
    key: ApiKey
    actor: str


class ApiKeyRevoked(EventBase):
    type: Literal["pacs.api-key.revoked"] = "pacs.api-key.revoked"
    version: Literal[1] = 1
    key_id: str
    actor: str


class NodeSaved(EventBase):
    """A DICOM node was registered or changed: its whole new state."""

    type: Literal["pacs.node.saved"] = "pacs.node.saved"
    version: Literal[1] = 1
    node: Node
    actor: str


class NodeDeleted(EventBase):
    type: Literal["pacs.node.deleted"] = "pacs.node.deleted"
    version: Literal[1] = 1
    name: str
    actor: str


class NodeChecked(EventBase):
    """The health schedule checked a node (every round, so its current state and round trip
    are on the log; one small event per node per round)."""

    type: Literal["pacs.node.checked"] = "pacs.node.checked"
    version: Literal[1] = 1
    name: str
    status: HealthStatus
    probes: list[NodeProbe]


class NodeStatusChanged(EventBase):
    """A node's health status differs from what the previous check found (or it is its
    first check): what routing, alerting and the history react to."""

    type: Literal["pacs.node.status-changed"] = "pacs.node.status-changed"
    version: Literal[1] = 1
    name: str
    status: HealthStatus
    previous: HealthStatus | None
    reason: str = ""  # the failing probes' errors, when it is not up


class RoutingRuleSaved(EventBase):
    """A routing rule was made or changed: its whole new version."""

    type: Literal["pacs.routing-rule.saved"] = "pacs.routing-rule.saved"
    version: Literal[1] = 1
    rule: RoutingRule
    actor: str


class RoutingRuleDeleted(EventBase):
    type: Literal["pacs.routing-rule.deleted"] = "pacs.routing-rule.deleted"
    version: Literal[1] = 1
    name: str
    rule_version: int  # the version deleted
    actor: str


class PrefetchRuleSaved(EventBase):
    """A prefetch rule was made or changed: its whole new version."""

    type: Literal["pacs.prefetch-rule.saved"] = "pacs.prefetch-rule.saved"
    version: Literal[1] = 1
    rule: PrefetchRule
    actor: str


class PrefetchRuleDeleted(EventBase):
    type: Literal["pacs.prefetch-rule.deleted"] = "pacs.prefetch-rule.deleted"
    version: Literal[1] = 1
    name: str
    rule_version: int
    actor: str


class PrefetchCompleted(EventBase):
    """A prefetch of one patient's priors ended: what was pulled, skipped and failed."""

    type: Literal["pacs.prefetch.completed"] = "pacs.prefetch.completed"
    version: Literal[1] = 1
    patient_id: str
    accession_number: str = ""
    workflow_id: str
    rule: str = ""
    pulled: list[str]  # Study Instance UIDs
    skipped: list[str]  # complete here already
    failed: list[str]
    late: bool = False


class SyncRelationSaved(EventBase):
    """A sync relation was made or changed: its whole new version."""

    type: Literal["pacs.sync-relation.saved"] = "pacs.sync-relation.saved"
    version: Literal[1] = 1
    rule: SyncRelation
    actor: str


class SyncRelationDeleted(EventBase):
    type: Literal["pacs.sync-relation.deleted"] = "pacs.sync-relation.deleted"
    version: Literal[1] = 1
    name: str
    rule_version: int
    actor: str


class SyncCompleted(EventBase):
    """One run of a sync relation ended: what it pulled, pushed and could not move."""

    type: Literal["pacs.sync.completed"] = "pacs.sync.completed"
    version: Literal[1] = 1
    relation: str
    node: str
    workflow_id: str
    studies_here: int
    studies_there: int
    same: int
    pulled: list[str]
    pushed: list[str]
    failed: list[str]
    # Of studies both sides held: series moved, and conflicts found (each its own event).
    series_pulled: int = 0
    series_pushed: int = 0
    conflicts: int = 0


class SyncConflictFound(EventBase):
    """A sync run found the same SOP Instance UID with different content on the two sides,
    and what its conflict policy did about it."""

    type: Literal["pacs.sync.conflict"] = "pacs.sync.conflict"
    version: Literal[1] = 1
    relation: str
    node: str
    workflow_id: str
    conflict: SettledConflict


class RouteDelivered(EventBase):
    """A batch of instances was stored at a routing destination (one association, or one
    STOW-RS request), each answered with success."""

    type: Literal["pacs.route.delivered"] = "pacs.route.delivered"
    version: Literal[1] = 1
    destination: str
    via: Via
    study_instance_uid: str
    sop_instance_uids: list[str]
    rules: list[str]


class RouteFailed(EventBase):
    """Instances could not be delivered within their rule's maximum age: dead letters, listed
    and replayable through /api/routing/deliveries."""

    type: Literal["pacs.route.failed"] = "pacs.route.failed"
    version: Literal[1] = 1
    destination: str
    via: Via
    study_instance_uid: str
    sop_instance_uids: list[str]
    reason: str


class StudyLabelsSet(EventBase):
    """A study's access labels were set (replacing the previous ones); role bindings scoped
    by label reach the studies that carry it."""

    type: Literal["pacs.study.labels-set"] = "pacs.study.labels-set"
    version: Literal[1] = 1
    study_instance_uid: str
    labels: list[str]
    actor: str


class CertificateIssued(EventBase):
    """A client certificate for an AE title was issued by the local CA (POST
    /api/certificates/clients/{ae_title}); its holder can now authenticate over TLS."""

    type: Literal["pacs.certificate.issued"] = "pacs.certificate.issued"
    version: Literal[1] = 1
    ae_title: str
    sha256: str  # fingerprint of the certificate (DER)
    not_after: datetime
    actor: str


class AccessAudited(EventBase):
    """PHI accesses and security decisions of one process, batched (the recorder flushes a
    few times a second), so auditing never waits on the log."""

    type: Literal["pacs.audit.recorded"] = "pacs.audit.recorded"
    version: Literal[1] = 1
    source: str  # the process: api, gateway
    entries: list[AccessEntry]


class StudyDeidentified(EventBase):
    """A de-identified copy of a study was made and delivered (DeidentificationWorkflow).

    The copy's identifiers are not here: the link between a copy and its patient is the
    re-identification map, which only admin reads; the log says who had which study
    de-identified, when, how and where to."""

    type: Literal["pacs.study.deidentified"] = "pacs.study.deidentified"
    version: Literal[1] = 1
    study_instance_uid: str  # the source study
    patient_id: str = ""  # not logged; the audit trail finds the patient through the study
    job_id: str
    options: list[str]
    target: str
    instance_count: int
    actor: str


WorklistEvent = WorklistItemScheduled | WorklistItemUpdated | WorklistItemCancelled
MppsEvent = MppsCreated | MppsUpdated | MppsCompleted | MppsDiscontinued | MppsVerified
CommitmentEvent = CommitmentRequested | CommitmentReported
SecurityEvent = (
    UserSaved
    | UserDeleted
    | ApiKeyCreated
    | ApiKeyRevoked
    | NodeSaved
    | NodeDeleted
    | CertificateIssued
)
NodeHealthEvent = NodeChecked | NodeStatusChanged
RoutingRuleEvent = RoutingRuleSaved | RoutingRuleDeleted
StorageRuleEvent = StorageRuleSaved | StorageRuleDeleted | RetentionRuleSaved | RetentionRuleDeleted
PrefetchEvent = PrefetchRuleSaved | PrefetchRuleDeleted | PrefetchCompleted
SyncEvent = SyncRelationSaved | SyncRelationDeleted | SyncCompleted | SyncConflictFound
RouteEvent = RouteDelivered | RouteFailed
DeletionEvent = InstancesDeleted | InstancesPurged
FixityEvent = InstanceDamaged | FixityChecked

Event = Annotated[
    InstanceReceived
    | InstanceRejected
    | InstanceStored
    | InstanceMigrated
    | StorageRuleEvent
    | StudyPatientUpdated
    | StudyStabilized
    | StudyDeidentified
    | StudyLabelsSet
    | WorklistEvent
    | MppsEvent
    | CommitmentEvent
    | SecurityEvent
    | NodeHealthEvent
    | RoutingRuleEvent
    | PrefetchEvent
    | SyncEvent
    | RouteEvent
    | DeletionEvent
    | FixityEvent
    | AccessAudited,
    Field(discriminator="type"),
]

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(raw: bytes | str) -> Event:
    """Decode an event from its JSON wire form (upcasting older versions when there are any)."""
    return _EVENT_ADAPTER.validate_json(raw)


def event_key(event: Event) -> str:
    """The partition key: all events of a study stay in order on one partition.

    Events of an aggregate that may not know its study yet (a worklist item, an MPPS, a
    commitment transaction) are keyed by that aggregate, so its own events stay in order.
    """
    if isinstance(event, InstanceReceived | InstanceRejected | InstanceStored):
        return event.instance.study_instance_uid
    if isinstance(
        event,
        StudyStabilized
        | StudyDeidentified
        | StudyLabelsSet
        | RouteEvent
        | DeletionEvent
        | InstanceDamaged
        | InstanceMigrated
        | StudyPatientUpdated,
    ):
        return event.study_instance_uid
    if isinstance(event, SyncConflictFound):
        return event.conflict.study_instance_uid
    if isinstance(event, WorklistItemScheduled | WorklistItemUpdated):
        return f"worklist:{event.item.item_id}"
    if isinstance(event, WorklistItemCancelled):
        return f"worklist:{event.item_id}"
    if isinstance(event, MppsVerified):
        return f"mpps:{event.sop_instance_uid}"
    if isinstance(event, MppsCreated | MppsUpdated | MppsCompleted | MppsDiscontinued):
        return f"mpps:{event.mpps.sop_instance_uid}"
    if isinstance(event, UserSaved):
        return f"user:{event.user.username}"
    if isinstance(event, UserDeleted):
        return f"user:{event.username}"
    if isinstance(event, ApiKeyCreated):
        return f"api-key:{event.key.key_id}"
    if isinstance(event, ApiKeyRevoked):
        return f"api-key:{event.key_id}"
    if isinstance(event, AccessAudited):
        return f"audit:{event.source}"
    if isinstance(event, NodeSaved):
        return f"node:{event.node.name}"
    if isinstance(event, NodeDeleted | NodeChecked | NodeStatusChanged):
        return f"node:{event.name}"
    if isinstance(event, RoutingRuleSaved):
        return f"routing-rule:{event.rule.name}"
    if isinstance(event, RoutingRuleDeleted):
        return f"routing-rule:{event.name}"
    if isinstance(event, PrefetchRuleSaved):
        return f"prefetch-rule:{event.rule.name}"
    if isinstance(event, PrefetchRuleDeleted):
        return f"prefetch-rule:{event.name}"
    if isinstance(event, StorageRuleSaved):
        return f"storage-rule:{event.rule.name}"
    if isinstance(event, StorageRuleDeleted):
        return f"storage-rule:{event.name}"
    if isinstance(event, RetentionRuleSaved):
        return f"retention-rule:{event.rule.name}"
    if isinstance(event, RetentionRuleDeleted):
        return f"retention-rule:{event.name}"
    if isinstance(event, PrefetchCompleted):
        return f"patient:{event.patient_id}"
    if isinstance(event, SyncRelationSaved):
        return f"sync-relation:{event.rule.name}"
    if isinstance(event, SyncRelationDeleted):
        return f"sync-relation:{event.name}"
    if isinstance(event, SyncCompleted):
        return f"sync-relation:{event.relation}"
    if isinstance(event, CertificateIssued):
        return f"certificate:{event.ae_title}"
    if isinstance(event, FixityChecked):
        return f"fixity:{event.study_instance_uid or '*'}"
    return f"commitment:{event.transaction_uid}"
