"""Private attributes that may stay in a de-identified copy (PS3.15 E.3.10, Table E.3.10-1).

Every other private attribute is removed, with its private creator. An entry names the
private creator, the group and the element's low byte (the block-relative element, as
Table E.3.10-1 writes `xx0C`), because the block a creator reserves varies between objects.
Only attributes whose values are acquisition parameters are listed: diffusion b-values and
directions, which research on de-identified MR needs and which identify nobody.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.tag import BaseTag


@dataclass(frozen=True)
class SafePrivate:
    """A safe list: (private creator, group, element low byte)."""

    entries: frozenset[tuple[str, int, int]]

    def keeps(self, creator: str, tag: BaseTag) -> bool:
        return (creator.strip().upper(), tag.group, tag.element & 0xFF) in self.entries


SAFE_PRIVATE = SafePrivate(
    frozenset(
        {
            ("SIEMENS MR HEADER", 0x0019, 0x0C),  # B_value
            ("SIEMENS MR HEADER", 0x0019, 0x0D),  # DiffusionDirectionality
            ("SIEMENS MR HEADER", 0x0019, 0x0E),  # DiffusionGradientDirection
            ("GEMS_PARM_01", 0x0043, 0x39),  # Slop_int_6 ... slop_int_9 (b-value)
        }
    )
)
