from __future__ import annotations

import os
import time
from pathlib import Path

from infra.storage.landing import SpoolLanding, landing_key


def test_put_is_content_addressed_and_listed_oldest_first(tmp_path: Path) -> None:
    spool = SpoolLanding(tmp_path)
    first = landing_key("1.2", "1.2.3", "1.2.3.4", "aa")
    second = landing_key("1.2", "1.2.3", "1.2.3.4", "bb")
    spool.put(first, b"one")
    spool.put(second, b"two")
    os.utime(tmp_path / "landing" / first, (1, 1))
    assert spool.versions("1.2", "1.2.3", "1.2.3.4") == [first, second]
    assert spool.get(second) == b"two"
    assert not list((tmp_path / "tmp").iterdir()), "no temp file may stay behind"


def test_delete_prunes_empty_folders(tmp_path: Path) -> None:
    spool = SpoolLanding(tmp_path)
    key = landing_key("1.2", "1.2.3", "1.2.3.4", "aa")
    spool.put(key, b"x")
    spool.delete(key)
    assert spool.get(key) is None
    assert list((tmp_path / "landing").iterdir()) == []


def test_older_than_finds_only_old_objects(tmp_path: Path) -> None:
    spool = SpoolLanding(tmp_path)
    old = landing_key("1.2", "1.2.3", "1.2.3.4", "aa")
    new = landing_key("1.2", "1.2.3", "1.2.3.5", "bb")
    spool.put(old, b"x")
    spool.put(new, b"y")
    past = time.time() - 600
    os.utime(tmp_path / "landing" / old, (past, past))
    assert list(spool.older_than(60)) == [old]


def test_versions_do_not_mix_up_uid_prefixes(tmp_path: Path) -> None:
    spool = SpoolLanding(tmp_path)
    spool.put(landing_key("1.2", "1.2.3", "1.2.3.4", "aa"), b"x")
    spool.put(landing_key("1.2", "1.2.3", "1.2.3.4.5", "bb"), b"y")
    assert spool.versions("1.2", "1.2.3", "1.2.3.4") == [
        landing_key("1.2", "1.2.3", "1.2.3.4", "aa")
    ]
    assert spool.sops_in_study("1.2") == {"1.2.3.4", "1.2.3.4.5"}


def test_put_survives_the_archive_pruning_its_folder(tmp_path: Path) -> None:
    """The worker's delete() of the series' last archived file removes the folder between
    our mkdir and rename: the write must still land (it was an acked C-STORE failing)."""
    landing = SpoolLanding(tmp_path)
    make_dirs = landing._make_dirs
    pruned: list[Path] = []

    def make_then_prune(directory: Path) -> None:
        make_dirs(directory)
        if not pruned:
            directory.rmdir()  # what a concurrent delete() does to an empty folder
            pruned.append(directory)

    landing._make_dirs = make_then_prune  # type: ignore[method-assign]
    landing.put("study/series/sop.abc.dcm", b"bytes")
    assert pruned, "the race was not simulated"
    assert landing.get("study/series/sop.abc.dcm") == b"bytes"


def test_walking_the_spool_survives_the_archive_emptying_it_meanwhile(tmp_path: Path) -> None:
    """The dispatcher's orphan sweep walks the spool while the archive deletes what it has
    copied and prunes the empty folders; a folder vanishing mid-walk once killed the
    dispatcher (FileNotFoundError out of Path.glob)."""
    spool = SpoolLanding(tmp_path)
    keys = [landing_key(f"1.{n}", f"1.{n}.1", f"1.{n}.1.1", "aa") for n in range(5)]
    for key in keys:
        spool.put(key, b"x")
    past = time.time() - 600
    for key in keys:
        os.utime(tmp_path / "landing" / key, (past, past))
    walk = spool.older_than(60)
    first = next(walk)
    for key in keys:
        if key != first:
            spool.delete(key)  # the archive, meanwhile
    assert list(walk) == []
    assert spool.sops_in_study("1.9") == set()
    assert [spool.holds_sop(f"1.{n}.1.1") for n in range(5)] == [k == first for k in keys]
