"""The schedules API on the real platform: the platform's Temporal Schedules listed, paused
and resumed with a note, an interval changed, and a run triggered now, which shows in the
schedule's recent runs and in the jobs API."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Platform, eventually

pytestmark = pytest.mark.integration


def schedule(platform: Platform, schedule_id: str) -> dict[str, Any]:
    found = platform.get(f"/api/schedules/{schedule_id}")
    assert found.status_code == 200, found.text
    view: dict[str, Any] = found.json()
    return view


async def test_schedules_are_listed_paused_resumed_changed_and_triggered(
    platform: Platform,
) -> None:
    listed = {s["schedule_id"]: s for s in platform.get("/api/schedules").json()}
    assert "fixity" in listed
    assert "node-health" not in listed  # the test platform's health interval is 0: none
    assert listed["fixity"]["workflow_type"] == "FixityWorkflow"
    assert listed["fixity"]["interval_seconds"] == [
        platform.settings.lifecycle.fixity_interval_seconds
    ]
    assert listed["fixity"]["paused"] is False and listed["fixity"]["next_runs"]
    client = platform.client()

    # Paused with a note: no next run; resumed: back.
    paused = client.post("/api/schedules/fixity/pause", json={"note": "array maintenance"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True and paused.json()["note"] == "array maintenance"
    assert paused.json()["next_runs"] == []
    changed = client.patch("/api/schedules/fixity", json={"interval_seconds": 172800})
    assert changed.json()["interval_seconds"] == [172800.0] and changed.json()["paused"] is True
    resumed = client.post("/api/schedules/fixity/resume", json={})
    assert resumed.json()["paused"] is False and resumed.json()["next_runs"]
    assert client.patch("/api/schedules/fixity", json={"interval_seconds": 0}).status_code == 422
    assert client.post("/api/schedules/no-such/pause", json={}).status_code == 404

    # Run now: a whole-archive fixity run, in the schedule's recent runs and the jobs API,
    # then cancelled there (the rest of the suite need not wait for it).
    before = schedule(platform, "fixity")["runs"]
    assert client.post("/api/schedules/fixity/trigger").status_code == 202
    after = await eventually(lambda: (s := schedule(platform, "fixity"))["runs"] > before and s, 30)
    run = after["recent_runs"][-1]["workflow_id"]
    assert run.startswith("fixity:all:scheduled")
    jobs = platform.get("/api/jobs", params={"schedule": "fixity", "limit": 1000}).json()
    assert run in {j["workflow_id"] for j in jobs["jobs"]}
    assert {j["type"] for j in jobs["jobs"]} == {"FixityWorkflow"}
    if platform.get(f"/api/jobs/{run}").json()["status"] == "Running":
        # 409: it finished meanwhile.
        assert client.post(f"/api/jobs/{run}/cancel").status_code in (200, 409)

    # Audit entries reach the trail at the recorder's next flush (a few seconds).
    params = {"action": "schedule-pause"}
    assert await eventually(
        lambda: any(
            e["outcome"] == "success"
            for e in platform.get("/api/audit/access", params=params).json()["entries"]
        ),
        30,
    )
