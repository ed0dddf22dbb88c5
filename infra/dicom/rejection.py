"""IHE IOCM rejection notes, read from an instance's header as DICOM JSON.

A rejection note is a Key Object Selection Document whose title (ConceptNameCodeSequence)
is one of the DCM codes below; the instances it rejects are those in its Current Requested
Procedure Evidence Sequence. The note is an instance like any other (stored, listed); what
it rejects is deleted as a DELETE would.
"""

from __future__ import annotations

from typing import Any

from schemas.lifecycle import DeletionScope, RejectionNote

KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"
# IHE RAD TF-3 (IOCM) and PS3.16 CID 7011: the titles that reject.
REJECTION_TITLES = {
    "113001": "Rejected for Quality Reasons",
    "113037": "Rejected for Patient Safety Reasons",
    "113038": "Incorrect Modality Worklist Entry",
    "113039": "Data Retention Policy Expired",
}
CONCEPT_NAME_CODE = "0040A043"
EVIDENCE = "0040A375"  # Current Requested Procedure Evidence Sequence
REFERENCED_SERIES = "00081115"
REFERENCED_SOP = "00081199"
CODE_VALUE, CODING_SCHEME = "00080100", "00080102"
STUDY_UID, SERIES_UID, SOP_UID, REFERENCED_SOP_UID = "0020000D", "0020000E", "00080018", "00081155"

JsonDataset = dict[str, Any]


def _items(dataset: JsonDataset, tag: str) -> list[JsonDataset]:
    return [i for i in (dataset.get(tag) or {}).get("Value") or [] if isinstance(i, dict)]


def _text(dataset: JsonDataset, tag: str) -> str:
    values = (dataset.get(tag) or {}).get("Value") or []
    return str(values[0]) if values else ""


def rejection_code(sop_class_uid: str, header: JsonDataset) -> str:
    """The DCM code of the note's rejecting title, or "" when it is no rejection note."""
    if sop_class_uid != KEY_OBJECT_SELECTION:
        return ""
    for title in _items(header, CONCEPT_NAME_CODE):
        code = _text(title, CODE_VALUE)
        if _text(title, CODING_SCHEME) == "DCM" and code in REJECTION_TITLES:
            return code
    return ""


def rejection_note(sop_class_uid: str, header: JsonDataset) -> RejectionNote | None:
    """The rejection this header makes, or None; a series listed twice is one scope."""
    code = rejection_code(sop_class_uid, header)
    if not code:
        return None
    listed: dict[tuple[str, str], list[str]] = {}
    for study in _items(header, EVIDENCE):
        study_uid = _text(study, STUDY_UID)
        for series in _items(study, REFERENCED_SERIES):
            key = (study_uid, _text(series, SERIES_UID))
            sops = listed.setdefault(key, [])
            for sop in _items(series, REFERENCED_SOP):
                uid = _text(sop, REFERENCED_SOP_UID)
                if uid and uid not in sops:
                    sops.append(uid)
    scopes = [
        DeletionScope(study_instance_uid=study, series_instance_uid=series, sop_instance_uids=sops)
        # An entry without UIDs would widen the scope to a whole series or study: never.
        for (study, series), sops in listed.items()
        if study and series and sops
    ]
    return RejectionNote(
        sop_instance_uid=_text(header, SOP_UID),
        study_instance_uid=_text(header, STUDY_UID),
        reason_code=code,
        reason=REJECTION_TITLES[code],
        scopes=scopes,
    )
