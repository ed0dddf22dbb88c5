"""Soak: N concurrent associations storing for a while; nothing acknowledged may be missing.

Starts the embedded local stack (spool landing) on its own ports and data dir. N pynetdicom
SCU associations (threads of this process, loopback only) each store small CT images (64x64,
fresh UIDs, a new study every `--per-study` images, as a modality would) at a fixed pace for
the given duration. Every success is recorded. Meanwhile the RSS of our processes is sampled
every 10 s.

Afterwards, once the archive has caught up: QIDO-RS must list, per study, exactly as many
instances as were acknowledged; the archive bucket must hold every one of them; and a random
sample is read back over WADO-RS, which must carry exactly the archived object's bytes, whose
SOP Instance UID must be the one acknowledged.

    .venv/bin/python bench/soak.py [--associations 100] [--seconds 600] [--rate 0.5]

`--rate` is images per second per association. Exit status is non-zero on any store error,
a missing instance, or RSS growth of 10% or more after warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import pydicom  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402
from pynetdicom import AE  # noqa: E402
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]  # noqa: E402

from bench.association_memory import OURS, rss_mb  # noqa: E402
from bench.ingest_vs_orthanc import _start_stack, login, platform_settings  # noqa: E402
from infra.settings import LandingMode  # noqa: E402
from infra.stack import LocalStack  # noqa: E402
from infra.storage.archive import archive_key, make_minio  # noqa: E402
from infra.storage.landing import spool_files  # noqa: E402
from tests.dicom_factory import ct_series  # noqa: E402

PATIENT = "SOAK"
WARM_UP_SECONDS = 120.0
CLIENT_LOOP_DELAY = 0.02


@dataclass
class Study:
    """One study an association sent, and what the platform acknowledged of it."""

    sender: int
    uid: str = field(default_factory=generate_uid)
    series: str = field(default_factory=generate_uid)
    acked: list[str] = field(default_factory=list)


@dataclass
class Sender:
    """One association: a new study every `per_study` images, as a modality would."""

    index: int
    studies: list[Study] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def next_study(self) -> Study:
        self.studies.append(Study(self.index))
        return self.studies[-1]


def run_sender(
    sender: Sender, port: int, title: str, until: float, rate: float, per_study: int
) -> None:
    template = next(iter(ct_series(1, size=64, patient_id=PATIENT)))
    ae = AE(ae_title=f"SOAK{sender.index:03d}")
    ae.add_requested_context(CTImageStorage, template.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title=title)
    if not assoc.is_established:
        sender.errors.append("association not established")
        return
    # pynetdicom's requestor reactor looks at its socket every 1 ms: a hundred of them would
    # spend the two cores the server under test needs. Every 20 ms is plenty at this pace.
    assoc.dul._run_loop_delay = CLIENT_LOOP_DELAY
    started = time.monotonic()
    interval = 1.0 / rate
    next_at = time.monotonic() + random.random() * interval  # spread the first sends
    number = 0
    try:
        while time.monotonic() < until:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            if number % per_study == 0:
                study = sender.next_study()
                template.StudyInstanceUID = study.uid
                template.SeriesInstanceUID = study.series
            number += 1
            template.SOPInstanceUID = generate_uid()
            template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
            template.InstanceNumber = number
            status = assoc.send_c_store(template)
            code = getattr(status, "Status", None)
            if code == 0:
                study.acked.append(template.SOPInstanceUID)
            else:
                at = time.monotonic() - started
                sender.errors.append(f"C-STORE status {code!r} at {at:.0f} s of association")
                if not assoc.is_established:
                    return
    finally:
        if assoc.is_established:
            assoc.release()


def sample_rss(
    pids: dict[str, int | None], samples: list[dict[str, float]], stop: threading.Event
) -> None:
    while not stop.wait(10.0):
        samples.append({name: round(rss_mb(pids.get(name)), 1) for name in OURS})


def study_count(client: httpx.Client, study: str) -> int:
    found = client.get(
        "/dicom-web/studies",
        params={"StudyInstanceUID": study, "includefield": "NumberOfStudyRelatedInstances"},
    )
    found.raise_for_status()
    body = found.json()
    return int(body[0]["00201208"]["Value"][0]) if body else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--associations", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=0.5, help="images/s per association")
    parser.add_argument("--per-study", type=int, default=60, help="images per study")
    parser.add_argument("--base", type=int, default=16000, help="port base (below 32768)")
    parser.add_argument("--sample", type=int, default=200, help="instances read back")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pacs-soak-"))
    settings = platform_settings(workdir / "ours", args.base, LandingMode.SPOOL, 5.0)
    settings.dicom.max_associations = max(settings.dicom.max_associations, args.associations + 5)
    stack = LocalStack(settings)
    result: dict[str, Any] = {k: v for k, v in vars(args).items() if k != "workdir"}
    failed = False
    try:
        asyncio.run(_start_stack(stack))
        pids = {p.name: p.pid for p in stack.all_processes()}
        senders = [Sender(i) for i in range(args.associations)]
        samples: list[dict[str, float]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample_rss, args=(pids, samples, stop), daemon=True)
        sampler.start()
        started = time.monotonic()
        until = started + args.seconds
        threads = [
            threading.Thread(
                target=run_sender,
                args=(
                    s,
                    settings.dicom.port,
                    settings.dicom.ae_title,
                    until,
                    args.rate,
                    args.per_study,
                ),
            )
            for s in senders
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sent_for = time.monotonic() - started
        stop.set()
        studies = [study for s in senders for study in s.studies]
        acked = sum(len(study.acked) for study in studies)
        errors = [e for s in senders for e in s.errors]
        result.update(acked=acked, errors=len(errors), error_examples=errors[:5])
        result["rss_samples_every_10s"] = samples
        result["images_per_second"] = round(acked / sent_for, 1)
        print(f"{acked} acknowledged in {sent_for:.0f} s ({acked / sent_for:.1f}/s), "
              f"{len(errors)} errors {errors[:3]}")  # fmt: skip
        failed |= bool(errors)

        # RSS after warm-up: first sample past it against the highest later one.
        warm = [s for i, s in enumerate(samples) if (i + 1) * 10 >= WARM_UP_SECONDS]
        if len(warm) >= 2:
            growth = {
                name: round(100 * (max(s[name] for s in warm) / warm[0][name] - 1), 1)
                for name in OURS
                if warm[0][name]
            }
            result.update(rss_after_warmup=warm[0], rss_last=warm[-1], rss_growth_pct=growth)
            print(f"RSS after warm-up {warm[0]}, at the end {warm[-1]}; growth % {growth}")
            failed |= any(g >= 10 for g in growth.values())

        auth = login(stack.settings)
        minio = make_minio(settings.s3)
        with httpx.Client(base_url=f"http://127.0.0.1:{settings.http.port}", headers=auth,
                          timeout=60) as client:  # fmt: skip
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                listed = sum(study_count(client, study.uid) for study in studies)
                # Not Path.rglob: the archive prunes folders while it walks (Python 3.11).
                landing = list(spool_files(settings.spool_dir / "landing"))
                if listed >= acked and not landing:
                    break
                time.sleep(5)
            missing_query = [
                study.uid for study in studies if study_count(client, study.uid) < len(study.acked)
            ]
            archived = 0
            for study in studies:
                listing = minio.list_objects(
                    settings.s3.archive_bucket, f"{study.uid}/", recursive=True
                )
                archived += sum(1 for _ in listing)
            picks = random.sample(
                [(study, sop) for study in studies for sop in study.acked], min(args.sample, acked)
            )
            unreadable = 0
            for study, sop in picks:
                got = client.get(
                    f"/dicom-web/studies/{study.uid}/series/{study.series}/instances/{sop}",
                    headers={"Accept": "multipart/related; type=application/dicom"},
                )
                stored = minio.get_object(
                    settings.s3.archive_bucket, archive_key(study.uid, study.series, sop)
                ).read()
                same = got.status_code == 200 and stored in got.content
                if not same or pydicom.dcmread(BytesIO(stored)).SOPInstanceUID != sop:
                    unreadable += 1
        result.update(
            studies=len(studies),
            archived=archived,
            studies_short_in_qido=missing_query,
            read_back=len(picks),
            read_back_failed=unreadable,
        )
        print(f"archived {archived}/{acked}; studies short in QIDO: {missing_query}; "
              f"read back {len(picks)}, failed {unreadable}")  # fmt: skip
        failed |= archived < acked or bool(missing_query) or unreadable > 0
    finally:
        stack.stop_all()
        if args.workdir is None and not failed:
            shutil.rmtree(workdir, ignore_errors=True)
    result["ok"] = not failed
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"soak-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"{'OK' if not failed else 'FAILED'}; written to {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
