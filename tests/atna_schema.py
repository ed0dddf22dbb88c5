"""The DICOM PS3.15 A.5.1 audit message schema (tests/data/atna/audit-message.rnc) as an
lxml RelaxNG validator, shared by the unit and integration tests."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import rnc2rng
from lxml import etree

SCHEMA = Path(__file__).parent / "data" / "atna" / "audit-message.rnc"


@lru_cache
def audit_schema() -> etree.RelaxNG:
    grammar = rnc2rng.dumps(rnc2rng.loads(SCHEMA.read_text()))
    return etree.RelaxNG(etree.fromstring(grammar.encode()))


def schema_errors(xml: bytes) -> str:
    """Empty when `xml` is a valid A.5 audit message, else what the validator said."""
    schema = audit_schema()
    if schema.validate(etree.fromstring(xml)):
        return ""
    return str(schema.error_log)
