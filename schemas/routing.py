"""Routing rules: which stored instances or stabilized studies go to which nodes, and how."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from fnmatch import fnmatchcase
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator

from schemas.deidentify import DeidentifyOptions
from schemas.instance_ref import InstanceRef
from schemas.nodes import NODE_NAME_PATTERN, NodeNames, SavedVersion

# The attributes a rule can match on: DICOM keywords, and the sender's AE title.
MatchKey = Literal[
    "Modality",
    "BodyPartExamined",
    "SOPClassUID",
    "StudyDescription",
    "InstitutionName",
    "CallingAE",
]
RULE_NAME_PATTERN = NODE_NAME_PATTERN


def value_matches(pattern: str, value: str) -> bool:
    """DICOM-style matching: `*` any run, `?` one character, `a\\b` either; case-sensitive
    as C-FIND is for most attributes, surrounding blanks ignored."""
    value = value.strip()
    for alternative in pattern.split("\\"):
        # `[` is literal in DICOM; fnmatch would read a character class.
        literal = alternative.strip().replace("[", "[[]")
        if fnmatchcase(value, literal):
            return True
    return False


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. Europe/Paris)") from exc


class ScheduleWindow(BaseModel):
    """Only between `start` and `end`, in `timezone` (an IANA name; empty = the platform's,
    PACS_FEDERATION__TIMEZONE); may wrap midnight, e.g. 20:00-06:00."""

    start: time
    end: time
    timezone: str = Field(default="", max_length=64)

    @model_validator(mode="after")
    def _valid(self) -> ScheduleWindow:
        if self.start == self.end:
            raise ValueError("a window from a time to the same time is empty")
        if self.timezone:
            zone(self.timezone)
        return self

    def contains(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def _zone(self) -> ZoneInfo:
        return zone(self.timezone or "UTC")

    def open_at(self, moment: datetime) -> bool:
        """Whether the window is open at this (aware) moment."""
        return self.contains(moment.astimezone(self._zone()).time().replace(tzinfo=None))

    def next_opening(self, moment: datetime) -> datetime:
        """The first moment at or after `moment` when the window is open (UTC)."""
        if self.open_at(moment):
            return moment
        tz = self._zone()
        local = moment.astimezone(tz)
        for days in (0, 1, 2):
            opening = datetime.combine(local.date() + timedelta(days=days), self.start, tz)
            if opening > local:
                return opening.astimezone(UTC)
        raise AssertionError("a daily window opens within two days")  # pragma: no cover


class RoutingRuleBody(BaseModel):
    """What to send (match), when (on each instance, or once a study is stable), where
    (destination node names), how (C-STORE or STOW-RS), and optionally only in a window or
    de-identified."""

    match: dict[MatchKey, str] = Field(default_factory=dict)
    on: Literal["instance", "study"] = "instance"
    destinations: NodeNames = Field(min_length=1, max_length=32)
    via: Literal["dimse", "stow"] = "dimse"
    window: ScheduleWindow | None = None
    # De-identified on the way out (the copy gets keyed UIDs and a pseudonym; the stored
    # instance is not touched), by the Basic Profile plus these options.
    deidentify: bool = False
    deidentify_options: DeidentifyOptions = DeidentifyOptions()
    enabled: bool = True
    description: str = Field(default="", max_length=1024)
    # Undeliverable for this long (destination down, or refusing): dead-lettered.
    max_age_seconds: float = Field(default=7 * 24 * 3600.0, gt=0, le=365 * 24 * 3600.0)

    @field_validator("match")
    @classmethod
    def _patterns(cls, values: dict[str, str]) -> dict[str, str]:
        for key, value in values.items():
            if not value.strip():
                raise ValueError(f"match {key}: an empty pattern; leave the key out to match all")
        return values

    def matches(self, attributes: Mapping[str, str]) -> bool:
        """Every key of `match` matches the attribute's value (a missing one is empty)."""
        return all(value_matches(p, attributes.get(k, "")) for k, p in self.match.items())


class RoutingRule(RoutingRuleBody, SavedVersion):
    """A saved rule."""


# ---- delivery -----------------------------------------------------------------------------

Via = Literal["dimse", "stow"]


class RouteItem(BaseModel):
    """One instance a rule sends to one destination: where its bytes are, why it goes, and
    how (only in the rule's window; de-identified or as stored)."""

    instance: InstanceRef
    landing_mode: str
    landing_key: str
    rule: str
    rule_version: int
    received_at: datetime
    # From when it could first be sent (its window's opening, else `received_at`): the
    # rule's maximum age counts from here, so waiting for a window does not age an item.
    due_at: datetime | None = None
    max_age_seconds: float  # the rule's: dead-lettered when undelivered for longer
    window: ScheduleWindow | None = None  # its timezone filled in (the platform's if unset)
    deidentify: DeidentifyOptions | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.instance.sop_instance_uid, self.instance.sha256)

    @property
    def study_instance_uid(self) -> str:
        return self.instance.study_instance_uid

    def sendable(self, moment: datetime) -> bool:
        return self.window is None or self.window.open_at(moment)

    def expired(self, moment: datetime) -> bool:
        since = self.due_at or self.received_at
        return moment - since > timedelta(seconds=self.max_age_seconds)


class RouteItems(BaseModel):
    """Signal to a destination's delivery workflow: more to send, in this order; `held`:
    only once their study is stable (an `on: study` rule)."""

    items: list[RouteItem]
    held: bool = False


class StudiesStable(BaseModel):
    """Signal: these studies were stabilized; what is held of them may go."""

    study_instance_uids: list[str]


class DeadLetter(BaseModel):
    item: RouteItem
    reason: str
    failed_at: datetime


class RouteDeliveryInput(BaseModel):
    """Start (and continue-as-new) state of RouteDeliveryWorkflow."""

    destination: str
    via: Via
    batch_size: int = 50
    queued: list[RouteItem] = Field(default_factory=list)
    # Items of `on: study` rules, per study, until it is stabilized.
    held: dict[str, list[RouteItem]] = Field(default_factory=dict)
    dead: list[DeadLetter] = Field(default_factory=list)
    # The newest delivered instances (sop, sha256): a repeated signal of one is ignored.
    recent: list[tuple[str, str]] = Field(default_factory=list)
    delivered_total: int = 0
    paused: bool = False


class DeliverBatch(BaseModel):
    destination: str
    via: Via
    items: list[RouteItem]


class Refused(BaseModel):
    """An instance that must not go as asked (it cannot be de-identified): a dead letter at
    once, since sending it again would meet the same refusal."""

    sop_instance_uid: str
    sha256: str
    reason: str


class BatchOutcome(BaseModel):
    """What deliver_batch did: how many the destination stored, what was skipped (replaced
    since), what was refused before sending."""

    stored: int
    skipped: list[str] = Field(default_factory=list)  # SOP Instance UIDs
    refused: list[Refused] = Field(default_factory=list)


class DeliveryState(BaseModel):
    """What ops see of one destination's delivery (a query of its workflow)."""

    destination: str
    via: Via
    queued: int
    held: int = 0  # items waiting for their study to be stabilized
    delivered_total: int
    dead_letters: list[DeadLetter]
    paused: bool
    failing_since: datetime | None = None
    last_error: str = ""
    next_attempt_at: datetime | None = None
