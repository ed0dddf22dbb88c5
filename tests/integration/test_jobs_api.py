"""The jobs API on the real platform: what it lists agrees with Temporal's own count, pages,
filters by business key, and cancels / terminates with the right answers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from schemas.events import InstanceRef
from schemas.routing import RouteDeliveryInput, RouteItem, RouteItems
from tests.integration.conftest import Platform, eventually
from workflows.node_health import NodeHealthWorkflow
from workflows.route_delivery import RouteDeliveryWorkflow

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

    # No worker answers its progress query: listed without progress, and not held up.
    one = client.get(f"/api/jobs/{workflow_id}")
    assert one.status_code == 200 and one.json()["progress"] is None

    # The business keys name a study: each read showing them is a PHI access, audited.
    async def audited() -> list[dict[str, object]]:
        params = {"action": "jobs", "StudyInstanceUID": study, "limit": 100}
        entries: list[dict[str, object]] = client.get("/api/audit/access", params=params).json()[
            "entries"
        ]
        return entries if len(entries) >= 3 else []

    assert all(e["outcome"] == "success" for e in await eventually(audited, timeout=30))

    assert client.post(f"/api/jobs/{workflow_id}/retry").status_code == 409  # still running
    assert client.post(f"/api/jobs/{workflow_id}/cancel").status_code == 200
    stopped = client.post(f"/api/jobs/{workflow_id}/terminate")
    assert stopped.status_code == 200 and stopped.json()["status"] == "Terminated"
    assert client.post(f"/api/jobs/{workflow_id}/terminate").status_code == 409
    assert client.get(f"/api/jobs/{workflow_id}").json()["status"] == "Terminated"

    # Retry: a new run of the same job, same input and keys.
    retried = client.post(f"/api/jobs/{workflow_id}/retry")
    assert retried.status_code == 200, retried.text
    again = retried.json()
    assert again["status"] == "Running" and again["run_id"] != stopped.json()["run_id"]
    assert again["keys"] == {"StudyInstanceUID": study} and again["type"] == "NodeHealthWorkflow"
    history = await temporal_client.get_workflow_handle(workflow_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    assert await temporal_client.data_converter.decode(started.input.payloads) == [5.0]
    assert client.post(f"/api/jobs/{workflow_id}/terminate").status_code == 200

    def retry_audited() -> bool:
        params = {"action": "job-retry", "limit": 100}
        entries = client.get("/api/audit/access", params=params).json()["entries"]
        return any(workflow_id in str(e["detail"]) for e in entries)

    await eventually(retry_audited, timeout=30)
    assert client.get("/api/jobs/no-such-job").status_code == 404
    assert client.get("/api/jobs", params={"status": "Sleeping"}).status_code == 422


async def test_a_running_job_shows_its_progress(
    platform: Platform, temporal_client: Client
) -> None:
    """A real delivery workflow on the platform's worker, for a destination that is not
    registered: it keeps failing, and its progress says so."""
    item = RouteItem(
        instance=InstanceRef(
            study_instance_uid="1.2.826.0.1.3680043.2.1", series_instance_uid="1.2.3",
            sop_instance_uid="1.2.3.4", sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            sha256="ab" * 32, size=1,
        ),
        landing_mode="spool", landing_key="nowhere", rule="jobs-test", rule_version=1,
        received_at=datetime.now(UTC), max_age_seconds=3600,
    )  # fmt: skip
    destination = f"jobs-{uuid.uuid4().hex[:8]}"
    handle = await temporal_client.start_workflow(
        RouteDeliveryWorkflow.run,
        RouteDeliveryInput(destination=destination, via="dimse"),
        id=f"route:{destination}:dimse",
        task_queue=platform.settings.temporal.ingest_task_queue,
        start_signal="enqueue",
        start_signal_args=[RouteItems(items=[item])],
    )
    client = platform.client()
    try:

        async def failing() -> dict[str, object] | None:
            job = client.get(f"/api/jobs/{handle.id}").json()
            progress = job["progress"]
            return job if progress and str(progress["stage"]).startswith("failing") else None

        job = await eventually(failing, timeout=30)
        assert job["progress"]["done"] == 0 and job["progress"]["total"] == 1  # type: ignore[index]
        assert "not a registered node" in job["progress"]["stage"]  # type: ignore[index]
        listed = client.get(
            "/api/jobs", params={"type": "RouteDeliveryWorkflow", "progress": "true"}
        ).json()
        mine = [j for j in listed["jobs"] if j["workflow_id"] == handle.id]
        assert mine and mine[0]["progress"]["total"] == 1
    finally:
        await handle.terminate()
