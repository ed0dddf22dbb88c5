"""Cleaning (action C) of descriptors and free text, and the date shift.

Clean Descriptors keeps a description only after removing from it every value the profile
removes or replaces elsewhere in the same object (names, IDs, institution, dates — the
words of those values), and anything shaped like a date or a long number. That is
cleaning by what the object itself says identifies the patient: a name typed into a
description that appears nowhere else in the object is not found (see docs/security.md).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from pydicom.valuerep import DA, DT

REDACTED = "***"
# Words shorter than this are too common to remove everywhere ("CT", "MR", "of").
MIN_WORD = 3
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SHAPES = [
    re.compile(r"\b\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\b"),  # 01.02.1970, 1970-02-01
    re.compile(r"\d{5,}"),  # record numbers, phone numbers, DICOM dates
]


class Cleaner:
    """Removes the words of identifying values from free text."""

    def __init__(self, identifying_values: Iterable[str]) -> None:
        words = {
            word.casefold()
            for value in identifying_values
            for word in _WORD.findall(value)
            if len(word) >= MIN_WORD
        }
        # Longest first, so a longer word is not cut by a shorter one inside it.
        ordered = sorted(words, key=len, reverse=True)
        self._words = (
            re.compile(r"(?<![^\W_])(" + "|".join(map(re.escape, ordered)) + r")(?![^\W_])", re.I)
            if ordered
            else None
        )

    def text(self, value: str) -> str:
        cleaned = value
        if self._words is not None:
            cleaned = self._words.sub(REDACTED, cleaned)
        for shape in _SHAPES:
            cleaned = shape.sub(REDACTED, cleaned)
        return cleaned


DUMMY_DATE = "19000101"


def shift_date(value: str, days: int) -> str:
    """A DA value moved back `days` days; a value that is not a date becomes the dummy."""
    text = value.strip()
    if not text:
        return value
    try:
        original = DA(text)
    except ValueError:
        return DUMMY_DATE
    if original is None:
        return DUMMY_DATE
    return (original - dt.timedelta(days=days)).strftime("%Y%m%d")


def shift_datetime(value: str, days: int) -> str:
    """A DT value moved back `days` days, its time and offset kept as they were."""
    text = value.strip()
    if not text:
        return value
    if len(text) >= 8 and text[:8].isdigit():
        return shift_date(text[:8], days) + text[8:]
    try:
        DT(text)
    except ValueError:
        return DUMMY_DATE + "000000"
    if text[:4].isdigit():
        # Only a year (or year and month): move the year by whole years of the offset.
        return f"{int(text[:4]) - max(1, round(days / 365.25)):04d}" + text[4:]
    return DUMMY_DATE + "000000"
