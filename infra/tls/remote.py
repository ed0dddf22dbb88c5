"""TLS options for the clients of remote servers, built from RemoteTlsSettings: what each
client library takes (aiokafka, temporalio, clickhouse-connect, the MinIO SDK's urllib3).

The embedded stack speaks plain TCP on loopback; these apply when settings point at remote
Kafka, Temporal, ClickHouse or S3 that serve TLS.
"""

from __future__ import annotations

from typing import Any

import urllib3
from temporalio.service import TLSConfig

from infra.settings import RemoteTlsSettings
from infra.tls.contexts import TlsConfigError, client_context


def _check(tls: RemoteTlsSettings, server: str) -> None:
    for path in (tls.ca_file, tls.cert_file, tls.key_file):
        if path is not None and not path.is_file():
            raise TlsConfigError(f"{server} TLS file {path} does not exist")
    if tls.key_file is not None and tls.cert_file is None:
        raise TlsConfigError(f"{server} TLS: a key file without its certificate file")


def kafka_options(tls: RemoteTlsSettings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer/Consumer/AdminClient: SSL when enabled."""
    if not tls.enabled:
        return {}
    _check(tls, "Kafka")
    context = client_context(tls.ca_file, tls.cert_file, tls.key_file, tls.verify)
    return {"security_protocol": "SSL", "ssl_context": context}


def temporal_tls(tls: RemoteTlsSettings) -> TLSConfig | bool:
    """`tls=` for temporalio's Client.connect: False (plain), or a TLSConfig with the CA and
    client certificate (Temporal Cloud's mTLS)."""
    if not tls.enabled:
        return False
    _check(tls, "Temporal")
    if not tls.verify:
        # The SDK's Rust core has no switch to skip verification: name a CA instead.
        raise TlsConfigError(
            "Temporal TLS cannot skip verification: set PACS_TEMPORAL__TLS__CA_FILE"
        )
    return TLSConfig(
        server_root_ca_cert=tls.ca_file.read_bytes() if tls.ca_file else None,
        client_cert=tls.cert_file.read_bytes() if tls.cert_file else None,
        client_private_key=(tls.key_file or tls.cert_file).read_bytes() if tls.cert_file else None,
    )


def clickhouse_options(dsn: str, tls: RemoteTlsSettings) -> dict[str, Any]:
    """Keyword arguments for clickhouse_connect.get_client besides the DSN. An https:// DSN
    is TLS by itself; tls.enabled turns it on for a host:port DSN. chDB takes none."""
    if dsn.startswith("chdb://"):
        return {}
    if not (tls.enabled or dsn.startswith("https://")):
        return {}
    _check(tls, "ClickHouse")
    options: dict[str, Any] = {"secure": True, "verify": tls.verify}
    if tls.ca_file is not None:
        options["ca_cert"] = str(tls.ca_file)
    if tls.cert_file is not None:
        options["client_cert"] = str(tls.cert_file)
        if tls.key_file is not None:
            options["client_cert_key"] = str(tls.key_file)
    return options


def s3_http_client(
    tls: RemoteTlsSettings,
    timeout: urllib3.Timeout,
    retries: urllib3.Retry | bool,
    connections: int = 10,
) -> urllib3.PoolManager:
    """The MinIO SDK's HTTP client (`http_client=`), trusting tls.ca_file (else the system's
    store) and showing the client certificate when given."""
    _check(tls, "S3")
    context = client_context(tls.ca_file, tls.cert_file, tls.key_file, tls.verify)
    return urllib3.PoolManager(
        timeout=timeout,
        maxsize=connections,
        retries=retries,
        ssl_context=context,
        cert_reqs="CERT_REQUIRED" if tls.verify else "CERT_NONE",
    )
