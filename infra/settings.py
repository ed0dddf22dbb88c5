"""One settings model for every process: every external part is chosen here.

Values come from the environment (`PACS_` prefix, `__` between nested names, e.g.
`PACS_KAFKA__BOOTSTRAP_SERVERS=broker:9092`) or a `.env` file, so the same code runs
against the embedded local stack or remote Kafka / S3 / ClickHouse / Temporal.
"""

from __future__ import annotations

import contextlib
import os
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class LandingMode(StrEnum):
    """Where the ingest gateways put bytes before the archive workflow moves them."""

    SPOOL = "spool"  # fsync'd file under the data dir: fastest durable write on one node
    S3 = "s3"  # landing bucket: gateways keep no state at all


class DuplicatePolicy(StrEnum):
    """What a re-sent SOP Instance UID with *different* bytes does."""

    REJECT = "reject"
    OVERWRITE = "overwrite"


class UnknownAePolicy(StrEnum):
    """What a calling AE title that is not in the node registry may do."""

    LOCAL = "local"  # every service, from a loopback address only
    DENY = "deny"
    ALLOW = "allow"  # every service, from anywhere (a lab behind its own firewall)


class RemoteAE(BaseModel):
    """A peer we may open associations to (C-MOVE destination, commitment reply, SCU target)."""

    host: str
    port: int = Field(ge=1, le=65535)
    # The peer's port speaks TLS: we connect with TLS, showing our certificate.
    tls: bool = False


class ClientCertificates(StrEnum):
    """Whether a DIMSE TLS peer must present a certificate signed by a CA we trust."""

    OPTIONAL = "optional"  # asked for; one presented must verify; none: server-only TLS
    REQUIRED = "required"  # mutual TLS for every peer: no certificate, no handshake


class DicomSettings(BaseModel):
    ae_title: str = "PACS"
    # Calling AEs not in the node registry (/api/nodes): see UnknownAePolicy.
    unknown_aes: UnknownAePolicy = UnknownAePolicy.LOCAL
    host: str = "127.0.0.1"
    port: int = 11112
    # DIMSE over TLS (PS3.15 B.9) on its own port, served once a certificate exists (see
    # TlsSettings); 2762 is IANA's dicom-tls. 0 = no TLS listener. Host empty = `host`.
    tls_port: int = Field(default=2762, ge=0, le=65535)
    tls_host: str = ""
    tls_client_certificates: ClientCertificates = ClientCertificates.OPTIONAL
    max_associations: int = 64
    # Gateway processes sharing the port; the kernel spreads associations over them.
    processes: int = 1
    # The maximum PDU length we accept: large, so a peer may send a CT image in one P-DATA
    # PDU (far cheaper for pynetdicom than reassembling dozens of 16 KiB fragments), and
    # bounded, so no peer can make us hold gigabytes for one PDU; a longer PDU aborts the
    # association. 0 = no limit (only for trusted peers on the stock reactor).
    max_pdu_size: int = Field(default=4 * 1024 * 1024, ge=0)
    network_timeout_seconds: float = 60.0
    # A Q/R C-FIND sends at most this many matches, then ends with 0xA700 and an
    # ErrorComment saying it was capped (never a success for a truncated answer).
    find_max_matches: int = Field(default=100_000, ge=1)
    # Accepted associations wait for socket data and queued messages instead of polling
    # every millisecond (ingest/dimse/reactor.py); false restores pynetdicom's own loops.
    event_driven_reactor: bool = True
    # Known peers by AE title, e.g. PACS_DICOM__REMOTE_AES='{"WS1": {"host": "10.0.0.5",
    # "port": 104}}'. C-MOVE only sends to AEs listed here (PS3.4 C.4.2.3.1: an unknown
    # Move Destination is refused with 0xA801).
    remote_aes: dict[str, RemoteAE] = Field(default_factory=dict)
    # A completed MPPS waits this long for the instances it lists to arrive.
    mpps_verify_timeout_seconds: float = 600.0
    # A worklist item whose step an MPPS COMPLETED or DISCONTINUED stays on the worklist
    # (MWL C-FIND and GET /api/worklist) this many hours after; 0 = it leaves at once.
    # A query for that ScheduledProcedureStepStatus finds it whenever it finished.
    worklist_keep_finished_hours: float = Field(0.0, ge=0)
    # Storage commitment waits this long for referenced instances received but still being
    # archived; an instance never received is failed at once (0x0112).
    commitment_timeout_seconds: float = 30.0

    def remote_ae(self, ae_title: str) -> RemoteAE | None:
        """The peer known by this AE title. Environment variable names lose their case
        (PACS_DICOM__REMOTE_AES__WS1__HOST arrives as key "ws1"), so an exact match wins and
        a case-insensitive one is accepted."""
        ae_title = ae_title.strip()
        if ae_title in self.remote_aes:
            return self.remote_aes[ae_title]
        folded = {title.casefold(): peer for title, peer in self.remote_aes.items()}
        return folded.get(ae_title.casefold())


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    # HTTPS on its own port, served by the API once a certificate exists (see TlsSettings);
    # plain HTTP stays on `host`:`port` for our own processes. 0 = no HTTPS listener.
    # Host empty = `host`.
    tls_port: int = Field(default=8443, ge=0, le=65535)
    tls_host: str = ""
    # Browser viewers (OHIF on another port, a dev server) read DICOMweb cross-origin.
    # Origins listed here, plus any matching the pattern (default: this machine, any port).
    # PACS_HTTP__CORS_ORIGIN_REGEX="" turns the pattern off.
    cors_origins: list[str] = Field(default_factory=list)
    cors_origin_regex: str = r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]+)?$"
    # STOW-RS bodies are streamed part by part into landing. A body larger than this
    # (PACS_HTTP__STOW_MAX_REQUEST_BYTES) answers 413: at once when Content-Length says so,
    # else where the count crosses it. A part larger than PACS_HTTP__STOW_MAX_PART_BYTES
    # answers 413 too: one part at a time is held in memory while it is accepted.
    stow_max_request_bytes: int = Field(default=4 * 1024**3, gt=0)
    stow_max_part_bytes: int = Field(default=1024**3, gt=0)


class RemoteTlsSettings(BaseModel):
    """TLS towards a remote server (Kafka, Temporal, ClickHouse, S3): whom to trust and
    which client certificate to show. Paths are PEM files."""

    enabled: bool = False
    # CA bundle the server's certificate must chain to; empty = the system's trust store.
    ca_file: Path | None = None
    # A client certificate and its key, for servers that require mutual TLS.
    cert_file: Path | None = None
    key_file: Path | None = None
    # False accepts any server certificate: for a lab only, never in production.
    verify: bool = True


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "pacs.events"
    # Tansu writes one S3 object per partition per produce request, so on the embedded broker
    # one partition batches concurrent sends best (measured: 4 senders 549/s on 1 partition,
    # 113/s on 4). On Kafka/Redpanda raise it to scale consumers out.
    partitions: int = 1
    # 0: send at once; sends that arrive while a request is in flight still share the next one.
    linger_ms: int = 0
    request_timeout_ms: int = 10_000
    # Consumers fetch at most this often. On Tansu's S3 engine every fetch and offset
    # commit is several object-store calls; polling flat out during ingest tripled the
    # producers' ack latency. A second's worth of events per fetch costs nothing downstream.
    consumer_poll_interval_seconds: float = 1.0
    # The projector polls more often: a stored instance should be searchable within a second.
    projection_poll_interval_seconds: float = 0.25
    # ... unless the last fetch brought at least `projection_busy_records` events: then the
    # next waits this long. Each batch costs the projector ~100 ms of read-model work whatever
    # its size; during a 300-image burst over 4 associations this took the API's CPU from
    # 5.7 to 1.0 ms per image (bench/README.md). A lone instance stays searchable at once.
    projection_busy_poll_interval_seconds: float = 1.0
    projection_busy_records: int = 10
    # tls.enabled: security_protocol SSL (PACS_KAFKA__TLS__ENABLED=true, __CA_FILE=...).
    tls: RemoteTlsSettings = Field(default_factory=RemoteTlsSettings)


class S3Settings(BaseModel):
    endpoint: str = "127.0.0.1:8333"
    access_key: str = "pacs"
    secret_key: str = "pacs-secret"
    region: str = "us-east-1"
    secure: bool = False
    archive_bucket: str = "pacs-archive"
    landing_bucket: str = "pacs-landing"
    # Instance headers too large for their event (infra/storage/metadata.py).
    metadata_bucket: str = "pacs-metadata"
    # Tansu keeps its log segments here when it runs on the local SeaweedFS.
    broker_bucket: str = "tansu"
    # HTTPS when `secure` (or tls.enabled); tls.ca_file, client certificate and verify apply.
    tls: RemoteTlsSettings = Field(default_factory=RemoteTlsSettings)


class ClickHouseSettings(BaseModel):
    # Empty = embedded chDB under <data_dir>/clickhouse; or e.g. http://host:8123/pacs
    dsn: str = ""
    # Patient, study and series rows kept in memory for fast searches, per level; a level
    # with more rows is searched in ClickHouse. 0 keeps none. (~1.3 KB per row.)
    resident_max_rows: int = 500_000
    # An https:// DSN (or tls.enabled) speaks HTTPS; tls.ca_file, client cert, verify apply.
    tls: RemoteTlsSettings = Field(default_factory=RemoteTlsSettings)


class TemporalSettings(BaseModel):
    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    ingest_task_queue: str = "pacs-ingest"
    ui_port: int = 8233
    # tls.enabled: TLS to the frontend (Temporal Cloud needs the client certificate).
    tls: RemoteTlsSettings = Field(default_factory=RemoteTlsSettings)


class IngestSettings(BaseModel):
    landing: LandingMode = LandingMode.SPOOL
    duplicate_policy: DuplicatePolicy = DuplicatePolicy.REJECT
    # Landing write + event publish must finish within this, else the sender gets a failure.
    accept_timeout_seconds: float = 10.0
    # A study with no new instance for this long is declared stable.
    stable_after_seconds: float = 30.0
    # A landed object older than this with no archive yet gets its event re-announced.
    orphan_after_seconds: float = 120.0
    archive_batch_size: int = 50
    # A header whose DICOM JSON is larger than this is stored in the metadata bucket and
    # referenced by its event (the broker takes records of a few MiB at most).
    inline_metadata_max_bytes: int = Field(default=256 * 1024, ge=0)
    # During a burst the modality is waiting on our acks and the landing area is already
    # durable, so archive copies wait until a study pauses this long (or the backlog fills):
    # on two cores the object store serves either ingest or archive at full speed, not both.
    archive_settle_seconds: float = 2.0
    archive_max_backlog: int = 500


def default_viewer_dir() -> Path:
    """Where `make viewer` unpacks OHIF: `.viewer/dist` in this source tree, whatever the cwd."""
    return Path(__file__).resolve().parents[1] / ".viewer" / "dist"


class OidcSettings(BaseModel):
    """An external identity provider whose JWTs are accepted (Keycloak, Entra ID, Okta)."""

    # Empty = no external provider. The `iss` the tokens carry, e.g.
    # https://keycloak.example/realms/hospital.
    issuer: str = ""
    # The `aud` they must carry (the client id registered for this PACS).
    audience: str = ""
    # The provider's signing keys (`jwks_uri` of its discovery document); fetched, cached.
    jwks_url: str = ""
    # The claim holding the user's roles or groups (dots for nesting: realm_access.roles).
    roles_claim: str = "roles"
    # The provider's role/group names → ours; names not listed map to nothing.
    role_map: dict[str, str] = Field(default_factory=dict)
    # The claim naming the user in the audit trail.
    username_claim: str = "preferred_username"


class AuthSettings(BaseModel):
    """Logins and tokens. Security is always on; there is no setting that turns it off."""

    # The bootstrap user `admin`'s password. Unset on first start: a random one is
    # generated and written to <data_dir>/secrets/admin-password (mode 0600). When set, it
    # is (re)applied at every start, so an administrator who lost it can set a new one.
    admin_password: SecretStr | None = None
    # Signs the platform's tokens (HS256). Unset: a random key kept in
    # <data_dir>/secrets/token-key (0600), shared by every process on this data dir; set
    # the same value on every node when the processes run on several machines.
    token_key: SecretStr | None = None
    # The HMAC key of de-identification (keyed UIDs, pseudonyms, date offsets). Unset: a
    # random key in <data_dir>/secrets/deidentify-key (0600); set the same value on every
    # worker machine, or copies made on different machines will not match.
    deidentify_key: SecretStr | None = None
    token_ttl_seconds: int = Field(default=3600, ge=60)
    # Browser sessions (the login page's cookie) last this long.
    session_ttl_seconds: int = Field(default=8 * 3600, ge=60)
    # Cookies carry the Secure flag (send only over HTTPS); off for plain-HTTP localhost.
    secure_cookies: bool = False
    oidc: OidcSettings = Field(default_factory=OidcSettings)


class AtnaSettings(BaseModel):
    """IHE ATNA: the audit trail as DICOM PS3.15 A.5 messages to a syslog receiver."""

    # Empty = no export. tcp://host:port (RFC 6587 octet counting) or tls://host:port
    # (RFC 5425); `pacs up` then starts the `audit-export` process.
    syslog_url: str = ""
    # TLS: the CA that signed the receiver's certificate (empty: the system's CAs), and our
    # own certificate and key for the receiver to authenticate us (ATNA: both sides).
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # AuditSourceID and AuditEnterpriseSiteID of every message (empty source: the AE title).
    audit_source_id: str = ""
    enterprise_site_id: str = ""
    # RFC 5424 APP-NAME and HOSTNAME (empty: this machine's name).
    app_name: str = "pacs"
    hostname: str = ""
    # A receiver outage is retried with backoff doubling up to this; nothing is skipped.
    retry_max_seconds: float = Field(default=30.0, gt=0)
    # After a batch is written, the connection must stay open this long before the batch
    # counts as delivered (a receiver that closes meanwhile may not have read it).
    confirm_seconds: float = Field(default=0.2, ge=0)

    @field_validator("syslog_url")
    @classmethod
    def _syslog_url(cls, value: str) -> str:
        if value:
            syslog_endpoint(value)
        return value

    @model_validator(mode="after")
    def _key_with_cert(self) -> AtnaSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("PACS_ATNA__CERT_FILE and PACS_ATNA__KEY_FILE go together")
        return self


def syslog_endpoint(url: str) -> tuple[str, str, int]:
    """`tcp://host:port` or `tls://host:port` → (scheme, host, port); ValueError says what
    is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("tcp", "tls"):
        raise ValueError(f"syslog URL {url!r}: must start with tcp:// or tls://")
    host, sep, port = rest.rstrip("/").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"syslog URL {url!r}: needs a host and a port 1-65535 (tcp://host:6514)")
    return scheme, host, int(port)


class TlsSettings(BaseModel):
    """The certificate this node serves DIMSE over TLS and HTTPS with, and the CA whose
    client certificates it trusts. Empty paths = the files `pacs certs init` writes under
    <data_dir>/certs; point them at hospital-issued PEM files instead. No certificate, no
    TLS listener."""

    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None


class AuditSettings(BaseModel):
    """The audit trail of PHI reads and security decisions (infra/audit_recorder.py)."""

    # Each process publishes what it recorded as one event this often. Every event is a
    # broker write and a fetch by each consumer; measured on two cores (10k instances, 200
    # C-FINDs by patient, P95): 5.46 ms before auditing, 8.5-10.6 ms flushing every second,
    # 5.2-5.8 ms (one run in three 8.3) every 5 s. The cost of a longer interval: entries a
    # process recorded in its last interval are lost if it is killed (SIGTERM flushes).
    flush_seconds: float = Field(default=5.0, gt=0, le=60)


class MetricsSettings(BaseModel):
    """Prometheus /metrics of the processes without an HTTP server of their own (infra/metrics.py).
    The API serves its own at /metrics behind `metrics:read`. 0 = not served."""

    host: str = "127.0.0.1"
    # With several gateway processes (dicom.processes) each takes the next free port from here.
    gateway_port: int = Field(default=0, ge=0, le=65535)
    worker_port: int = Field(default=0, ge=0, le=65535)
    dispatcher_port: int = Field(default=0, ge=0, le=65535)
    # The worker's Temporal SDK metrics (temporal_workflow_task_execution_latency,
    # temporal_activity_execution_latency, ...), served by the SDK core itself.
    workflow_port: int = Field(default=0, ge=0, le=65535)


class FederationSettings(BaseModel):
    """Talking to the other nodes: how often each registered node's health is checked."""

    # A Temporal Schedule starts NodeHealthWorkflow this often; 0 = no schedule (checks
    # only on demand, POST /api/nodes/check).
    health_interval_seconds: float = Field(default=60.0, ge=0)
    # Each probe (association + C-ECHO, or one QIDO request) gives up after this long.
    probe_timeout_seconds: float = Field(default=5.0, gt=0)
    # Prefetch pulls (C-GET / C-MOVE / WADO-RS of one study) running at once per source,
    # per worker: a morning's worklist must not flood one archive's retrieve service.
    prefetch_per_source: int = Field(default=2, ge=1, le=64)
    # The IANA time zone routing windows (e.g. 20:00-06:00) are read in, unless a rule
    # names its own; default: the machine's.
    timezone: str = Field(default_factory=lambda: system_timezone(), max_length=64)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Paris)") from exc
        return value


class LifecycleSettings(BaseModel):
    """Deleting what is stored, and checking what stays."""

    # How long a deleted study's bytes stay in storage before they are purged: the time to
    # notice a wrong deletion (the read models drop it at once).
    delete_grace_seconds: float = Field(default=7 * 24 * 3600.0, ge=0)
    # How often the `fixity` schedule re-reads the whole archive (0: never; on demand only).
    fixity_interval_seconds: float = Field(default=7 * 24 * 3600.0, ge=0)
    # How often the `retention` schedule applies the retention rules (0: never). With no
    # rule (the default) a run deletes nothing.
    retention_interval_seconds: float = Field(default=24 * 3600.0, ge=0)


class TierSettings(BaseModel):
    """One storage tier: a bucket on an S3 endpoint, or a container on Azure Blob Storage."""

    backend: Literal["s3", "azure"] = "s3"
    # The S3 bucket or the Azure container (created when missing).
    bucket: str
    # Another S3 endpoint for this tier (None: the platform's own, `s3`).
    s3: S3Settings | None = None
    # S3 storage class of this tier's objects (x-amz-storage-class: STANDARD_IA, GLACIER_IR,
    # ...); None: the endpoint's default. SeaweedFS accepts and ignores it.
    storage_class: str | None = None
    # backend azure: the account's connection string (Azurite's: see tests/azurite.py).
    azure_connection_string: SecretStr | None = None


class TiersSettings(BaseModel):
    """Where studies go as they age. `hot` is always the archive bucket (`s3.archive_bucket`),
    where every instance is first archived; warm and cold are where rules and manual moves
    put them (docs/lifecycle.md)."""

    warm: TierSettings = Field(default_factory=lambda: TierSettings(bucket="pacs-warm"))
    cold: TierSettings = Field(default_factory=lambda: TierSettings(bucket="pacs-cold"))
    # How often the `tier-migration` schedule applies the storage rules (0: never).
    rules_interval_seconds: float = Field(default=3600.0, ge=0)
    # Studies a rules run moves at once (each its own StudyMigrationWorkflow).
    migrations_at_once: int = Field(default=4, ge=1)
    # A WADO read from warm or cold moves the study back to hot (a recall), at most one
    # move of a study at a time.
    recall_on_read: bool = False
    # How long a C-GET or C-MOVE waits for its shared lease on a study being moved (then it
    # goes on without: reads find each instance in whichever tier holds it). 0: retrieves
    # take no lease (a move may then run beside one).
    retrieve_lock_wait_seconds: float = Field(default=60.0, ge=0)

    def local_buckets(self) -> list[str]:
        """Buckets of tiers on the platform's own S3 endpoint (created with its others)."""
        return [t.bucket for t in (self.warm, self.cold) if t.backend == "s3" and t.s3 is None]


def system_timezone() -> str:
    """The machine's IANA zone name: $TZ, /etc/timezone, the /etc/localtime link; else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    with contextlib.suppress(OSError):
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    for name in candidates:
        if name:
            with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
                ZoneInfo(name)
                return name
    return "UTC"


class Settings(BaseSettings):
    """All configuration of a PACS node."""

    model_config = SettingsConfigDict(
        env_prefix="PACS_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    data_dir: Path = Path("./data")
    # True: use the configured remote servers; `pacs up` starts only our own processes.
    external: bool = False
    dicom: DicomSettings = Field(default_factory=DicomSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    temporal: TemporalSettings = Field(default_factory=TemporalSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    atna: AtnaSettings = Field(default_factory=AtnaSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    federation: FederationSettings = Field(default_factory=FederationSettings)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    tiers: TiersSettings = Field(default_factory=TiersSettings)
    # The built OHIF viewer (npm @ohif/app) served at /viewer; absent = /viewer answers 503.
    viewer_dir: Path = Field(default_factory=default_viewer_dir)

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    @property
    def certs_dir(self) -> Path:
        return self.data_dir / "certs"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def clickhouse_dsn(self) -> str:
        if self.clickhouse.dsn:
            return self.clickhouse.dsn
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
