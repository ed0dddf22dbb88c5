"""Routing delivery: one batch of instances to one destination, over one association (or
one STOW-RS request). Any instance not answered with success fails the batch: the workflow
waits and sends it again, so what follows never overtakes it.

A rule that de-identifies sends a copy made here, on the way out, with the platform's key
(the same keyed UIDs and pseudonym a de-identification job with those options gives, so a
re-sent batch carries identical bytes); an instance that cannot be de-identified (burned-in
annotation) is refused rather than sent with its PHI."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import Mapping

from temporalio import activity

from activities.heartbeat import heartbeating
from activities.sending import send_dimse, send_stow
from infra.auth.sealing import Sealer
from infra.dicom.deidentify.keyed import DeidentificationKey
from infra.dicom.deidentify.transform import DeidentificationRefused, deidentify
from infra.internal_api import InternalApi
from infra.storage.archive import archive_key
from infra.storage.landing import Landing
from infra.storage.tiers import Tiers
from schemas.nodes import Node
from schemas.routing import BatchOutcome, DeliverBatch, Refused, RouteItem

log = logging.getLogger(__name__)


class RoutingActivities:
    def __init__(
        self,
        registry: InternalApi,
        landings: Mapping[str, Landing],
        archive: Tiers,  # every tier, hot first
        calling_ae: str,
        deidentification_key: bytes,
        tls: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        sealer: Sealer | None = None,
    ) -> None:
        self.registry = registry
        self.sealer = sealer
        self.landings = landings
        self.archive = archive
        self.deidentification_key = deidentification_key
        self.calling_ae = calling_ae
        self.tls = tls
        self.timeout = timeout

    def _bytes(self, item: RouteItem) -> bytes | None:
        """The instance as stored: from the landing area while it waits there (routing need
        not wait for the archive), else from the archive; checked against its SHA-256."""
        ref = item.instance
        data = None
        landing = self.landings.get(item.landing_mode)
        if landing is not None:
            data = landing.get(item.landing_key)
        if data is None:
            key = archive_key(ref.study_instance_uid, ref.series_instance_uid, ref.sop_instance_uid)
            data = self.archive.get(key)
        if data is None:
            raise OSError(f"{ref.sop_instance_uid} is neither landed nor archived (yet)")
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            # A later version replaced it (and is routed on its own): nothing to send here.
            log.warning("%s was replaced since it was routed: skipped", ref.sop_instance_uid)
            return None
        return data

    def _outgoing(self, item: RouteItem, data: bytes) -> bytes:
        """What goes: the stored bytes, or their de-identified copy."""
        if item.deidentify is None:
            return data
        key = DeidentificationKey(self.deidentification_key, ",".join(item.deidentify.names()))
        return deidentify(data, key, item.deidentify).part10()

    def _node(self, name: str) -> Node:
        node = next((n for n in self.registry.nodes() if n.name == name), None)
        if node is None:
            raise OSError(f"destination {name} is not a registered node")
        return node

    def _deliver(self, batch: DeliverBatch) -> BatchOutcome:
        node = self._node(batch.destination)
        outcome = BatchOutcome(stored=0)
        instances: list[tuple[RouteItem, bytes]] = []
        for item in batch.items:
            data = self._bytes(item)
            if data is None:
                outcome.skipped.append(item.instance.sop_instance_uid)
                continue
            try:
                instances.append((item, self._outgoing(item, data)))
            except DeidentificationRefused as exc:
                ref = item.instance
                outcome.refused.append(
                    Refused(
                        sop_instance_uid=ref.sop_instance_uid, sha256=ref.sha256, reason=str(exc)
                    )
                )
        if instances:
            if batch.via == "stow":
                send_stow(node, [data for _, data in instances], self.timeout, self.sealer)
            else:
                pairs = [(item.instance.sop_instance_uid, data) for item, data in instances]
                send_dimse(node, pairs, self.calling_ae, self.timeout, self.tls)
        outcome.stored = len(instances)
        return outcome

    @activity.defn
    async def deliver_batch(self, batch: DeliverBatch) -> BatchOutcome:
        """Send the batch; what was stored, skipped or refused, or fails with why none
        counted."""
        return await heartbeating(asyncio.to_thread(self._deliver, batch))
