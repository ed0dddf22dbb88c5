"""Which archive keys a fixity run checks, and as which instance."""

from __future__ import annotations

from activities.fixity import _uids


def test_current_objects_and_kept_versions_are_checked_and_nothing_else() -> None:
    assert _uids("1.2/3.4/5.6.dcm") == ("1.2", "3.4", "5.6")
    assert _uids("versions/1.2/3.4/5.6/ab12.dcm") == ("1.2", "3.4", "5.6")
    assert _uids("tombstones/1.2/d1.json") is None
    assert _uids("trash/d1/1.2/3.4/5.6.dcm") is None
    assert _uids("versions/1.2/3.4/5.6.dcm") is None
    assert _uids("1.2/3.4") is None
