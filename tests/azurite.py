"""Azurite, Microsoft's Azure Storage emulator (npm `azurite`, installed by `make azurite`),
as the home of an Azure Blob tier in tests: its blob service on a loopback port, in a
directory of its own, with the emulator's well-known development account."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / ".azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's documented development account (public: it is the emulator's, not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class Azurite:
    def __init__(self, directory: Path, port: int) -> None:
        self.dir = directory
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};"
        )

    def start(self, timeout: float = 60.0) -> None:
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} is missing: run `make azurite`")
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / "azurite.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BINARY), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                 "--location", str(self.dir), "--skipApiVersionCheck", "--silent"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Azurite exited with {self.proc.returncode}; see {self.dir}")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/{ACCOUNT}?comp=list", timeout=2)
                return  # any HTTP answer: it is listening (unsigned requests get 403)
            except httpx.HTTPError:
                time.sleep(0.25)
        raise RuntimeError(f"Azurite not answering on {self.port} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
