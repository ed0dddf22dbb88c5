"""The Temporal worker process: runs the workflows (study ingest, MPPS, storage commitment,
de-identification) and their activities."""

from __future__ import annotations

import asyncio
import logging

from temporalio.worker import Worker

from activities.commitment import CommitmentActivities
from activities.deidentify import DeidentificationActivities
from activities.deletion import DeletionActivities
from activities.events import EventActivities
from activities.fixity import FixityActivities
from activities.migration import MigrationActivities
from activities.mpps import MppsActivities
from activities.node_health import NodeHealthActivities
from activities.prefetch import PrefetchActivities
from activities.routing import RoutingActivities
from activities.storage import StorageActivities
from activities.storage_rules import StorageRuleActivities
from activities.study_lock import LockActivities
from activities.sync import SyncActivities
from apps.landings import landings
from apps.schedules import (
    ensure_fixity_schedule,
    ensure_node_health_schedule,
    ensure_retention_schedule,
    ensure_tier_rules_schedule,
)
from infra.auth.sealing import Sealer
from infra.auth.secrets import load_or_create
from infra.auth.tokens import service_token
from infra.eventlog import EventPublisher
from infra.internal_api import InternalApi, api_base_url
from infra.metrics import serve_metrics
from infra.settings import Settings
from infra.storage.archive import ArchiveStore, make_minio
from infra.storage.tier_stores import make_tiers
from infra.study_locks import StudyLocks
from infra.temporal_client import connect_temporal, prometheus_runtime
from infra.tls.contexts import client_context, server_credentials
from ingest.wiring import start_with_retry
from workflows.deidentify import DeidentificationWorkflow
from workflows.deletion import DeletionWorkflow
from workflows.fixity import FixityWorkflow
from workflows.migration import StudyMigrationWorkflow
from workflows.mpps import MppsWorkflow
from workflows.node_health import NodeHealthWorkflow
from workflows.prefetch import PrefetchWorkflow
from workflows.rejection import RejectionWorkflow
from workflows.retention import RetentionWorkflow
from workflows.route_delivery import RouteDeliveryWorkflow
from workflows.storage_commitment import StorageCommitmentWorkflow
from workflows.storage_rules import StorageRulesWorkflow
from workflows.study_ingest import StudyIngestWorkflow
from workflows.study_lock import StudyLockWorkflow
from workflows.sync import SyncWorkflow

log = logging.getLogger(__name__)


def deidentification_key(settings: Settings) -> bytes:
    """The HMAC key of de-identification (keyed UIDs, pseudonyms, date offsets): kept like
    the token key, 0600 in the data dir, so every run maps the same original the same way."""
    if settings.auth.deidentify_key is not None:
        return settings.auth.deidentify_key.get_secret_value().encode()
    key, _ = load_or_create(settings.secrets_dir / "deidentify-key")
    return key.encode()


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    # Process metrics (and any this process defines) on the loopback; 0 = off.
    serve_metrics(settings.metrics.worker_port, settings.metrics.host)
    metrics = settings.metrics
    runtime = (
        prometheus_runtime(f"{metrics.host}:{metrics.workflow_port}")
        if metrics.workflow_port
        else None
    )
    client = await connect_temporal(settings.temporal, runtime=runtime)
    publisher = EventPublisher(settings.kafka)
    await start_with_retry(publisher)
    archive = ArchiveStore(make_minio(settings.s3), settings.s3.archive_bucket)
    tiers = make_tiers(settings, archive)
    # Buckets (or Azure containers) of tiers on other endpoints exist before any move.
    await asyncio.to_thread(tiers.ensure)
    landing_areas = landings(settings)
    activities = StorageActivities(landing_areas, tiers, publisher)
    events = EventActivities(publisher)
    catalog = InternalApi(api_base_url(settings), service_token(settings, "worker"))
    mpps = MppsActivities(catalog)
    # Reports to requesters whose port speaks TLS go with our certificate, trusting our CA.
    credentials = server_credentials(settings)
    tls = (
        client_context(credentials.ca_file, credentials.cert_file, credentials.key_file)
        if credentials is not None
        else None
    )
    commitment = CommitmentActivities(catalog, landing_areas.values(), tiers, settings.dicom, tls)
    # A client of its own for STOW-RS: large bodies, not the catalog's short reads.
    writer = InternalApi(api_base_url(settings), service_token(settings, "worker"), timeout=300)
    # One key for de-identification jobs and routing's on-the-way-out copies: the same
    # pseudonym and UIDs for a patient whichever way a copy leaves.
    deid_key = deidentification_key(settings)
    deid = DeidentificationActivities(
        catalog,
        writer,
        landing_areas.values(),
        tiers,
        deid_key,
        settings.dicom.ae_title,
    )
    sealer = Sealer.of(settings)  # opens the API keys of nodes (schemas/nodes.py)
    health = NodeHealthActivities(
        catalog, settings.dicom.ae_title, settings.federation.probe_timeout_seconds, tls, sealer
    )
    routing = RoutingActivities(
        catalog,
        landing_areas,
        tiers,
        settings.dicom.ae_title,
        deid_key,
        tls,
        sealer=sealer,
    )
    prefetch = PrefetchActivities(
        catalog,
        writer,
        settings.dicom.ae_title,
        tls,
        per_source=settings.federation.prefetch_per_source,
        sealer=sealer,
    )
    sync = SyncActivities(
        catalog,
        landing_areas.values(),
        tiers,
        settings.dicom.ae_title,
        tls,
        sealer=sealer,
        writer=writer,
    )
    deletion = DeletionActivities(
        catalog,
        tiers,
        list(landing_areas.values()),
        archive.client,
        settings.s3.metadata_bucket,
    )
    await ensure_node_health_schedule(client, settings)
    await ensure_fixity_schedule(client, settings)
    await ensure_tier_rules_schedule(client, settings)
    await ensure_retention_schedule(client, settings)
    fixity = FixityActivities(tiers)
    migration = MigrationActivities(tiers, publisher)
    storage_rules = StorageRuleActivities(catalog)
    locks = LockActivities(StudyLocks(client, settings.temporal.ingest_task_queue))
    worker = Worker(
        client,
        task_queue=settings.temporal.ingest_task_queue,
        workflows=[
            StudyIngestWorkflow,
            MppsWorkflow,
            StorageCommitmentWorkflow,
            DeidentificationWorkflow,
            NodeHealthWorkflow,
            RouteDeliveryWorkflow,
            PrefetchWorkflow,
            SyncWorkflow,
            DeletionWorkflow,
            RejectionWorkflow,
            FixityWorkflow,
            StudyMigrationWorkflow,
            StorageRulesWorkflow,
            StudyLockWorkflow,
            RetentionWorkflow,
        ],
        activities=[
            activities.archive_instances,
            activities.announce_study_stable,
            events.publish_events,
            mpps.find_worklist_item,
            mpps.check_instances,
            commitment.check_commitment,
            commitment.send_event_report,
            deid.deidentify_study,
            deid.deliver_copy,
            deid.drop_staged,
            health.nodes_to_check,
            health.probe_node,
            routing.deliver_batch,
            prefetch.find_priors,
            prefetch.local_counts,
            prefetch.pull_study,
            sync.list_studies,
            sync.push_study,
            sync.compare_studies,
            sync.settle_conflicts,
            deletion.purge_deleted,
            deletion.tombstone_rejected,
            fixity.check_fixity,
            migration.migrate_page,
            storage_rules.storage_candidates,
            storage_rules.retention_candidates,
            deletion.tombstone_scopes,
            locks.acquire_study_lock,
            locks.release_study_lock,
        ],
        max_concurrent_activities=16,
    )
    log.info("worker polling %s", settings.temporal.ingest_task_queue)
    try:
        async with worker:
            await stop.wait()
    finally:
        catalog.close()
        writer.close()
        await publisher.stop()
