"""Durable DICOM ingest: our platform against Orthanc, same client, same data, one run.

DCMTK's `storescu` sends 500 synthetic CT images (512x512, 16 bit) to each target over one
association, then over four concurrent associations of 125 images each. Targets: Orthanc
(Debian package, its own config in the work dir) and our platform on the embedded local
stack, once per landing mode (fsync'd spool, S3 landing bucket), each on a fresh data dir.

For our platform it also measures the archive lag: from the last `storescu` exit until
every sent instance is in the archive bucket and the landing area is empty.

    .venv/bin/python bench/ingest_vs_orthanc.py [--landing spool|s3|both] [--workdir DIR]

Results are printed as a table and written to `bench/results/<timestamp>.json`.
Exit status is non-zero if any store failed or the archive did not catch up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform as host_platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    # Run as `python bench/ingest_vs_orthanc.py`: make `infra` and `tests` importable.
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from minio import Minio  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from infra.settings import (  # noqa: E402
    AuthSettings,
    DicomSettings,
    HttpSettings,
    IngestSettings,
    KafkaSettings,
    LandingMode,
    S3Settings,
    Settings,
    TemporalSettings,
)
from infra.stack import LocalStack  # noqa: E402
from infra.storage.archive import make_minio  # noqa: E402
from tests.dicom_factory import ct_series, write_series  # noqa: E402
from tests.login import login_admin as login  # noqa: E402
from tests.orthanc import Orthanc  # noqa: E402

log = logging.getLogger("bench")
console = Console()

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LOOPBACK = "127.0.0.1"
ORTHANC_AET = "ORTHANC"
CALLING_AET = "BENCHSCU"
STACK_READY_TIMEOUT = 180.0
POLL_SECONDS = 0.5
MB = 1_000_000


# ---- data -----------------------------------------------------------------------------


@dataclass
class SendSet:
    """Part-10 files of one fresh study, split into one folder per association."""

    study_uid: str
    series_uid: str
    folders: list[Path]
    sops: list[str]
    total_bytes: int


def make_send_set(root: Path, images: int, associations: int) -> SendSet:
    """`images` CT slices of one new study/series, dealt round-robin into `associations` folders."""
    if images % associations:
        raise ValueError(f"{images} images do not split evenly into {associations} associations")
    folders = [root / f"assoc{i}" for i in range(associations)]
    datasets = list(ct_series(images, patient_id="BENCH-0001"))
    sops: list[str] = []
    total = 0
    per = images // associations
    for i, folder in enumerate(folders):
        paths = write_series(folder, iter(datasets[i * per : (i + 1) * per]))
        total += sum(p.stat().st_size for p in paths)
        sops.extend(p.stem for p in paths)
    first = datasets[0]
    return SendSet(
        study_uid=str(first.StudyInstanceUID),
        series_uid=str(first.SeriesInstanceUID),
        folders=folders,
        sops=sops,
        total_bytes=total,
    )


# ---- sending --------------------------------------------------------------------------


@dataclass
class SendResult:
    seconds: float
    exit_codes: list[int]
    error_lines: list[str]

    @property
    def ok(self) -> bool:
        return all(code == 0 for code in self.exit_codes) and not self.error_lines


def storescu(aet: str, port: int, folders: list[Path], log_dir: Path) -> SendResult:
    """One `storescu` process per folder, all started together; wall time to the last exit."""
    # DCMTK reads TCP_NODELAY from the environment; without it every DIMSE message waits
    # for a delayed ACK (~40 ms) on both targets.
    env = {**os.environ, "TCP_NODELAY": "1"}
    log_dir.mkdir(parents=True, exist_ok=True)
    outs = [(log_dir / f"storescu-{i}.log").open("wb") for i in range(len(folders))]
    try:
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                ["storescu", "-aet", CALLING_AET, "-aec", aet, "+sd", LOOPBACK, str(port), str(f)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
            for f, out in zip(folders, outs, strict=True)
        ]
        codes = [proc.wait(timeout=900) for proc in procs]
        seconds = time.perf_counter() - start
    finally:
        for out in outs:
            out.close()
    errors: list[str] = []
    for i in range(len(folders)):
        text = (log_dir / f"storescu-{i}.log").read_text(errors="replace")
        errors.extend(
            f"[{i}] {line}" for line in text.splitlines() if line.startswith(("E:", "F:"))
        )
    return SendResult(seconds=seconds, exit_codes=codes, error_lines=errors)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time a live process has used so far (0 if unknown)."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(pids: dict[str, int | None]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 2) for name in after}


# ---- results --------------------------------------------------------------------------


@dataclass
class RunResult:
    target: str
    associations: int
    images: int
    bytes: int
    seconds: float
    ok: bool
    exit_codes: list[int]
    errors: list[str] = field(default_factory=list)
    archive_lag_seconds: float | None = None
    archive_ok: bool | None = None
    verified: str = ""
    # CPU seconds each server process used from the first storescu start to the last exit.
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    @property
    def mb_per_second(self) -> float:
        return self.bytes / MB / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["images_per_second"] = round(self.images_per_second, 2)
        data["mb_per_second"] = round(self.mb_per_second, 2)
        return data


def record(target: str, send: SendSet, result: SendResult, cpu: dict[str, float]) -> RunResult:
    run = RunResult(
        target=target,
        associations=len(send.folders),
        images=len(send.sops),
        bytes=send.total_bytes,
        seconds=result.seconds,
        ok=result.ok,
        exit_codes=result.exit_codes,
        errors=result.error_lines[:20],
        cpu_seconds=cpu,
    )
    status = "[green]ok[/]" if run.ok else f"[red]FAILED[/] exit codes {run.exit_codes}"
    console.print(
        f"  {target}, {run.associations} assoc: {run.images} images in {run.seconds:.2f}s "
        f"({run.images_per_second:.1f} img/s, {run.mb_per_second:.1f} MB/s) {status}"
    )
    if cpu:
        used = ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu.items())
        console.print(f"    server CPU seconds during the send: {used}")
    for line in run.errors[:5]:
        console.print(f"    [red]{line}[/]")
    return run


# ---- Orthanc --------------------------------------------------------------------------


def bench_orthanc(args: argparse.Namespace, workdir: Path) -> list[RunResult]:
    console.rule("Orthanc")
    orthanc = Orthanc(
        workdir, args.orthanc_dicom_port, args.orthanc_http_port, max_pdu=args.orthanc_pdu
    )
    results: list[RunResult] = []
    try:
        console.print(f"  Orthanc {orthanc.start()} up on DICOM {orthanc.dicom_port}")
        for associations in (1, 4):
            send = make_send_set(
                workdir / "data" / f"orthanc-{associations}", args.images, associations
            )
            before = orthanc.instance_count()
            pids = {"orthanc": orthanc.proc.pid if orthanc.proc else None}
            cpu = cpu_snapshot(pids)
            result = storescu(
                ORTHANC_AET, orthanc.dicom_port, send.folders, send.folders[0].parent / "logs"
            )
            run = record("orthanc", send, result, cpu_delta(cpu, cpu_snapshot(pids)))
            stored = orthanc.instance_count() - before
            run.verified = f"{stored}/{run.images} in /statistics"
            if stored != run.images:
                run.ok = False
                console.print(
                    f"    [red]Orthanc holds {stored} new instances, expected {run.images}[/]"
                )
            results.append(run)
            shutil.rmtree(send.folders[0].parent, ignore_errors=True)
    finally:
        orthanc.stop()
    return results


# ---- our platform ---------------------------------------------------------------------


def platform_settings(
    data_dir: Path, base: int, landing: LandingMode, stable_after: float, gateways: int = 1
) -> Settings:
    """Every port of the stack in the `base` range, away from `make up` and the test stacks."""
    return Settings(
        data_dir=data_dir,
        dicom=DicomSettings(host=LOOPBACK, port=base + 1112, processes=gateways),
        http=HttpSettings(host=LOOPBACK, port=base + 8080),
        kafka=KafkaSettings(bootstrap_servers=f"{LOOPBACK}:{base + 9092}"),
        s3=S3Settings(endpoint=f"{LOOPBACK}:{base + 8333}"),
        temporal=TemporalSettings(address=f"{LOOPBACK}:{base + 7233}", ui_port=base + 8233),
        ingest=IngestSettings(landing=landing, stable_after_seconds=stable_after),
        # The API always wants credentials: a fresh admin password per run, to log in with.
        auth=AuthSettings(admin_password=secrets.token_urlsafe(24)),
    )


async def _start_stack(stack: LocalStack) -> None:
    await stack.start_servers()
    stack.start_apps()
    await stack.wait_ready(STACK_READY_TIMEOUT)


def landing_count(settings: Settings, client: Minio) -> int:
    if settings.ingest.landing is LandingMode.SPOOL:
        return sum(1 for _ in (settings.spool_dir / "landing").rglob("*.dcm"))
    return sum(1 for _ in client.list_objects(settings.s3.landing_bucket, recursive=True))


def archived_count(settings: Settings, client: Minio, study_uid: str) -> int:
    objects = client.list_objects(settings.s3.archive_bucket, f"{study_uid}/", recursive=True)
    return sum(1 for o in objects if not str(o.object_name).startswith("versions/"))


def wait_archived(
    settings: Settings, client: Minio, send: SendSet, timeout: float
) -> tuple[float, bool, str]:
    """Seconds until the whole study is archived and the landing area is empty."""
    start = time.perf_counter()
    deadline = start + timeout
    archived = landed = -1
    while True:
        archived = archived_count(settings, client, send.study_uid)
        landed = landing_count(settings, client)
        if archived >= len(send.sops) and landed == 0:
            return time.perf_counter() - start, True, f"{archived} archived, landing empty"
        if time.perf_counter() >= deadline:
            state = f"{archived}/{len(send.sops)} archived, {landed} still landed"
            return time.perf_counter() - start, False, state
        time.sleep(POLL_SECONDS)


def spot_check(
    settings: Settings, auth: dict[str, str], send: SendSet, count: int = 3
) -> tuple[int, int]:
    """WADO-RS GETs of a few sent instances, with the `auth` headers: (answered 200, asked)."""
    base = f"http://{settings.http.host}:{settings.http.port}/dicom-web"
    step = max(1, len(send.sops) // count)
    picks = send.sops[::step][:count]
    good = 0
    with httpx.Client(headers=auth, timeout=30) as client:
        for sop in picks:
            url = f"{base}/studies/{send.study_uid}/series/{send.series_uid}/instances/{sop}"
            response = client.get(
                url, headers={"Accept": "multipart/related; type=application/dicom"}
            )
            if response.status_code == 200:
                good += 1
            else:
                console.print(f"    [red]GET {url}: HTTP {response.status_code}[/]")
    return good, len(picks)


def bench_ours(args: argparse.Namespace, workdir: Path, landing: LandingMode) -> list[RunResult]:
    target = f"ours-{landing.value}"
    console.rule(f"our platform, landing={landing.value}")
    data_dir = workdir / target
    settings = platform_settings(
        data_dir, args.base, landing, args.stable_after, args.gateway_processes
    )
    stack = LocalStack(settings)
    results: list[RunResult] = []
    try:
        started = time.perf_counter()
        asyncio.run(_start_stack(stack))
        console.print(
            f"  stack ready in {time.perf_counter() - started:.1f}s (data dir {data_dir})"
        )
        auth = login(stack.settings)
        client = make_minio(stack.settings.s3)
        for associations in (1, 4):
            send = make_send_set(
                workdir / "data" / f"{target}-{associations}", args.images, associations
            )
            pids = {proc.name: proc.pid for proc in stack.all_processes()}
            cpu = cpu_snapshot(pids)
            result = storescu(
                settings.dicom.ae_title,
                settings.dicom.port,
                send.folders,
                send.folders[0].parent / "logs",
            )
            run = record(target, send, result, cpu_delta(cpu, cpu_snapshot(pids)))
            lag, archived, state = wait_archived(stack.settings, client, send, args.archive_timeout)
            run.archive_lag_seconds = lag
            run.archive_ok = archived
            good, asked = spot_check(stack.settings, auth, send)
            run.verified = f"{state}; WADO-RS {good}/{asked}"
            if good != asked:
                run.ok = False
            colour = "green" if archived else "red"
            console.print(
                f"    archive lag {lag:.2f}s: [{colour}]{state}[/], WADO-RS {good}/{asked}"
            )
            results.append(run)
            shutil.rmtree(send.folders[0].parent, ignore_errors=True)
            # Let the study go stable (and its follow-up work run) before the next send.
            time.sleep(settings.ingest.stable_after_seconds + 2)
    finally:
        stack.stop_all()
    return results


# ---- report ---------------------------------------------------------------------------


def print_table(results: list[RunResult]) -> None:
    baseline = {r.associations: r for r in results if r.target == "orthanc"}
    table = Table(title=f"Durable DICOM ingest, storescu, {results[0].images} CT images 512x512x16")
    for name, justify in (
        ("target", "left"),
        ("assoc", "right"),
        ("images/s", "right"),
        ("MB/s", "right"),
        ("vs Orthanc", "right"),
        ("archive lag", "right"),
        ("stores", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for run in sorted(results, key=lambda r: (r.associations, r.target != "orthanc", r.target)):
        base = baseline.get(run.associations)
        ratio = (
            f"{run.images_per_second / base.images_per_second:.2f}x"
            if base and base.images_per_second
            else "-"
        )
        lag = "-"
        if run.archive_lag_seconds is not None:
            lag = f"{run.archive_lag_seconds:.1f}s" + ("" if run.archive_ok else " (TIMEOUT)")
        table.add_row(
            run.target,
            str(run.associations),
            f"{run.images_per_second:.1f}",
            f"{run.mb_per_second:.1f}",
            ratio,
            lag,
            "ok" if run.ok else "FAILED",
        )
    console.print(table)


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def write_json(args: argparse.Namespace, results: list[RunResult], started: datetime) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    payload = {
        "started": started.isoformat(),
        "host": {
            "cpus": os.cpu_count(),
            "platform": host_platform.platform(),
            "python": sys.version.split()[0],
        },
        "tools": {
            "storescu": tool_version(["storescu", "--version"]),
            "orthanc": tool_version([shutil.which("Orthanc") or "/usr/sbin/Orthanc", "--version"]),
        },
        "parameters": {
            "images": args.images,
            "landing": args.landing,
            "base_port": args.base,
            "stable_after_seconds": args.stable_after,
            "gateway_processes": args.gateway_processes,
            "orthanc_max_pdu": args.orthanc_pdu,
            "mb": MB,
        },
        "results": [r.as_json() for r in results],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


# ---- main -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="scratch dir (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, data)")
    parser.add_argument("--landing", choices=["spool", "s3", "both"], default="both")
    parser.add_argument("--images", type=int, default=500, help="images per run (split 4 ways)")
    parser.add_argument("--base", type=int, default=16000, help="port base of our stack")
    parser.add_argument("--stable-after", type=float, default=5.0, help="study stable after (s)")
    parser.add_argument("--archive-timeout", type=float, default=600.0)
    parser.add_argument("--orthanc-dicom-port", type=int, default=16112)
    parser.add_argument("--orthanc-http-port", type=int, default=16042)
    parser.add_argument(
        "--orthanc-pdu",
        type=int,
        default=None,
        help="Orthanc MaximumPduLength (default: Orthanc's own, 16384)",
    )
    parser.add_argument("--skip-orthanc", action="store_true")
    parser.add_argument(
        "--gateway-processes", type=int, default=1, help="DIMSE gateway processes (SO_REUSEPORT)"
    )
    args = parser.parse_args(argv)
    if args.images % 4:
        parser.error("--images must be a multiple of 4")
    if args.base + 9092 >= 32768:
        parser.error("--base too high: ports must stay below 32768")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if shutil.which("storescu") is None:
        console.print("[red]storescu not found: install Debian's dcmtk (make debian-tools)[/]")
        return 2
    started = datetime.now(UTC)
    created = args.workdir is None
    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="pacs-bench-"))
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    console.print(f"work dir {workdir}")
    landings = (
        [LandingMode.SPOOL, LandingMode.S3]
        if args.landing == "both"
        else [LandingMode(args.landing)]
    )
    results: list[RunResult] = []
    failed = False
    try:
        if not args.skip_orthanc:
            results.extend(bench_orthanc(args, workdir))
        for landing in landings:
            results.extend(bench_ours(args, workdir, landing))
    except Exception as exc:
        failed = True
        console.print(f"[red]benchmark aborted: {exc!r}[/]")
        log.exception("benchmark aborted")
    finally:
        failed = failed or not results or any(not r.ok or r.archive_ok is False for r in results)
        keep = args.keep or failed
        if keep:
            console.print(f"work dir kept: {workdir}")
        elif created:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            for child in ("orthanc", "data", "ours-spool", "ours-s3"):
                shutil.rmtree(workdir / child, ignore_errors=True)
    if results:
        print_table(results)
        path = write_json(args, results, started)
        console.print(f"results written to {path.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
