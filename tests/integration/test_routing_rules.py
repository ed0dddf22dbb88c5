"""Routing rules through the REST API on the real platform: validated against the node
registry, versioned, every change an event, deleted rules' versions still readable."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import Platform

pytestmark = pytest.mark.integration

RULES = "/api/routing/rules"


def put_node(platform: Platform, name: str, **fields: object) -> None:
    body = {"ae_title": name.upper()[:16], "host": "127.0.0.1", "port": 11112} | fields
    response = platform.client().put(f"/api/nodes/{name}", json=body)
    assert response.status_code == 200, response.text


async def test_rules_are_checked_versioned_and_audited(platform: Platform) -> None:
    put_node(platform, "route-dimse")
    put_node(platform, "route-web", dicomweb_url="http://127.0.0.1:1/dicom-web")
    client = platform.client()
    ct = {"match": {"Modality": "CT"}, "destinations": ["route-dimse"], "via": "dimse"}

    unknown = client.put(f"{RULES}/ct", json=ct | {"destinations": ["nowhere"]})
    assert unknown.status_code == 422 and "nowhere" in unknown.text
    no_web = client.put(f"{RULES}/ct", json=ct | {"via": "stow"})
    assert no_web.status_code == 422 and "dicomweb_url" in no_web.text
    bad_key = client.put(f"{RULES}/ct", json=ct | {"match": {"PatientName": "DOE*"}})
    assert bad_key.status_code == 422

    first = client.put(f"{RULES}/ct", json=ct)
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1 and first.json()["saved_by"] == "admin"
    again = client.put(f"{RULES}/ct", json=ct)  # same content: no new version
    assert again.json()["version"] == 1
    night = ct | {
        "destinations": ["route-dimse", "route-web"],
        "window": {"start": "20:00", "end": "06:00"},
        "on": "study",
    }
    second = client.put(f"{RULES}/ct", json=night)
    assert second.json()["version"] == 2
    assert client.get(f"{RULES}/ct").json()["window"] == {
        "start": "20:00:00",
        "end": "06:00:00",
        "timezone": "",
    }
    assert [r["name"] for r in client.get(RULES).json()].count("ct") == 1

    assert client.delete(f"{RULES}/ct").status_code == 204
    assert client.get(f"{RULES}/ct").status_code == 404
    assert client.delete(f"{RULES}/ct").status_code == 404
    versions = client.get(f"{RULES}/ct/versions").json()
    assert [v["version"] for v in versions] == [2, 1]
    # Made again after deletion: the count goes on, so version 3 names one content only.
    assert client.put(f"{RULES}/ct", json=ct).json()["version"] == 3

    # Each change is on the log, and so in the audit trail of events.
    events = client.get(
        "/api/audit/events", params={"type": "pacs.routing-rule.saved", "limit": 1000}
    ).json()
    ours = [e for e in events if e.get("sop_instance_uid") == "routing-rule:ct"]
    assert len(ours) == 3, events[:3]

    assert client.delete(f"{RULES}/ct").status_code == 204
    # Behind the one door: no credentials, no rules.
    assert httpx.get(f"{platform.http}{RULES}", timeout=30).status_code == 401
