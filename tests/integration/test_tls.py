"""TLS on the real platform: `pacs certs init` writes the CA, server and client certificates
into the data dir, and the stack then serves DIMSE on its TLS port and HTTPS beside the
plain listeners. DCMTK (`+tls`, built with OpenSSL) and a pynetdicom TLS SCU echo, store and
find; a client that does not trust our CA fails the handshake; httpx reads over HTTPS with
the CA and fails without it."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]
from typer.testing import CliRunner

from apps.cli import app
from infra.settings import ClientCertificates, get_settings
from infra.tls.authority import CertsLayout, init_authority, issue_client
from infra.tls.contexts import ServerCredentials, client_context, server_context
from tests.dicom_factory import ct_dataset, ct_series, write_series
from tests.integration.conftest import (
    Platform,
    eventually,
    platform_settings,
    run,
    running_platform,
)
from tests.login import login

pytestmark = pytest.mark.integration
IMAGES = 20


@dataclass
class TlsNode:
    node: Platform
    certs: CertsLayout
    other_ca: CertsLayout  # a CA the platform does not trust

    @property
    def tls_port(self) -> int:
        return self.node.settings.dicom.tls_port

    @property
    def https(self) -> str:
        return f"https://localhost:{self.node.settings.http.tls_port}"

    def trust(self) -> ssl.SSLContext:
        """An HTTPS client context that trusts our CA."""
        return ssl.create_default_context(cafile=str(self.certs.ca_cert))

    def mutual(self, title: str, certs: CertsLayout | None = None) -> list[str]:
        certs = certs or self.certs
        return [
            "+tls",
            str(certs.client_key(title)),
            str(certs.client_cert(title)),
            "+cf",
            str(self.certs.ca_cert),
        ]


def _certs_init(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pacs certs init --client CT1 --client WS1` as an operator runs it."""
    monkeypatch.setenv("PACS_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["certs", "init", "--client", "CT1", "--client", "WS1"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
async def tls_node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TlsNode]:
    data_dir = tmp_path_factory.mktemp("tls")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _certs_init(data_dir, monkeypatch)
    other = CertsLayout(tmp_path_factory.mktemp("other-ca"))
    init_authority(other, "ELSEWHERE", [])
    issue_client(other, "CT1")
    settings = platform_settings(data_dir, base=18000)
    settings.dicom.tls_port = settings.dicom.port + 1650  # base + 2762, as 2762 by default
    settings.http.tls_port = settings.http.port + 363  # base + 8443
    async with running_platform(settings) as node:
        yield TlsNode(node, CertsLayout(settings.certs_dir), other)


def tool(
    name: str, calling: str, port: int, *options: str, files: list[Path] | None = None
) -> subprocess.CompletedProcess[str]:
    """A DCMTK tool run against our AE on `port`."""
    argv = [name, "-aet", calling, "-aec", "PACS", *options, "127.0.0.1", str(port)]
    return run([*argv, *map(str, files or [])], timeout=120)


def test_dcmtk_is_built_with_openssl(dcmtk: None) -> None:
    version = subprocess.run(["echoscu", "--version"], capture_output=True, text=True)
    assert "OpenSSL" in version.stdout


async def test_the_stack_announces_its_tls_listeners(tls_node: TlsNode) -> None:
    urls = tls_node.node.stack.urls()
    assert urls["DICOM TLS"] == f"PACS@127.0.0.1:{tls_node.tls_port}"
    assert urls["HTTPS"] == f"https://127.0.0.1:{tls_node.node.settings.http.tls_port}"
    log = (tls_node.node.settings.log_dir / "gateway.log").read_text()
    assert f"DICOM TLS PACS listening on 127.0.0.1:{tls_node.tls_port}" in log


async def test_dcmtk_echo_and_store_over_tls_then_find(
    tls_node: TlsNode, dcmtk: None, tmp_path: Path
) -> None:
    echo = tool("echoscu", "CT1", tls_node.tls_port, *tls_node.mutual("CT1"))
    assert echo.returncode == 0, echo.stderr
    files = write_series(tmp_path, ct_series(IMAGES))
    started = time.monotonic()
    stored = tool("storescu", "CT1", tls_node.tls_port, *tls_node.mutual("CT1"), files=files)
    took = time.monotonic() - started
    assert stored.returncode == 0, stored.stderr
    print(f"storescu +tls: {IMAGES} CT images in {took:.2f}s")
    assert took < 60
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    study, series = first.StudyInstanceUID, first.SeriesInstanceUID

    # Queryable: QIDO-RS over HTTPS, trusting our CA, then C-FIND over TLS (one response per
    # image, through the gateway's direct C-FIND responder).
    def instances() -> int:
        response = httpx.get(
            f"{tls_node.https}/dicom-web/studies/{study}/instances",
            headers=tls_node.node.auth,
            verify=tls_node.trust(),
            timeout=30,
        )
        return len(response.json()) if response.status_code == 200 else 0

    await eventually(lambda: instances() == IMAGES, timeout=60)
    query = [
        "-S", "-k", "QueryRetrieveLevel=IMAGE", "-k", f"StudyInstanceUID={study}",
        "-k", f"SeriesInstanceUID={series}", "-k", "SOPInstanceUID",
    ]  # fmt: skip
    started = time.monotonic()
    found = tool("findscu", "WS1", tls_node.tls_port, *tls_node.mutual("WS1"), *query)
    took = time.monotonic() - started
    assert found.returncode == 0, found.stderr
    assert found.stderr.count("Find Response:") == IMAGES, found.stderr[-2000:]
    assert took < 10, f"findscu +tls took {took:.1f}s"


async def test_handshakes_that_must_fail(tls_node: TlsNode) -> None:
    # DCMTK verifies the server's certificate by default: without our CA it cannot.
    untrusting = tool(
        "echoscu",
        "CT1",
        tls_node.tls_port,
        "+tls",
        str(tls_node.certs.client_key("CT1")),
        str(tls_node.certs.client_cert("CT1")),
    )
    assert untrusting.returncode != 0
    assert "Association Request Failed" in untrusting.stderr, untrusting.stderr
    # A client certificate from a CA we do not trust: our side refuses the handshake.
    stranger = tool("echoscu", "CT1", tls_node.tls_port, *tls_node.mutual("CT1", tls_node.other_ca))
    assert stranger.returncode != 0
    assert "Association Rejected" not in stranger.stderr
    log = (tls_node.node.settings.log_dir / "gateway.log").read_text()
    assert "TLS handshake with 127.0.0.1 failed" in log

    # Each refused handshake is in the audit trail, as a denied association.
    def refused_handshakes() -> list[str]:
        params = {"action": "association", "outcome": "denied", "limit": 1000}
        response = tls_node.node.get("/api/audit/access", params=params)
        response.raise_for_status()
        details = [entry["detail"] for entry in response.json()["entries"]]
        return [d for d in details if d.startswith("TLS handshake failed")]

    await eventually(lambda: len(refused_handshakes()) >= 2, timeout=30)
    assert any("UNKNOWN_CA" in d or "CERTIFICATE" in d for d in refused_handshakes())
    # Plain DIMSE to the TLS port is no association either.
    plain = tool("echoscu", "CT1", tls_node.tls_port)
    assert plain.returncode != 0


async def test_a_tls_node_needs_its_certificate(tls_node: TlsNode) -> None:
    body = {"ae_title": "WS1", "host": "127.0.0.1", "port": 104, "tls": True}
    response = tls_node.node.client().put("/api/nodes/ws-1", json=body)
    assert response.status_code == 200, response.text

    async def refused_in_clear() -> bool:
        plain = await asyncio.to_thread(tool, "echoscu", "WS1", tls_node.node.settings.dicom.port)
        return "Calling AE Title Not Recognized" in plain.stderr

    await eventually(refused_in_clear, timeout=30)  # the gateway refreshes its registry copy
    anonymous = tool(
        "echoscu", "WS1", tls_node.tls_port, "+tla", "+cf", str(tls_node.certs.ca_cert)
    )
    assert "Calling AE Title Not Recognized" in anonymous.stderr
    # CT1's certificate does not speak for WS1.
    borrowed = tool("echoscu", "WS1", tls_node.tls_port, *tls_node.mutual("CT1"))
    assert "Calling AE Title Not Recognized" in borrowed.stderr
    own = tool("echoscu", "WS1", tls_node.tls_port, *tls_node.mutual("WS1"))
    assert own.returncode == 0, own.stderr


def test_pynetdicom_tls_scu_echoes_and_stores(tls_node: TlsNode) -> None:
    certs = tls_node.certs
    context = client_context(certs.ca_cert, certs.client_cert("CT1"), certs.client_key("CT1"))
    ae = AE(ae_title="CT1")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate(
        "127.0.0.1", tls_node.tls_port, ae_title="PACS", tls_args=(context, "localhost")
    )
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0
        image = ct_dataset("1.2.826.0.1.3680043.10.777", "1.2.826.0.1.3680043.10.777.1", 1)
        assert assoc.send_c_store(image).Status == 0
    finally:
        assoc.release()


def test_https_trusts_only_with_our_ca(tls_node: TlsNode) -> None:
    ca = tls_node.trust()
    ready = httpx.get(f"{tls_node.https}/health/ready", verify=ca, timeout=30)
    assert ready.status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_node.https}/health/ready", timeout=30)  # the system's trust store
    # Still behind the one door: no credential, no data.
    assert httpx.get(f"{tls_node.https}/dicom-web/studies", verify=ca).status_code == 401
    # The browser session's cookies are Secure over HTTPS.
    settings = tls_node.node.settings
    assert settings.auth.admin_password is not None
    login = httpx.post(
        f"{tls_node.https}/login",
        data={"username": "admin", "password": settings.auth.admin_password.get_secret_value()},
        verify=ca,
    )
    assert login.status_code == 303
    cookies = login.headers.get_list("set-cookie")
    assert cookies and all("Secure" in cookie for cookie in cookies)
    plain = httpx.post(
        f"{tls_node.node.http}/login",
        data={"username": "admin", "password": settings.auth.admin_password.get_secret_value()},
    )
    assert not any("Secure" in cookie for cookie in plain.headers.get_list("set-cookie"))


async def test_c_move_to_a_tls_node_goes_over_tls(
    tls_node: TlsNode, dcmtk: None, tmp_path: Path
) -> None:
    """A destination registered with `tls: true` is sent to over TLS, the gateway showing its
    own certificate: here a pynetdicom storage SCP that requires a client certificate."""
    certs = tls_node.certs
    received: list[tuple[str, str]] = []  # (SOP Instance UID, the sender certificate's CN)

    def on_store(event: Any) -> int:
        subject = event.assoc.dul.socket.socket.getpeercert()["subject"]
        common_name = dict(rdn[0] for rdn in subject)["commonName"]
        received.append((str(event.dataset.SOPInstanceUID), common_name))
        return 0x0000

    scp = AE(ae_title="TLSSCP")
    scp.supported_contexts = StoragePresentationContexts
    credentials = ServerCredentials(certs.server_cert, certs.server_key, certs.ca_cert)
    port = tls_node.node.settings.dicom.port + 5
    server = scp.start_server(
        ("127.0.0.1", port),
        block=False,
        ssl_context=server_context(credentials, ClientCertificates.REQUIRED),
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    try:
        body = {"ae_title": "TLSSCP", "host": "127.0.0.1", "port": port, "tls": True}
        response = tls_node.node.client().put("/api/nodes/tls-scp", json=body)
        assert response.status_code == 200, response.text
        files = write_series(tmp_path, ct_series(3))
        stored = tool("storescu", "CT1", tls_node.tls_port, *tls_node.mutual("CT1"), files=files)
        assert stored.returncode == 0, stored.stderr
        study = pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
        sent = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
        # `pacs move` over TLS (DCMTK 3.6.7's movescu has no TLS options).
        move = [
            "move", "--dest", "TLSSCP", "-k", f"StudyInstanceUID={study}",
            "--port", str(tls_node.tls_port), "--calling-aet", "CT1",
            "--tls-ca", str(certs.ca_cert), "--tls-cert", str(certs.client_cert("CT1")),
            "--tls-key", str(certs.client_key("CT1")),
        ]  # fmt: skip

        async def moved() -> bool:
            result = await asyncio.to_thread(CliRunner().invoke, app, move)
            last[:] = [result.output]
            return result.exit_code == 0 and {uid for uid, _ in received} >= sent

        last: list[str] = []
        # The study must be in the catalog, and the gateway must have seen the new node.
        try:
            await eventually(moved, timeout=60, interval=2)
        except AssertionError as exc:
            raise AssertionError(f"movescu: {last}") from exc
        assert {name for _, name in received} == {"PACS"}  # the gateway's own certificate
    finally:
        server.shutdown()


async def test_admin_issues_a_client_certificate_that_then_authenticates(
    tls_node: TlsNode, dcmtk: None, tmp_path: Path
) -> None:
    node = tls_node.node
    with node.client() as admin:
        issued = admin.post("/api/certificates/clients/WS9")
        assert issued.status_code == 201, issued.text
        body = issued.json()
        assert body["subject"] == "CN=WS9" and "PRIVATE KEY" in body["private_key_pem"]
        listed = admin.get("/api/certificates").json()
        assert listed["ca"]["subject"] and "WS9" in {c["name"] for c in listed["clients"]}
        roles = admin.get("/api/roles").json()
        assert roles["auditor"] == ["audit:read"]
        assert admin.post("/api/certificates/clients/bad%5Ctitle").status_code in (400, 422)
    # What the API handed out works for the AE's operator: DCMTK echoes with it.
    (tmp_path / "ws9.pem").write_text(body["certificate_pem"])
    (tmp_path / "ws9.key").write_text(body["private_key_pem"])
    (tmp_path / "ca.pem").write_text(body["ca_pem"])
    mutual = ["+tls", str(tmp_path / "ws9.key"), str(tmp_path / "ws9.pem")]
    echo = tool("echoscu", "WS9", tls_node.tls_port, *mutual, "+cf", str(tmp_path / "ca.pem"))
    assert echo.returncode == 0, echo.stderr
    # Issuing is a security event on the log (and so in the ATNA export).
    events = node.get("/api/audit/events", params={"type": "pacs.certificate.issued"}).json()
    assert [e["sop_instance_uid"] for e in events] == ["certificate:WS9"]
    radiologist = node.client().put(
        "/api/users/dr.certs", json={"password": "a radiologist's pass", "roles": ["radiologist"]}
    )
    assert radiologist.status_code == 200
    headers = login(node.http, "dr.certs", "a radiologist's pass")
    assert httpx.get(f"{node.http}/api/certificates", headers=headers).status_code == 403
