"""Debian's Orthanc as an independent peer, with a config of its own (tests and benchmarks)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from infra.stack import port_is_free

LOOPBACK = "127.0.0.1"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


class Orthanc:
    """The Debian Orthanc binary under `workdir/orthanc`, on loopback ports of our choice."""

    def __init__(
        self,
        workdir: Path,
        dicom_port: int,
        http_port: int,
        *,
        aet: str = "ORTHANC",
        max_pdu: int | None = None,
        dicomweb: bool = False,
        modalities: dict[str, tuple[str, str, int]] | None = None,
        lua: str | None = None,
    ) -> None:
        self.dir = workdir / "orthanc"
        self.dicom_port = dicom_port
        self.http_port = http_port
        self.aet = aet
        self.max_pdu = max_pdu
        self.dicomweb = dicomweb
        # Peers Orthanc may C-MOVE to: name -> (AE title, host, port).
        self.modalities = modalities or {}
        # A Lua script Orthanc runs (e.g. OnStoredInstance for auto-routing).
        self.lua = lua
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "orthanc.log"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def write_config(self) -> Path:
        storage = self.dir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "Name": "peer-orthanc",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "StorageCompression": False,
            # Only the plugins asked for: the Debian defaults under /etc/orthanc are not read.
            "Plugins": [str(DICOMWEB_PLUGIN)] if self.dicomweb else [],
            # Orthanc >= 1.7.4 defaults, spelled out because they make ingest durable
            # (fsync per file, like our landing) and set Orthanc's own SCP concurrency.
            "SyncStorageArea": True,
            "DicomThreadsCount": 4,
            # Any calling AE may query and retrieve (Orthanc 1.9+ refuses unknown AEs).
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "DicomModalities": {
                name: [aet, host, port] for name, (aet, host, port) in self.modalities.items()
            },
        }
        if self.dicomweb:
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
        if self.max_pdu is not None:
            config["MaximumPduLength"] = self.max_pdu
        if self.lua is not None:
            script = self.dir / "script.lua"
            script.write_text(self.lua)
            config["LuaScripts"] = [str(script)]
        path = self.dir / "orthanc.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def start(self, timeout: float = 60.0) -> str:
        """Start and wait for the REST API; returns Orthanc's version."""
        for port in (self.dicom_port, self.http_port):
            if not port_is_free(LOOPBACK, port):
                raise RuntimeError(f"port {port} for Orthanc is already in use")
        binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
        config = self.write_config()
        # Orthanc's DICOM server is DCMTK, which leaves Nagle on unless TCP_NODELAY is set
        # in its environment: measured 40 images in 2.3 s without it, 0.26 s with it (every
        # C-STORE response waits for a delayed ACK). Our gateway sets TCP_NODELAY itself.
        env = {**os.environ, "TCP_NODELAY": "1"}
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [binary, str(config)],
                cwd=self.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        last = "no response"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Orthanc exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                response = httpx.get(f"{self.url}/system", timeout=2)
                if response.status_code == 200:
                    return str(response.json().get("Version", "?"))
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.25)
        raise RuntimeError(f"Orthanc /system not answering within {timeout:.0f}s ({last})")

    def instance_count(self) -> int:
        response = httpx.get(f"{self.url}/statistics", timeout=30)
        response.raise_for_status()
        return int(response.json()["CountInstances"])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
