"""Replay saved MppsWorkflow and StorageCommitmentWorkflow histories (see test_replay.py).

To add a history after a deliberate, versioned change: call `drive(..., save_as=...)` in
test_mpps.py or `commit(..., save_as=...)` in test_storage_commitment.py once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.mpps import MppsWorkflow
from workflows.storage_commitment import StorageCommitmentWorkflow

FOLDER = Path(__file__).parent.parent / "histories"
CASES = [
    *((path, MppsWorkflow) for path in sorted(FOLDER.glob("mpps_*.json"))),
    *(
        (path, StorageCommitmentWorkflow)
        for path in sorted(FOLDER.glob("storage_commitment_*.json"))
    ),
]


@pytest.mark.parametrize(("path", "workflow"), CASES, ids=[p.stem for p, _ in CASES])
async def test_history_replays(path: Path, workflow: type) -> None:
    history = WorkflowHistory.from_json(f"replay:{path.stem}", path.read_text())
    replayer = Replayer(workflows=[workflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_each_workflow_has_a_history_to_replay() -> None:
    assert {w for _, w in CASES} == {MppsWorkflow, StorageCommitmentWorkflow}
