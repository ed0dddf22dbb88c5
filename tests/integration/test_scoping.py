"""Scoped role bindings on the real platform: a radiologist bound to one institution, one
bound to an access label and a researcher each find and retrieve only their studies; any
other study answers as if it were not stored (QIDO finds nothing, WADO 404, never 403)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, build_role, evt
from pynetdicom.pdu_primitives import UserIdentityNegotiation
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)

from infra.dimse.nodelay import set_nodelay
from tests.dicom_factory import ct_series
from tests.integration.conftest import Platform, eventually
from tests.integration.dimse_client import send_all
from tests.login import login

pytestmark = pytest.mark.integration

PASSWORD = "a scoped user's password"


def _store(platform: Platform, institution: str, deidentified: bool = False) -> tuple[str, str]:
    """One 3-image CT study of `institution`; its study and first series UID."""
    study = generate_uid()
    datasets = list(ct_series(3, size=16, study_uid=study, patient_id=f"SCOPE-{study[-6:]}"))
    for ds in datasets:
        ds.InstitutionName = institution
        if deidentified:
            ds.PatientIdentityRemoved = "YES"
    acked: list[str] = []
    assert send_all(platform.dicom, datasets, acked, threading.Lock()) == []
    return study, datasets[0].SeriesInstanceUID


def _user(platform: Platform, name: str, body: dict[str, object]) -> httpx.Client:
    saved = platform.client().put(f"/api/users/{name}", json={"password": PASSWORD, **body})
    assert saved.status_code == 200, saved.text
    return httpx.Client(
        base_url=platform.http, headers=login(platform.http, name, PASSWORD), timeout=30
    )


def _found(client: httpx.Client, studies: list[str]) -> set[str]:
    answer = client.get("/dicom-web/studies", params={"StudyInstanceUID": "\\".join(studies)})
    assert answer.status_code == 200, answer.text
    return {row["0020000D"]["Value"][0] for row in answer.json()}


async def test_scoped_users_see_only_their_studies(platform: Platform) -> None:
    mary, mary_series = _store(platform, "St. Mary")
    general, general_series = _store(platform, "General Hospital")
    trial, _ = _store(platform, "General Hospital")
    copy, _ = _store(platform, "Research", deidentified=True)
    studies = [mary, general, trial, copy]
    admin = platform.client()
    await eventually(lambda: len(_found(admin, studies)) == 4, 30)
    labelled = admin.put(f"/api/studies/{trial}/labels", json={"labels": ["trial-7"]})
    assert labelled.status_code == 200 and labelled.json() == {"labels": ["trial-7"]}
    assert admin.get(f"/api/studies/{trial}/labels").json() == {"labels": ["trial-7"]}
    assert (
        admin.put(f"/api/studies/{trial}/labels", json={"labels": ["no spaces"]}).status_code == 422
    )

    by_institution = _user(
        platform,
        "dr.mary",
        {"bindings": [{"role": "radiologist", "scope": {"institutions": ["st. mary"]}}]},
    )
    by_label = _user(
        platform,
        "dr.trial",
        {"bindings": [{"role": "radiologist", "scope": {"labels": ["trial-7"]}}]},
    )
    researcher = _user(platform, "researcher1", {"roles": ["researcher"]})
    unscoped = _user(platform, "dr.all", {"roles": ["radiologist"]})
    # The scope snapshot is at most a second old.
    await eventually(lambda: _found(by_label, studies) == {trial}, 10)
    assert _found(by_institution, studies) == {mary}
    assert _found(researcher, studies) == {copy}
    assert _found(unscoped, studies) == set(studies)
    series = by_institution.get(f"/dicom-web/studies/{mary}/series").json()
    assert [s["0020000E"]["Value"][0] for s in series] == [mary_series]
    assert by_institution.get(f"/dicom-web/studies/{general}/series").json() == []
    instances = by_institution.get("/dicom-web/instances", params={"limit": 1000}).json()
    assert {i["0020000D"]["Value"][0] for i in instances} & set(studies) == {mary}

    # Retrieval outside the scope: the same 404 as a study never stored.
    assert by_institution.get(f"/dicom-web/studies/{mary}/metadata").status_code == 200
    never = generate_uid()
    for client, hidden, hidden_series in (
        (by_institution, general, general_series),
        (researcher, mary, mary_series),
    ):
        for path in (
            f"/dicom-web/studies/{hidden}/metadata",
            f"/dicom-web/studies/{hidden}",
            f"/dicom-web/studies/{hidden}/series/{hidden_series}/rendered",
            f"/dicom-web/studies/{hidden}/thumbnail",
        ):
            answer = client.get(path)
            assert answer.status_code == 404, (path, answer.status_code)
        assert client.get(f"/dicom-web/studies/{never}/metadata").status_code == 404
        uri = client.get(
            "/wado",
            params={
                "requestType": "WADO",
                "studyUID": hidden,
                "seriesUID": hidden_series,
                "objectUID": "1.2.3",
            },
        )
        assert uri.status_code == 404

    def changes(client: httpx.Client, study: str) -> list[dict[str, Any]]:
        page = client.get("/api/changes", params={"StudyInstanceUID": study, "limit": 100})
        assert page.status_code == 200, page.text
        listed: list[dict[str, Any]] = page.json()["changes"]
        return listed

    assert changes(by_institution, mary) and changes(admin, general)
    assert changes(by_institution, general) == [], "the change feed keeps to the scope"

    # The refusals are in the audit trail as failures, like any other read.
    def refused() -> bool:
        entries = admin.get(
            "/api/audit/access", params={"actor": "dr.mary", "StudyInstanceUID": general}
        ).json()["entries"]
        return any(e["outcome"] == "failure" and e["action"] == "wado-metadata" for e in entries)

    await eventually(refused, 30)


def _identity(kind: int, primary: str, secondary: str = "") -> UserIdentityNegotiation:
    item = UserIdentityNegotiation()
    item.user_identity_type = kind
    item.primary_field = primary.encode()
    if secondary:
        item.secondary_field = secondary.encode()
    return item


def _associate(platform: Platform, identity: UserIdentityNegotiation | None) -> Any:
    ae = AE(ae_title="SCOPESCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    roles = [build_role(CTImageStorage, scp_role=True)]
    return ae.associate(
        *platform.dicom,
        ae_title="PACS",
        ext_neg=[*roles, *([identity] if identity else [])],
        evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay), (evt.EVT_C_STORE, lambda e: 0x0000)],
    )


def _cfind(assoc: Any, studies: list[str]) -> tuple[set[str], list[int]]:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = "\\".join(studies)
    found, statuses = set(), []
    for status, match in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        statuses.append(int(status.Status))
        if match is not None and status.Status in (0xFF00, 0xFF01):
            found.add(str(match.StudyInstanceUID))
    return found, statuses


def _cget(assoc: Any, study: str) -> int:
    """How many instances a study-level C-GET delivered."""
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study
    completed = 0
    for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
        if status and "NumberOfCompletedSuboperations" in status:
            completed = int(status.NumberOfCompletedSuboperations)
    return completed


async def test_a_dimse_user_identity_brings_the_users_roles_and_scope(platform: Platform) -> None:
    mary, _ = _store(platform, "St. Mary")
    general, _ = _store(platform, "General Hospital")
    studies = [mary, general]
    admin = platform.client()
    await eventually(lambda: len(_found(admin, studies)) == 2, 30)
    bound = {"bindings": [{"role": "radiologist", "scope": {"institutions": ["St. Mary"]}}]}
    _user(platform, "dr.dimse", bound)
    _user(platform, "tech.dimse", {"roles": ["technologist"]})
    token = login(platform.http, "dr.dimse", PASSWORD)["Authorization"].split()[1]

    # Without an identity the loopback AE reads everything (PACS_DICOM__UNKNOWN_AES=local).
    plain = _associate(platform, None)
    assert _cfind(plain, studies)[0] == {mary, general}
    plain.release()
    await asyncio.sleep(1.5)  # the scope snapshot of the new users' studies
    for identity in (_identity(2, "dr.dimse", PASSWORD), _identity(5, token)):
        assoc = _associate(platform, identity)
        assert assoc.is_established
        assert _cfind(assoc, studies)[0] == {mary}
        assert _cget(assoc, mary) == 3
        assert _cget(assoc, general) == 0, "a study outside the scope is not retrieved"
        assoc.release()

    wrong = _associate(platform, _identity(2, "dr.dimse", "not the password"))
    assert wrong.is_rejected and not wrong.is_established
    nameless = _associate(platform, _identity(1, "dr.dimse"))
    assert nameless.is_rejected, "a user name without proof is not an identity"

    tech = _associate(platform, _identity(2, "tech.dimse", PASSWORD))
    assert tech.is_established
    assert _cfind(tech, studies) == (set(), [0x0124]), "a technologist may not query"
    tech.release()

    def audited() -> bool:
        entries = admin.get(
            "/api/audit/access", params={"actor": "dr.dimse", "action": "c-find"}
        ).json()["entries"]
        logins = admin.get(
            "/api/audit/access", params={"actor": "dr.dimse", "action": "login"}
        ).json()["entries"]
        return bool(entries) and {e["outcome"] for e in logins} >= {"success", "failure"}

    await eventually(audited, 30)
