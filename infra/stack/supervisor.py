"""Local platform supervisor: starts SeaweedFS (S3), Tansu (Kafka) and Temporal from PyPI
wheels, plus our own processes, all keeping their state under `settings.data_dir`; `pacs up`
runs it in the foreground and restarts children that die.

Every auxiliary port is derived from a configured main port so two stacks with
different main ports (e.g. the default one and a test one) never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from minio import Minio

from infra.settings import Settings
from infra.stack import readiness, servers
from infra.stack.env import settings_to_env, split_host_port
from infra.stack.errors import StackError
from infra.stack.processes import ManagedProcess, ProcessStartError
from infra.tls.contexts import TlsConfigError, server_credentials

log = logging.getLogger(__name__)

APP_COMMANDS = ("gateway", "api", "worker", "dispatcher", "audit-export")
# Supervision: a child that stayed up this long is considered healthy again, so its
# restart backoff starts over.
STABLE_RUN_SECONDS = 60.0
MAX_RESTART_DELAY_SECONDS = 30.0


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
            s = self.settings
            self._servers = [
                servers.seaweedfs(s, self.s3_host, self.s3_port),
                servers.tansu(s, self.kafka_host, self.kafka_port, self.s3_host, self.s3_port),
                servers.temporal(s, self.temporal_host, self.temporal_port),
            ]
        return self._servers

    def app_processes(self) -> list[ManagedProcess]:
        if self._apps is None:
            env = settings_to_env(self.settings)
            # `python -m apps.cli` must import this source tree even when the project
            # is not installed into the venv or the CLI was started from elsewhere.
            # This file is <root>/infra/stack/supervisor.py.
            root = str(Path(__file__).resolve().parents[2])
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
        """Gateways share their port (SO_REUSEPORT), so several can run side by side; the
        ATNA exporter runs only when it has somewhere to send to."""
        if command == "audit-export" and not self.settings.atna.syslog_url:
            return []
        count = self.settings.dicom.processes if command == "gateway" else 1
        return [command if i == 0 else f"{command}-{i + 1}" for i in range(count)]

    def weed_ports(self) -> dict[str, int]:
        return servers.weed_ports(self.s3_port)

    # ---- clients and health checks ---------------------------------------------------

    def minio_client(self) -> Minio:
        return readiness.minio_client(self.settings.s3)

    async def _check_s3(self) -> None:
        await readiness.check_s3(self.settings.s3)

    async def _check_kafka(self) -> None:
        await readiness.check_kafka(self.settings.kafka, self.kafka_host, self.kafka_port)

    async def _check_temporal(self) -> None:
        await readiness.check_temporal(self.settings.temporal)

    # ---- lifecycle --------------------------------------------------------------------

    async def start_servers(self) -> None:
        weed, tansu, temporal = self.server_processes()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            servers.write_s3_identities(self.settings)
            # Temporal does not depend on the others; starting it first overlaps its
            # startup with SeaweedFS's.
            temporal.start()
            weed.start()
            took = await readiness.wait_healthy(weed, self._check_s3)
            log.info("seaweedfs healthy after %.2fs", took)
            # Tansu's storage bucket has to exist before Tansu starts.
            await readiness.ensure_buckets(self.settings.s3, *self.settings.tiers.local_buckets())
            tansu.start()
            took = await readiness.wait_healthy(tansu, self._check_kafka)
            log.info("tansu healthy after %.2fs", took)
            await readiness.ensure_topic(self.settings.kafka)
            took = await readiness.wait_healthy(temporal, self._check_temporal)
            log.info("temporal healthy after %.2fs", took)
        except BaseException:
            self._stop(self.server_processes())
            raise

    async def start_object_store(self) -> ManagedProcess:
        """SeaweedFS alone, healthy and with its buckets: for tests of the archive store that
        need nothing else. `stop_all` stops it."""
        weed = self.server_processes()[0]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        servers.write_s3_identities(self.settings)
        weed.start()
        try:
            await readiness.wait_healthy(weed, self._check_s3)
            await readiness.ensure_buckets(self.settings.s3, *self.settings.tiers.local_buckets())
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
        await readiness.wait_apps_ready(url, self.app_processes(), timeout)

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
            **self.tls_urls(),
        }

    def tls_urls(self) -> dict[str, str]:
        """The TLS listeners the gateway and API open, when the node has a certificate."""
        s = self.settings
        if server_credentials(s) is None:
            return {}
        urls = {}
        if s.dicom.tls_port:
            host = s.dicom.tls_host or s.dicom.host
            urls["DICOM TLS"] = f"{s.dicom.ae_title}@{host}:{s.dicom.tls_port}"
        if s.http.tls_port:
            urls["HTTPS"] = f"https://{s.http.tls_host or s.http.host}:{s.http.tls_port}"
        return urls


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


def _print_login(settings: Settings, started_at: float) -> None:
    """How to log in; where a generated admin password is, the first time only."""
    login = f"http://{settings.http.host}:{settings.http.port}/login"
    print(f"  {'Login':<12} {login} (user admin)", flush=True)
    generated = settings.secrets_dir / "admin-password"
    fresh = generated.exists() and generated.stat().st_mtime >= started_at
    if settings.auth.admin_password is None and fresh:
        print(
            f"  A password was generated for the user admin: it is in {generated} "
            "(readable by you only). Set PACS_AUTH__ADMIN_PASSWORD to choose one.",
            flush=True,
        )


async def run_foreground(settings: Settings) -> int:
    """`pacs up`: run the node until SIGINT/SIGTERM, restarting children that die."""
    started_at = time.time()
    stack = LocalStack(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = (signal.SIGINT, signal.SIGTERM)
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)

    async def startup() -> None:
        server_credentials(settings)  # a configured certificate that is missing: stop here
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
        except (StackError, ProcessStartError, TlsConfigError) as exc:
            log.error("startup failed: %s", exc)
            return 1

        print("PACS is up:", flush=True)
        for label, url in stack.urls().items():
            print(f"  {label:<12} {url}", flush=True)
        print(f"  {'Logs':<12} {stack.log_dir}", flush=True)
        _print_login(settings, started_at)

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
