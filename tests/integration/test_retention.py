"""Retention by policy on the real platform: a rule that names an age and a modality
selects, in a dry run, exactly the studies it would delete (nothing else is touched); a real
run deletes them as DELETE does — gone from QIDO at once, purged from the archive after the
grace period — with the rule as the actor."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dicom_factory import ct_series
from tests.integration.conftest import Platform, eventually
from tests.integration.test_deletion import archived, qido_instances, send

pytestmark = pytest.mark.integration


async def test_a_retention_rule_deletes_what_its_dry_run_listed(
    platform: Platform, tmp_path: Path, dcmtk: None
) -> None:
    # A modality no other test sends, so the rule can only select these.
    old = list(ct_series(2, size=16, patient_id="RETAIN-1"))
    kept = list(ct_series(1, size=16, patient_id="RETAIN-2"))
    for ds in old:
        ds.Modality = "XC"
    study, other = str(old[0].StudyInstanceUID), str(kept[0].StudyInstanceUID)
    send(platform, tmp_path / "in", old + kept)
    await eventually(lambda: len(qido_instances(platform, study)) == 2, 60)
    await eventually(lambda: len(archived(platform, study)) == 2, 60)
    client = platform.client()
    assert client.put("/api/retention/rules/xc", json={"modalities": ["XC"]}).status_code == 422
    rule = {"modalities": ["XC"], "received_more_than_days": 1 / 86400,
            "idle_more_than_days": 1 / 86400, "reason": "ten-year policy"}  # fmt: skip
    assert client.put("/api/retention/rules/xc-policy", json=rule).status_code in (200, 201)
    try:
        dry = await eventually(
            lambda: (r := client.post("/api/retention/apply", json={})).json()["matched"] and r,
            30,
        )
        assert dry.json() == {"dry_run": True, "matched": [
            {"rule": "xc-policy", "study_instance_uid": study, "patient_id": "RETAIN-1"}
        ]}  # fmt: skip
        assert len(qido_instances(platform, study)) == 2  # a dry run deletes nothing
        # The report names the study's patient: a PHI read, in the audit trail.
        await eventually(
            lambda: any(
                e["action"] == "retention-dry-run"
                for e in platform.get(
                    "/api/audit/access", params={"StudyInstanceUID": study}
                ).json()["entries"]
            ),
            30,
        )
        run = client.post("/api/retention/apply", json={"dry_run": False})
        assert run.status_code == 202, run.text
        url = run.json()["status_url"]
        job = await eventually(
            lambda: (j := platform.get(url).json())["status"] == "Completed" and j, 60
        )
        assert len(job["result"]["deletions"]) == 1
    finally:
        assert client.delete("/api/retention/rules/xc-policy").status_code in (200, 204)
    await eventually(lambda: qido_instances(platform, study) == [], 30)
    assert len(qido_instances(platform, other)) == 1
    deleted = platform.audit(study, "pacs.instances.deleted")
    assert [e["client"] for e in deleted] == ["retention:xc-policy"]
    # Purged after the grace period (12 s on the test platform).
    await eventually(lambda: archived(platform, study) == set(), 90)
