"""Query and metadata latency: our platform against Orthanc, same client, same data, one run.

1. Generates N synthetic CT instances (studies of 4 series x 50, two studies per patient)
   plus one 500-instance series, as real Part-10 files (tiny pixels: this is about the
   index, not the bytes), and stores them into our platform and into Orthanc (Debian
   package with its DICOMweb plugin) with DCMTK `storescu` over 4 associations.
   Each system is measured once it is quiet (our platform: every process together under 15%
   of a core; right after a bulk load SeaweedFS compacts volumes for a minute or more).
2. For 200 random PatientIDs: C-FIND study level (one pynetdicom association per target,
   reused) and QIDO-RS `/studies?PatientID=` (one keep-alive HTTP client per target), each
   after an untimed warm-up (20 C-FINDs; one QIDO and one metadata request).
3. WADO-RS `/metadata` of the 500-instance series, 20 times per target.
4. Ingest -> queryable lag on our platform: 200 instances sent one at a time; after each
   C-STORE ack, QIDO `/instances?SOPInstanceUID=` is polled every 10 ms until it answers.
5. With --million: a fresh catalog of 1,000,000 instances built from synthetic events by
   the real projector (CatalogProjection.apply, in this process), then our platform started
   on it and steps 2-3 repeated (ours only: loading 1M instances into Orthanc over DIMSE
   would take 1-2 hours on this machine).

    .venv/bin/python bench/query_vs_orthanc.py [--instances 10000] [--million]

Results are printed and written to `bench/results/query-<timestamp>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402
from pynetdicom import AE, evt  # noqa: E402
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # noqa: E402
    StudyRootQueryRetrieveInformationModelFind,
)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from infra.clickhouse import ClickHouse  # noqa: E402
from infra.dimse.nodelay import set_nodelay  # noqa: E402
from infra.readmodels.base import LogRecord  # noqa: E402
from infra.readmodels.catalog.projection import CatalogProjection  # noqa: E402
from infra.settings import (  # noqa: E402
    AuthSettings,
    DicomSettings,
    HttpSettings,
    KafkaSettings,
    S3Settings,
    Settings,
    TemporalSettings,
)
from infra.stack import LocalStack  # noqa: E402
from schemas.events import InstanceReceived  # noqa: E402
from tests.dicom_factory import ct_series  # noqa: E402
from tests.integration.dimse_client import send_all  # noqa: E402
from tests.login import login_admin as login  # noqa: E402
from tests.orthanc import Orthanc  # noqa: E402
from tests.synthetic import part10_from_event, synthetic_events  # noqa: E402

console = Console()
RESULTS_DIR = Path(__file__).resolve().parent / "results"
LOOPBACK = "127.0.0.1"
# A partition no real topic has: synthetic positions never hide real events.
SYNTHETIC_PARTITION = 1000
BIG_SERIES = 500


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def settings_for(data_dir: Path, base: int) -> Settings:
    return Settings(
        data_dir=data_dir,
        dicom=DicomSettings(host=LOOPBACK, port=base + 1112),
        http=HttpSettings(host=LOOPBACK, port=base + 8080),
        kafka=KafkaSettings(bootstrap_servers=f"{LOOPBACK}:{base + 9092}"),
        s3=S3Settings(endpoint=f"{LOOPBACK}:{base + 8333}"),
        temporal=TemporalSettings(address=f"{LOOPBACK}:{base + 7233}", ui_port=base + 8233),
        # The API always wants credentials: a fresh admin password per run, to log in with.
        auth=AuthSettings(admin_password=secrets.token_urlsafe(24)),
    )


async def start_stack(settings: Settings) -> LocalStack:
    stack = LocalStack(settings)
    try:
        await stack.start_servers()
        stack.start_apps()
        await stack.wait_ready(180)
    except BaseException:
        stack.stop_all()  # no orphans holding the ports for the next run
        raise
    return stack


# ---- data ---------------------------------------------------------------------------


def dataset_events(instances: int) -> tuple[list[InstanceReceived], list[InstanceReceived]]:
    """The searchable population, and one 500-instance series of its own patient."""
    population = list(synthetic_events(instances, seed=1, patient_prefix="SYN"))
    big = list(
        synthetic_events(
            BIG_SERIES, per_series=BIG_SERIES, series_per_study=1, seed=2, patient_prefix="BIG"
        )
    )
    return population, big


def write_files(events: Iterable[InstanceReceived], root: Path, folders: int = 4) -> list[Path]:
    dirs = [root / f"part{i}" for i in range(folders)]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    for index, event in enumerate(events):
        target = dirs[index % folders] / f"{event.instance.sop_instance_uid}.dcm"
        target.write_bytes(part10_from_event(event))
    return dirs


def storescu(aet: str, port: int, folders: list[Path]) -> None:
    """Send every folder on its own association, all at once; fail loudly on any error."""
    procs = [
        subprocess.Popen(
            ["storescu", "-aec", aet, "+sd", "-nh", LOOPBACK, str(port), str(folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"},
        )
        for folder in folders
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"storescu failed: {err.decode()[-500:]}")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(1)


def our_instance_count(http: str, auth: dict[str, str], prefix: str) -> int:
    response = httpx.get(
        f"{http}/dicom-web/studies",
        headers=auth,
        params={"PatientID": f"{prefix}*", "limit": 100_000,
                "includefield": "NumberOfStudyRelatedInstances"},
        timeout=120,
    )  # fmt: skip
    return sum(s["00201208"]["Value"][0] for s in response.json())


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wait_quiet(stack: LocalStack, timeout: float = 300, busy: float = 0.15) -> float:
    """Wait until the platform's processes together use under `busy` of a core, as Orthanc
    does once it has stored: after a bulk load SeaweedFS compacts volumes and the workers
    finish stable-study workflows for a minute or more. Returns the seconds waited."""
    pids = [p.pid for p in stack.all_processes() if p.pid is not None]
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        before = cpu_seconds(pids)
        time.sleep(5)
        if (cpu_seconds(pids) - before) / 5 < busy:
            break
    return time.monotonic() - start


def landing_empty(settings: Settings) -> bool:
    return not any((settings.spool_dir / "landing").rglob("*.dcm"))


# ---- measurements -------------------------------------------------------------------


WARMUP_QUERIES = 20


def time_cfind(host: str, port: int, aet: str, patients: list[str]) -> list[float]:
    ae = AE(ae_title="BENCHSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    # TCP_NODELAY on the client too: otherwise every response waits for a delayed ACK.
    assoc = ae.associate(host, port, ae_title=aet, evt_handlers=[(evt.EVT_CONN_OPEN, set_nodelay)])
    if not assoc.is_established:
        raise RuntimeError(f"C-FIND association to {aet} refused")
    samples = []
    try:
        # Untimed warm-up, as for HTTP: first-use costs of the association, the connection
        # pool behind it and cold caches are not what a long-running PACS answers with.
        for index, patient in enumerate([*patients[:WARMUP_QUERIES], *patients]):
            query = Dataset()
            query.QueryRetrieveLevel = "STUDY"
            query.PatientID = patient
            query.StudyInstanceUID = ""
            query.StudyDate = ""
            query.PatientName = ""
            query.ModalitiesInStudy = ""
            query.NumberOfStudyRelatedInstances = ""
            start = time.perf_counter()
            found = 0
            for status, identifier in assoc.send_c_find(
                query, StudyRootQueryRetrieveInformationModelFind
            ):
                if identifier is not None and status.Status == 0xFF00:
                    found += 1
            if index >= WARMUP_QUERIES:
                samples.append(time.perf_counter() - start)
            if found == 0:
                raise RuntimeError(f"C-FIND for {patient} on {aet} found nothing")
    finally:
        assoc.release()
    return samples


def time_http(client: httpx.Client, urls: list[str], expect_rows: bool = True) -> list[float]:
    samples = []
    for url in urls:
        start = time.perf_counter()
        response = client.get(url, headers={"Accept": "application/dicom+json"})
        body = response.content
        samples.append(time.perf_counter() - start)
        if response.status_code != 200 or (expect_rows and len(body) < 10):
            raise RuntimeError(f"GET {url}: HTTP {response.status_code} {body[:200]!r}")
    return samples


def queries(
    label: str, http_root: str, dicom: tuple[str, int, str], patients: list[str],
    big: InstanceReceived, rounds: int, auth: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    host, port, aet = dicom
    ref = big.instance
    metadata_url = (
        f"{http_root}/studies/{ref.study_instance_uid}/series/{ref.series_instance_uid}/metadata"
    )
    with httpx.Client(headers=auth or {}, timeout=120) as client:
        # Warm both paths once (connections, caches) before timing.
        time_http(client, [f"{http_root}/studies?PatientID={patients[0]}", metadata_url])
        qido = time_http(client, [f"{http_root}/studies?PatientID={p}" for p in patients])
        metadata = time_http(client, [metadata_url] * rounds)
        size = len(client.get(metadata_url).content)
    cfind = time_cfind(host, port, aet, patients)
    result = {
        "cfind_study_by_patient": summary(cfind),
        "qido_studies_by_patient": summary(qido),
        "series_metadata_500": {**summary(metadata), "bytes": size},
    }
    console.print(f"  {label}: {json.dumps(result)}")
    return result


def ingest_lag(settings: Settings, auth: dict[str, str], count: int) -> dict[str, float]:
    """Ack -> visible in QIDO, per instance, sent one at a time."""
    http = f"http://{settings.http.host}:{settings.http.port}"
    samples = []
    with httpx.Client(headers=auth, timeout=30) as client:
        for ds in ct_series(count, size=16, patient_id="LAG-PATIENT"):
            acked_at: list[float] = []
            failures = send_all(
                (settings.dicom.host, settings.dicom.port), [ds], [], threading.Lock()
            )
            acked_at.append(time.perf_counter())
            if failures:
                raise RuntimeError(f"C-STORE failed: {failures}")
            url = f"{http}/dicom-web/instances?SOPInstanceUID={ds.SOPInstanceUID}"
            while True:
                rows = client.get(url).json()
                if rows:
                    samples.append(time.perf_counter() - acked_at[0])
                    break
                if time.perf_counter() - acked_at[0] > 30:
                    raise RuntimeError("instance not queryable within 30 s")
                time.sleep(0.01)
    return summary(samples)


# ---- the 1M catalog -----------------------------------------------------------------


@dataclass
class BuiltCatalog:
    seconds: float
    patients: list[str]  # every patient of the searchable population, sorted
    big: InstanceReceived  # the first instance of the 500-instance series
    peak_rss_mb: float  # this process's high-water mark (VmHWM) after the build


def build_million(data_dir: Path, total: int) -> BuiltCatalog:
    """Project `total` synthetic events straight into a fresh catalog, streaming them: only
    one batch of events is ever held, so memory stays bounded whatever `total` is (the
    10M build once ran out of 24 GB holding every event in a list)."""
    clickhouse = ClickHouse(f"chdb://{(data_dir / 'clickhouse').resolve()}")
    projection = CatalogProjection(clickhouse)
    projection.ensure_tables()
    start = time.perf_counter()
    population = synthetic_events(total - BIG_SERIES, seed=1, patient_prefix="SYN")
    big = synthetic_events(
        BIG_SERIES, per_series=BIG_SERIES, series_per_study=1, seed=2, patient_prefix="BIG"
    )
    patients: set[str] = set()
    first_big: InstanceReceived | None = None
    batch: list[LogRecord] = []
    for offset, event in enumerate(itertools.chain(population, big), start=1):
        if event.patient_id.startswith("SYN"):
            patients.add(event.patient_id)
        elif first_big is None:
            first_big = event
        batch.append(LogRecord(SYNTHETIC_PARTITION, offset - 1, event, b""))
        if len(batch) == 10_000:
            projection.apply(batch)
            batch = []
            if offset % 100_000 == 0:
                console.print(
                    f"  projected {offset:,} events ({time.perf_counter() - start:.0f} s, "
                    f"peak RSS {peak_rss_mb():.0f} MB)"
                )
    projection.apply(batch)
    elapsed = time.perf_counter() - start
    clickhouse.close()
    assert first_big is not None
    return BuiltCatalog(elapsed, sorted(patients), first_big, peak_rss_mb())


def existing_catalog(data_dir: Path, total: int) -> BuiltCatalog | None:
    """A catalog an earlier run built in `data_dir` with `total` instances (--reuse-large),
    to measure it again without the build; None when there is none of that size."""
    if not (data_dir / "clickhouse").exists():
        return None
    clickhouse = ClickHouse(f"chdb://{(data_dir / 'clickhouse').resolve()}")
    try:
        count = clickhouse.rows("SELECT count() FROM instances")[0][0]
        patients = clickhouse.rows(
            "SELECT patient_id FROM patients FINAL WHERE startsWith(patient_id, 'SYN')"
            " ORDER BY patient_id"
        )
    finally:
        clickhouse.close()
    if int(count) != total:
        return None
    # The big series is synthetic with a fixed seed: the same UIDs as at the build.
    big = next(
        synthetic_events(
            BIG_SERIES, per_series=BIG_SERIES, series_per_study=1, seed=2, patient_prefix="BIG"
        )
    )
    return BuiltCatalog(0.0, [str(p) for (p,) in patients], big, peak_rss_mb())


def peak_rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


# ---- main ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--metadata-rounds", type=int, default=20)
    parser.add_argument("--lag-instances", type=int, default=200)
    parser.add_argument("--million", action="store_true", help="also measure at 1,000,000")
    parser.add_argument("--million-size", type=int, default=1_000_000)
    parser.add_argument("--skip-orthanc", action="store_true")
    parser.add_argument(
        "--skip-small", action="store_true", help="only the large catalog (needs --million)"
    )
    parser.add_argument(
        "--reuse-large",
        action="store_true",
        help="measure the large catalog an earlier run left in --workdir, without rebuilding",
    )
    parser.add_argument("--base", type=int, default=16000, help="port base of our stack")
    parser.add_argument("--orthanc-dicom-port", type=int, default=16104)
    parser.add_argument("--orthanc-http-port", type=int, default=16042)
    parser.add_argument("--workdir", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pacs-query-bench-"))
    console.print(f"work dir {workdir}")
    started = datetime.now(UTC)
    results: dict[str, Any] = {"instances": args.instances, "queries": args.queries}
    rng = random.Random(7)

    if not args.skip_small:
        measure_small(args, workdir, results, rng)
    if args.million:
        measure_large(args, workdir, results, rng)

    print_table(results)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"query-{started:%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps({"started": started.isoformat(), **results}, indent=2))
    console.print(f"results written to {path.relative_to(ROOT)}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def measure_small(
    args: argparse.Namespace, workdir: Path, results: dict[str, Any], rng: random.Random
) -> None:
    """The 10k catalog stored over DIMSE into our platform and into Orthanc, then queried."""
    console.rule(f"data: {args.instances:,} instances + a {BIG_SERIES}-instance series")
    population, big = dataset_events(args.instances)
    folders = write_files([*population, *big], workdir / "files")
    patients = rng.choices(sorted({e.patient_id for e in population}), k=args.queries)

    settings = settings_for(workdir / "ours", args.base)
    http = f"http://{LOOPBACK}:{settings.http.port}"
    stack = asyncio.run(start_stack(settings))
    try:
        console.rule("our platform")
        auth = login(settings)
        start = time.perf_counter()
        storescu(settings.dicom.ae_title, settings.dicom.port, folders)
        stored_at = time.perf_counter()
        wait_until(
            lambda: our_instance_count(http, auth, "SYN") == args.instances, 600, "SYN in catalog"
        )
        wait_until(
            lambda: our_instance_count(http, auth, "BIG") == BIG_SERIES, 600, "BIG in catalog"
        )
        console.print(
            f"  stored in {stored_at - start:.0f} s, all queryable "
            f"{time.perf_counter() - stored_at:.1f} s after the last ack"
        )
        # Measure queries on a quiet platform, as Orthanc is measured: the archive workflows
        # copying 10k instances to the object store would otherwise share the two cores.
        wait_until(lambda: landing_empty(settings), 1200, "archive caught up")
        console.print(f"  platform quiet after another {wait_quiet(stack):.0f} s")
        dicom = (LOOPBACK, settings.dicom.port, settings.dicom.ae_title)
        auth = login(settings)
        results["ours_10k"] = queries(
            "ours", f"{http}/dicom-web", dicom, patients, big[0], args.metadata_rounds, auth
        )
        results["ingest_to_queryable"] = ingest_lag(settings, login(settings), args.lag_instances)
        console.print(f"  ingest->queryable: {results['ingest_to_queryable']}")
    finally:
        stack.stop_all()

    if not args.skip_orthanc:
        console.rule("Orthanc")
        orthanc = Orthanc(workdir, args.orthanc_dicom_port, args.orthanc_http_port, dicomweb=True)
        try:
            console.print(f"  Orthanc {orthanc.start()}")
            storescu(orthanc.aet, orthanc.dicom_port, folders)
            total = args.instances + BIG_SERIES
            wait_until(lambda: orthanc.instance_count() == total, 600, "Orthanc count")
            dicom = (LOOPBACK, orthanc.dicom_port, orthanc.aet)
            results["orthanc_10k"] = queries(
                "orthanc", f"{orthanc.url}/dicom-web", dicom, patients, big[0],
                args.metadata_rounds,
            )  # fmt: skip
        finally:
            orthanc.stop()


def measure_large(
    args: argparse.Namespace, workdir: Path, results: dict[str, Any], rng: random.Random
) -> None:
    """A catalog of --million-size instances built straight from synthetic events, then the
    same queries, and the memory the platform holds while it serves that catalog."""
    console.rule(f"our platform at {args.million_size:,} instances")
    million = settings_for(workdir / "million", args.base)
    reused = existing_catalog(million.data_dir, args.million_size) if args.reuse_large else None
    built = reused or build_million(million.data_dir, args.million_size)
    results["million_reused"] = reused is not None
    results["million_size"] = args.million_size
    results["million_build_seconds"] = round(built.seconds, 1)
    results["million_build_peak_rss_mb"] = round(built.peak_rss_mb, 1)
    results["million_catalog_disk_mb"] = round(disk_mb(million.data_dir / "clickhouse"), 1)
    console.print(
        f"  catalog built in {built.seconds:.0f} s, peak RSS {built.peak_rss_mb:.0f} MB, "
        f"{results['million_catalog_disk_mb']:.0f} MB on disk"
    )
    mpatients = rng.choices(built.patients, k=args.queries)
    stack = asyncio.run(start_stack(million))
    try:
        wait_quiet(stack)
        results["million_idle_rss_mb"] = stack_rss(stack)
        mhttp = f"http://{LOOPBACK}:{million.http.port}"
        dicom = (LOOPBACK, million.dicom.port, million.dicom.ae_title)
        results["ours_1m"] = queries(
            "ours 1M", f"{mhttp}/dicom-web", dicom, mpatients, built.big, args.metadata_rounds,
            login(million),
        )  # fmt: skip
        results["million_serving_rss_mb"] = stack_rss(stack)
        console.print(f"  RSS (MB) idle {results['million_idle_rss_mb']}")
        console.print(f"  RSS (MB) after the queries {results['million_serving_rss_mb']}")
    finally:
        stack.stop_all()


def stack_rss(stack: LocalStack) -> dict[str, float]:
    """Resident memory of each process of the stack, MB (VmRSS, and VmHWM as `<name>_peak`)."""
    out: dict[str, float] = {}
    for process in stack.all_processes():
        if process.pid is None:
            continue
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
        except OSError:
            continue
        for field_name, suffix in (("VmRSS:", ""), ("VmHWM:", "_peak")):
            kb = int(status.split(field_name)[1].split()[0])
            out[process.name + suffix] = round(kb / 1024, 1)
    return out


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def print_table(results: dict[str, Any]) -> None:
    table = Table(title="query latency (ms)")
    table.add_column("measure")
    for name in ("ours_10k", "orthanc_10k", "ours_1m"):
        if name in results:
            table.add_column(f"{name} P50", justify="right")
            table.add_column(f"{name} P95", justify="right")
    for measure in ("cfind_study_by_patient", "qido_studies_by_patient", "series_metadata_500"):
        row = [measure]
        for name in ("ours_10k", "orthanc_10k", "ours_1m"):
            if name in results:
                row += [
                    str(results[name][measure]["p50_ms"]),
                    str(results[name][measure]["p95_ms"]),
                ]
        table.add_row(*row)
    console.print(table)
    if "ingest_to_queryable" in results:
        console.print(f"ingest -> queryable: {results['ingest_to_queryable']}")


if __name__ == "__main__":
    sys.exit(main())
