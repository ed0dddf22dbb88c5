"""One supervised child process: its command line, environment and log file."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


class ProcessStartError(RuntimeError):
    """A child could not be started (already running, port taken, bad executable)."""


@dataclass
class ManagedProcess:
    """A child process started in its own session, output appended to `log_path`.

    `env` holds overrides on top of the parent's environment, so proxies, locale and
    PATH still reach the child while the settings we care about are pinned.
    """

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path = Path("process.log")
    cwd: Path | None = None
    # Ports this process listens on; checked before start so a leftover server from an
    # earlier, killed run cannot answer our health checks in place of the new one.
    ports: list[tuple[str, int]] = field(default_factory=list)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    started_at: float = field(default=0.0, init=False)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def start(self) -> None:
        if self.alive():
            raise ProcessStartError(f"{self.name} is already running (pid {self.pid})")
        for host, port in self.ports:
            if not port_is_free(host, port):
                raise ProcessStartError(
                    f"{self.name}: port {host}:{port} is already in use "
                    "(is a previous stack still running?)"
                )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.cwd is not None:
            self.cwd.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            out.write(f"\n=== {stamp} starting {self.name}: {' '.join(self.argv)}\n".encode())
            out.flush()
            # A new session keeps Ctrl+C in the terminal from reaching the children
            # directly: shutdown order is ours to decide (apps before the servers).
            try:
                self._proc = subprocess.Popen(
                    self.argv,
                    env={**os.environ, **self.env},
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ProcessStartError(f"{self.name}: cannot run {self.argv[0]}: {exc}") from exc
        self.started_at = time.monotonic()
        log.info("started %s (pid %d), log %s", self.name, self._proc.pid, self.log_path)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def terminate(self) -> None:
        """Send SIGTERM without waiting, so several processes can shut down at once."""
        self._signal(signal.SIGTERM)

    def wait(self, timeout: float) -> bool:
        """True once the process has exited; SIGKILLs it when `timeout` runs out."""
        if self._proc is None:
            return True
        try:
            self._proc.wait(timeout=max(timeout, 0.0))
            return True
        except subprocess.TimeoutExpired:
            log.warning("%s did not exit within %.1fs of SIGTERM; killing it", self.name, timeout)
            self.kill()
            return False

    def stop(self, timeout: float = 10) -> None:
        if not self.alive():
            return
        self.terminate()
        if self.wait(timeout):
            log.info("stopped %s (exit %s)", self.name, self.returncode)

    def kill(self) -> None:
        if self._proc is None:
            return
        self._signal(signal.SIGKILL)
        # Reaping frees the listening ports at once, so a restart can bind them again.
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.error("%s (pid %d) survived SIGKILL", self.name, self._proc.pid)

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        # The whole group: helpers a server forks must not outlive it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too; without it TIME_WAIT leftovers would look busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
