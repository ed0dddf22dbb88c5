"""docs/architecture.md names real files: a module moved without the map following fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()


def test_the_path_of_one_image_names_existing_files() -> None:
    section = DOC.split("## The path of one image")[1].split("\n## ")[0]
    named = set(
        re.findall(
            r"`((?:apps|api|ingest|workflows|activities|infra|schemas)/[\w/]+\.py)`", section
        )
    )
    assert len(named) >= 20
    assert sorted(p for p in named if not (ROOT / p).is_file()) == []


def test_every_package_folder_is_on_the_map() -> None:
    folders = {
        str(p.parent.relative_to(ROOT))
        for top in ("apps", "api", "ingest", "infra")
        for p in (ROOT / top).rglob("__init__.py")
    }
    unnamed = sorted(f for f in folders if f.rsplit("/", 1)[-1] + "/" not in DOC)
    assert unnamed == []
