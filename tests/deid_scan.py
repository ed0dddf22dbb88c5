"""Scanning a de-identified copy against its original, element by element, nested too:
shared by the transform's unit tests and the platform's acceptance test."""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.dataset import Dataset

from infra.dicom.deidentify.profile import Action, action_for
from schemas.deidentify import DeidentifyOptions

PSEUDONYMISED = {0x00100010, 0x00100020}  # Patient's Name, Patient ID: checked on their own
# The actions after which no original value may remain.
REPLACED = {
    Action.REMOVE,
    Action.EMPTY,
    Action.DUMMY,
    Action.UID,
    Action.EMPTY_OR_REMOVE,
}


def elements(
    ds: Dataset, path: tuple[object, ...] = ()
) -> Iterator[tuple[tuple[object, ...], object]]:
    """Every element, nested ones included, by its path of (tag, item index) steps."""
    for elem in ds:
        here = (*path, int(elem.tag))
        yield here, elem
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value):
                yield from elements(item, (*here, index))


def at(ds: Dataset, path: tuple[object, ...]) -> object | None:
    current: object = ds
    for step in path:
        if isinstance(current, Dataset):
            if step not in current:
                return None
            current = current[step]  # type: ignore[index]
        else:
            value = current.value  # type: ignore[attr-defined]
            if not isinstance(step, int) or step >= len(value):
                return None
            current = value[step]
    return current


def text_of(ds: Dataset) -> str:
    return "\n".join(str(elem.value) for _, elem in elements(ds) if elem.VR != "SQ")


def kept_values(original: Dataset, copy: Dataset, options: DeidentifyOptions) -> list[object]:
    """Every element, at any depth, that the profile removes or replaces under `options`
    and that the copy still holds with its original value (an empty list when none)."""
    kept: list[object] = []
    for path, elem in elements(original):
        tag = int(elem.tag)  # type: ignore[attr-defined]
        if elem.tag.is_private or tag in PSEUDONYMISED:  # type: ignore[attr-defined]
            continue  # private attributes: a test of their own
        if elem.VR == "SQ" or not elem.value:  # type: ignore[attr-defined]
            continue  # a sequence is judged by its elements; nothing to keep in an empty one
        if action_for(tag, options) not in REPLACED:
            continue
        there = at(copy, path)
        if there is not None and there.value == elem.value:  # type: ignore[attr-defined]
            kept.append((path, elem))
    return kept
