"""The jobs API on the real platform: what it lists agrees with Temporal's own count, pages,
filters by business key, and cancels / terminates with the right answers."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from tests.integration.conftest import Platform, eventually
from workflows.node_health import NodeHealthWorkflow

pytestmark = pytest.mark.integration

STUDY = SearchAttributeKey.for_keyword("StudyInstanceUID")


async def test_jobs_agree_with_temporal_page_filter_and_stop(
    platform: Platform, temporal_client: Client
) -> None:
    client = platform.client()
    # Two finished rounds of a real workflow type.
    for _ in range(2):
        assert client.post("/api/nodes/check", timeout=120).status_code == 200
    query = "WorkflowType = 'NodeHealthWorkflow'"
    expected = (await temporal_client.count_workflows(query)).count
    assert expected >= 2
    listed = client.get("/api/jobs", params={"type": "NodeHealthWorkflow"}).json()
    assert listed["total"] == expected and len(listed["jobs"]) == expected
    assert {j["status"] for j in listed["jobs"]} == {"Completed"}

    first = client.get("/api/jobs", params={"type": "NodeHealthWorkflow", "limit": 1}).json()
    assert len(first["jobs"]) == 1 and first["next"]
    second = client.get(
        "/api/jobs", params={"type": "NodeHealthWorkflow", "limit": 1, "page": first["next"]}
    ).json()
    assert second["jobs"][0]["workflow_id"] != first["jobs"][0]["workflow_id"]

    # A job that stays running: no worker polls its task queue.
    study = f"2.25.{uuid.uuid4().int}"
    workflow_id = f"jobs-test:{uuid.uuid4().hex}"
    await temporal_client.start_workflow(
        NodeHealthWorkflow.run,
        5.0,
        id=workflow_id,
        task_queue=f"nobody-{uuid.uuid4().hex}",
        search_attributes=TypedSearchAttributes([SearchAttributePair(STUDY, study)]),
    )

    async def found() -> list[dict[str, object]]:
        page = client.get("/api/jobs", params={"StudyInstanceUID": study}).json()
        jobs: list[dict[str, object]] = page["jobs"]
        return jobs

    jobs = await eventually(found, timeout=30)
    assert [(j["workflow_id"], j["status"]) for j in jobs] == [(workflow_id, "Running")]
    assert jobs[0]["keys"] == {"StudyInstanceUID": study}
    running = client.get("/api/jobs", params={"status": "Running", "StudyInstanceUID": study})
    assert running.json()["total"] == 1

    assert client.post(f"/api/jobs/{workflow_id}/cancel").status_code == 200
    stopped = client.post(f"/api/jobs/{workflow_id}/terminate")
    assert stopped.status_code == 200 and stopped.json()["status"] == "Terminated"
    assert client.post(f"/api/jobs/{workflow_id}/terminate").status_code == 409
    assert client.get(f"/api/jobs/{workflow_id}").json()["status"] == "Terminated"
    assert client.get("/api/jobs/no-such-job").status_code == 404
    assert client.get("/api/jobs", params={"status": "Sleeping"}).status_code == 422
