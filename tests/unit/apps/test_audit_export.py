"""`pacs up` runs the ATNA exporter only when there is a syslog receiver to send to."""

from __future__ import annotations

from pathlib import Path

from infra.settings import AtnaSettings, Settings
from infra.stack import LocalStack


def names(settings: Settings) -> list[str]:
    return [p.name for p in LocalStack(settings).app_processes()]


def test_exporter_runs_only_with_a_syslog_url(tmp_path: Path) -> None:
    plain = Settings(data_dir=tmp_path)
    assert "audit-export" not in names(plain)
    configured = plain.model_copy(update={"atna": AtnaSettings(syslog_url="tls://audit:6514")})
    assert names(configured) == ["gateway", "api", "worker", "dispatcher", "audit-export"]
    (exporter,) = [p for p in LocalStack(configured).app_processes() if p.name == "audit-export"]
    assert exporter.argv[-1] == "audit-export"
    assert exporter.env["PACS_ATNA__SYSLOG_URL"] == "tls://audit:6514"
