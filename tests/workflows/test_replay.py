"""Replay saved workflow histories: a code change that would break running workflows fails here.

To add a history after a deliberate, versioned change: run a study through `make up` and save
`(await handle.fetch_history()).to_json()` next to the others.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.study_ingest import StudyIngestWorkflow

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("study_ingest_*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_study_ingest_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"study-ingest-replay:{path.stem}", path.read_text())
    replayer = Replayer(workflows=[StudyIngestWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_there_is_a_history_to_replay() -> None:
    assert HISTORIES, "tests/histories/ holds no StudyIngestWorkflow history"
