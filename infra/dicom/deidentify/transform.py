"""The de-identification of one instance: every element, nested ones included, by the profile.

Pixel data are not touched (the bytes are written back as they were read): burned-in text
is not cleaned, so an instance that declares BurnedInAnnotation YES is refused rather than
copied with a name on its pixels.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydicom import dcmread
from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.tag import BaseTag, Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from infra.dicom.deidentify.clean import DUMMY_DATE, Cleaner, shift_date, shift_datetime
from infra.dicom.deidentify.keyed import DeidentificationKey
from infra.dicom.deidentify.profile import Action, action_for, basic_action
from infra.dicom.deidentify.safe_private import SAFE_PRIVATE, SafePrivate
from schemas.deidentify import DeidentifyOptions

# Values in place of a D (dummy) action, by VR: valid for the VR, and carrying nothing.
_DUMMY_TEXT = "ANONYMIZED"
_DUMMIES: dict[str, object] = {
    "AE": "ANONYMIZED",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": DUMMY_DATE,
    # A family name component: a name without "^" is the retired form to dciodvfy.
    "PN": "ANONYMIZED^",
    "DT": DUMMY_DATE + "000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "UL": 0,
    "US": 0,
    "SV": 0,
    "UV": 0,
    "UR": "",
}
_TEXT_VRS = {"LO", "SH", "ST", "LT", "UT", "UC", "PN", "AE"}
_BYTES_VRS = {"OB", "OW", "OD", "OF", "OL", "OV", "UN"}
PIXEL_DATA = 0x7FE00010
TEXT_VALUE = 0x0040A160  # a TEXT content item's value: not in Table E.1-1, may hold anything
PATIENT_ID = 0x00100020
ISSUER_OF_PATIENT_ID = 0x00100021
PATIENT_NAME = 0x00100010
# UI attributes naming kinds of things (classes, syntaxes, schemes), never an instance.
_KEPT_UID_KEYWORDS = {
    "TransferSyntaxUID",
    "CodingSchemeUID",
    "MappingResourceUID",
    "ContextGroupExtensionCreatorUID",
    "PrivateInformationCreatorUID",
    "ImplementationClassUID",
}

METHOD_NAMES = {
    "retain_longitudinal_modified_dates": codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption,  # noqa: E501
    "retain_patient_characteristics": codes.DCM.RetainPatientCharacteristicsOption,
    "clean_descriptors": codes.DCM.CleanDescriptorsOption,
    "retain_device_identity": codes.DCM.RetainDeviceIdentityOption,
}


class DeidentificationRefused(ValueError):
    """The instance cannot be de-identified by this profile; the message says why."""


@dataclass(frozen=True)
class Replacements:
    """What was replaced in one instance: (original, new) pairs, for the map."""

    study: tuple[str, str]  # Study Instance UID
    series: tuple[str, str]
    sop: tuple[str, str]
    patient_id: tuple[str, str]
    patient_name: tuple[str, str]
    date_offset_days: int
    uids: dict[str, str] = field(default_factory=dict)  # every UID replaced: original → new


@dataclass
class Deidentified:
    """One de-identified instance and what was replaced in it."""

    dataset: Dataset
    replaced: Replacements

    def part10(self) -> bytes:
        buffer = io.BytesIO()
        self.dataset.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()


def _keyword(tag: BaseTag) -> str:
    return keyword_for_tag(tag) or ""


def is_instance_uid(tag: BaseTag, value: str) -> bool:
    """Whether a UI value names an instance (study, series, object, frame of reference…),
    which the profile replaces, rather than a well-known UID or a kind of thing."""
    if basic_action(int(tag)) is Action.UID:
        return True
    keyword = _keyword(tag)
    if keyword.endswith("ClassUID") or keyword in _KEPT_UID_KEYWORDS:
        return False
    return value not in UID_dictionary


def _values(value: object) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def _set(elem: DataElement, values: list[str]) -> None:
    """One value as a scalar, several as a multi-value, none as an empty value."""
    elem.value = values[0] if len(values) == 1 else (values or None)


def _private_creator(ds: Dataset, tag: BaseTag) -> str | None:
    if tag.element < 0x1000:
        return None
    creator = ds.get(Tag(tag.group, tag.element >> 8))
    return None if creator is None else str(creator.value).strip()


class _Walker:
    def __init__(
        self,
        key: DeidentificationKey,
        options: DeidentifyOptions,
        offset_days: int,
        cleaner: Cleaner,
        safe_private: SafePrivate,
    ) -> None:
        self.key = key
        self.options = options
        self.offset_days = offset_days
        self.cleaner = cleaner
        self.safe_private = safe_private
        self.uids: dict[str, str] = {}
        self.kept_private = False

    def uid(self, original: str) -> str:
        new = self.uids.get(original)
        if new is None:
            new = self.uids[original] = self.key.uid(original)
        return new

    def dataset(self, ds: Dataset) -> None:
        kept_blocks: set[tuple[int, int]] = set()
        creators: list[BaseTag] = []
        for elem in list(ds):
            tag = elem.tag
            if tag.is_private:
                if tag.is_private_creator:
                    creators.append(tag)
                    continue
                creator = _private_creator(ds, tag)
                if creator is not None and self.safe_private.keeps(creator, tag):
                    kept_blocks.add((tag.group, tag.element >> 8))
                    self.kept_private = True
                    continue
                del ds[tag]
                continue
            if tag.element == 0x0000:  # group lengths: stale after any change
                del ds[tag]
                continue
            self.element(ds, elem)
        for tag in creators:
            if (tag.group, tag.element) not in kept_blocks:
                del ds[tag]

    def element(self, ds: Dataset, elem: DataElement) -> None:
        tag, vr = elem.tag, elem.VR
        if int(tag) == PIXEL_DATA:
            return
        action = action_for(int(tag), self.options)
        if action is None:
            self.unlisted(elem)
        elif action is Action.KEEP:
            if vr == "SQ":
                self.items(elem)
        elif action is Action.REMOVE:
            del ds[tag]
        elif action is Action.EMPTY:
            elem.value = Sequence() if vr == "SQ" else None
        elif action is Action.EMPTY_OR_REMOVE:
            # An empty sequence is valid only where it is Type 2, which X/Z attributes
            # rarely are (ReferencedStudySequence is Type 3 wherever it appears).
            if vr == "SQ":
                del ds[tag]
            else:
                elem.value = None
        elif action is Action.UID:
            if vr == "UI":
                _set(elem, [self.uid(v) for v in _values(elem.value)])
            else:
                elem.value = Sequence() if vr == "SQ" else None
        elif action is Action.NESTED_UIDS:
            if vr == "SQ":
                self.items(elem)
            else:
                elem.value = None
        elif action is Action.CLEAN:
            self.clean(elem)
        else:
            self.dummy(elem)

    def items(self, elem: DataElement) -> None:
        for item in elem.value:
            self.dataset(item)

    def unlisted(self, elem: DataElement) -> None:
        """Attributes Table E.1-1 does not list are kept, except: instance UIDs are
        replaced everywhere (so references stay consistent), dates move with the patient's
        offset (or are replaced), sequences are walked, and free text of SR content items
        is cleaned."""
        vr = elem.VR
        if vr == "SQ":
            self.items(elem)
        elif vr == "UI":
            values = _values(elem.value)
            _set(elem, [self.uid(v) if is_instance_uid(elem.tag, v) else v for v in values])
        elif vr in ("DA", "DT"):
            self.date(elem)
        elif int(elem.tag) == TEXT_VALUE:
            self.text(elem)

    def date(self, elem: DataElement) -> None:
        values = _values(elem.value)
        if not values:
            return
        if not self.options.retain_longitudinal_modified_dates:
            _set(elem, [str(_DUMMIES[elem.VR])] * len(values))
            return
        shift = shift_date if elem.VR == "DA" else shift_datetime
        _set(elem, [shift(v, self.offset_days) for v in values])

    def text(self, elem: DataElement) -> None:
        values = _values(elem.value)
        if values:
            _set(elem, [self.cleaner.text(v) for v in values])

    def clean(self, elem: DataElement) -> None:
        vr = elem.VR
        if vr == "SQ":
            self.items(elem)
        elif vr in ("DA", "DT"):
            self.date(elem)
        elif vr == "UI":
            _set(elem, [self.uid(v) for v in _values(elem.value)])
        elif vr in _TEXT_VRS:
            self.text(elem)
        # TM under modified dates: a shift by whole days leaves times as they were.

    def dummy(self, elem: DataElement) -> None:
        vr = elem.VR
        if vr == "SQ":
            # "A non-zero length sequence that may contain dummy items": the items, each
            # de-identified by the same rules (so an SR's content and references survive).
            self.items(elem)
        elif vr in ("DA", "DT"):
            if _values(elem.value):
                self.date(elem)
            else:
                elem.value = _DUMMIES[vr]
        elif vr == "UI":
            _set(elem, [self.uid(v) for v in _values(elem.value)])
        elif vr in _BYTES_VRS:
            elem.value = b"\x00\x00"
        elif vr in _DUMMIES:
            elem.value = _DUMMIES[vr]
        elif vr == "AT":
            return
        else:
            elem.value = _DUMMY_TEXT


def _identifying_values(ds: Dataset, options: DeidentifyOptions) -> Iterator[str]:
    """Every text value the profile removes or replaces, nested ones included: what a
    cleaned description must not contain."""
    for elem in ds:
        if elem.tag.is_private:
            continue
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _identifying_values(item, options)
            continue
        action = action_for(int(elem.tag), options)
        if action in (None, Action.KEEP, Action.CLEAN, Action.UID):
            continue
        if elem.VR in _TEXT_VRS or elem.VR in ("DA", "DT"):
            for value in _values(elem.value):
                yield from str(value).replace("^", " ").replace("=", " ").split("\\")


def refuse_if_burned_in(ds: Dataset) -> None:
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        raise DeidentificationRefused(
            f"instance {ds.get('SOPInstanceUID', '?')} declares BurnedInAnnotation YES: "
            "its pixels may show identifying text, and pixel data are not cleaned here"
        )


def _method(options: DeidentifyOptions, kept_private: bool) -> list[tuple[str, str, str]]:
    applied = [codes.DCM.BasicApplicationConfidentialityProfile]
    applied += [METHOD_NAMES[name] for name in options.names()]
    if kept_private:
        applied.append(codes.DCM.RetainSafePrivateOption)
    return [(c.value, c.scheme_designator, c.meaning) for c in applied]


def deidentify(
    data: bytes,
    key: DeidentificationKey,
    options: DeidentifyOptions,
    safe_private: SafePrivate = SAFE_PRIVATE,
) -> Deidentified:
    """De-identify one Part 10 instance. DeidentificationRefused when it cannot be."""
    try:
        ds = dcmread(io.BytesIO(data))
    except Exception as exc:
        raise DeidentificationRefused(f"not a readable DICOM object: {exc}") from exc
    refuse_if_burned_in(ds)
    for required in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "SOPClassUID"):
        if not ds.get(required):
            raise DeidentificationRefused(f"the instance has no {required}")
    patient_id = str(ds.get("PatientID", "") or "")
    issuer = str(ds.get("IssuerOfPatientID", "") or "")
    patient_name = str(ds.get("PatientName", "") or "")
    offset = key.date_offset_days(patient_id, issuer)
    study, series, sop = (
        str(ds.StudyInstanceUID),
        str(ds.SeriesInstanceUID),
        str(ds.SOPInstanceUID),
    )
    walker = _Walker(key, options, offset, Cleaner(_identifying_values(ds, options)), safe_private)
    walker.dataset(ds)

    pseudonym = key.pseudonym(patient_id, issuer)
    ds.PatientID = pseudonym
    ds.PatientName = f"{pseudonym}^"
    ds.PatientIdentityRemoved = "YES"
    method = _method(options, walker.kept_private)
    ds.DeidentificationMethod = [meaning for _, _, meaning in method]
    ds.DeidentificationMethodCodeSequence = Sequence(
        [_code(value, scheme, meaning) for value, scheme, meaning in method]
    )
    ds.LongitudinalTemporalInformationModified = (
        "MODIFIED" if options.retain_longitudinal_modified_dates else "REMOVED"
    )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ds.file_meta.TransferSyntaxUID
    meta.ImplementationClassUID = ds.file_meta.get(
        "ImplementationClassUID", PYDICOM_IMPLEMENTATION_UID
    )
    ds.file_meta = meta
    replaced = Replacements(
        study=(study, str(ds.StudyInstanceUID)),
        series=(series, str(ds.SeriesInstanceUID)),
        sop=(sop, str(ds.SOPInstanceUID)),
        patient_id=(patient_id, pseudonym),
        patient_name=(patient_name, f"{pseudonym}^"),
        date_offset_days=offset,
        uids=walker.uids,
    )
    return Deidentified(dataset=ds, replaced=replaced)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item
