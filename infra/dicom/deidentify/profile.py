"""PS3.15 Table E.1-1: which action the profile and the chosen options take on an attribute.

The basic profile column is dicom-anonymizer's copy of Table E.1-1 from DICOM 2026c
(`dicomanonymizer.dicom_anonymization_databases.dicomfields_2026c`, checked equal to the
2024e table on every attribute the two share); the option columns are ours
(option_columns.py), since the library has none.

Actions: D replace with a dummy value, Z empty (zero length), X remove, K keep, C clean,
U replace the UID (keyed, consistently). Where the table leaves a choice (X/Z, X/D, Z/D,
X/Z/D, X/Z/U*) we take the one that keeps the copy valid without knowing the IOD's type of
the attribute: D where offered (a dummy value is valid for a Type 1 attribute), else Z
(an empty value is valid for Type 2 and 3) — but X for a sequence, whose empty form is valid
only where it is Type 2 (the transform decides: `Action.EMPTY_OR_REMOVE`) — and U* (keep the
sequence, replace the UIDs in it) for X/Z/U*. None of these keeps the original value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as table

from infra.dicom.deidentify.option_columns import (
    CLEAN_DESCRIPTORS,
    RETAIN_DEVICE_IDENTITY,
    RETAIN_LONGITUDINAL_MODIFIED_DATES,
    RETAIN_PATIENT_CHARACTERISTICS,
)
from schemas.deidentify import DeidentifyOptions

TABLE_EDITION: Final = "DICOM PS3.15 2026c Table E.1-1 (basic profile), 2024e (option columns)"


class Action(StrEnum):
    DUMMY = "D"
    EMPTY = "Z"
    REMOVE = "X"
    KEEP = "K"
    CLEAN = "C"
    UID = "U"
    NESTED_UIDS = "U*"  # keep the sequence; its items follow their own rules
    EMPTY_OR_REMOVE = "X/Z"  # empty a value, remove a sequence


# dicom-anonymizer's list names → the action we take (the choice explained above).
_CATEGORIES: Final = {
    "D_TAGS": Action.DUMMY,
    "Z_TAGS": Action.EMPTY,
    "X_TAGS": Action.REMOVE,
    "U_TAGS": Action.UID,
    "Z_D_TAGS": Action.DUMMY,
    "X_Z_TAGS": Action.EMPTY_OR_REMOVE,
    "X_D_TAGS": Action.DUMMY,
    "X_Z_D_TAGS": Action.DUMMY,
    "X_Z_U_STAR_TAGS": Action.NESTED_UIDS,
}
# The table as published: tag -> its basic profile code ("X/Z/D", ...), for tests and docs.
_PUBLISHED: Final = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}


@dataclass(frozen=True)
class _Masked:
    """A repeating-group entry, e.g. (60xx,3000) Overlay Data."""

    value: int
    mask: int
    action: Action
    code: str


def _load() -> tuple[dict[int, Action], dict[int, str], list[_Masked]]:
    exact: dict[int, Action] = {}
    published: dict[int, str] = {}
    masked: list[_Masked] = []
    for name, action in _CATEGORIES.items():
        for entry in getattr(table, name):
            if len(entry) == 2:
                tag = (entry[0] << 16) | entry[1]
                exact[tag] = action
                published[tag] = _PUBLISHED[name]
            else:
                group, element, group_mask, element_mask = entry
                masked.append(
                    _Masked(
                        (group << 16) | element,
                        (group_mask << 16) | element_mask,
                        action,
                        _PUBLISHED[name],
                    )
                )
    return exact, published, masked


BASIC, PUBLISHED, _MASKED = _load()


def basic_code(tag: int) -> str | None:
    """The basic profile's code for `tag` as Table E.1-1 prints it; None if not listed."""
    if tag in PUBLISHED:
        return PUBLISHED[tag]
    for entry in _MASKED:
        if tag & entry.mask == entry.value:
            return entry.code
    return None


def basic_action(tag: int) -> Action | None:
    """The basic profile's action on a public attribute; None when the table does not list
    it (the profile then retains it: the table lists every attribute that may identify)."""
    if tag in BASIC:
        return BASIC[tag]
    for entry in _MASKED:
        if tag & entry.mask == entry.value:
            return entry.action
    return None


def _option_action(tag: int, options: DeidentifyOptions) -> Action | None:
    """What the chosen options say, K before C when two options name the attribute."""
    found: set[str] = set()
    if options.retain_longitudinal_modified_dates and tag in RETAIN_LONGITUDINAL_MODIFIED_DATES:
        found.add(RETAIN_LONGITUDINAL_MODIFIED_DATES[tag])
    if options.retain_patient_characteristics and tag in RETAIN_PATIENT_CHARACTERISTICS:
        found.add(RETAIN_PATIENT_CHARACTERISTICS[tag])
    if options.retain_device_identity and tag in RETAIN_DEVICE_IDENTITY:
        found.add(RETAIN_DEVICE_IDENTITY[tag])
    if options.clean_descriptors and tag in CLEAN_DESCRIPTORS:
        found.add(CLEAN_DESCRIPTORS[tag])
    if "K" in found:
        return Action.KEEP
    if "C" in found:
        return Action.CLEAN
    return None


def action_for(tag: int, options: DeidentifyOptions) -> Action | None:
    """The action on a public attribute under the basic profile and `options`."""
    basic = basic_action(tag)
    if basic is None:
        return None
    return _option_action(tag, options) or basic
