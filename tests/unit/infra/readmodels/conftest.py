"""An embedded chDB per test for the read models' unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.clickhouse import ClickHouse


@pytest.fixture
def clickhouse(tmp_path: Path) -> Iterator[ClickHouse]:
    # chDB opens one data directory per process: close it even when a test fails.
    engine = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    try:
        yield engine
    finally:
        engine.close()
