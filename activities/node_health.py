"""Node health activities: which nodes to check, and one check of one node."""

from __future__ import annotations

import asyncio
import ssl
import time

import httpx
from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.sending import node_headers
from infra.auth.sealing import Sealer
from infra.internal_api import InternalApi
from infra.scu.echo import echo
from infra.scu.peer import Peer, ScuError
from schemas.nodes import HealthStatus, Node, NodeProbe


class NodeRound(BaseModel):
    """The nodes a round checks, and the status each had at the last round."""

    nodes: list[Node]
    previous: dict[str, HealthStatus]


class NodeHealthActivities:
    """Built once per worker. A probe that fails is a result (the node is down), not an
    activity failure: only reaching our own API can fail and be retried."""

    def __init__(
        self,
        registry: InternalApi,
        calling_ae: str,
        timeout: float,
        tls: ssl.SSLContext | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        self.registry = registry
        self.sealer = sealer
        self.calling_ae = calling_ae
        self.timeout = timeout
        self.tls = tls

    @activity.defn
    async def nodes_to_check(self) -> NodeRound:
        nodes, previous = await asyncio.gather(
            asyncio.to_thread(self.registry.nodes),
            asyncio.to_thread(self.registry.node_statuses),
        )
        return NodeRound(nodes=[n for n in nodes if n.health_check], previous=previous)

    @activity.defn
    async def probe_node(self, node: Node) -> list[NodeProbe]:
        """C-ECHO, and a QIDO request when the node has a DICOMweb URL."""
        probes = [await asyncio.to_thread(self._echo, node)]
        if node.dicomweb_url:
            probes.append(await self._qido(node, node.dicomweb_url))
        return probes

    def _echo(self, node: Node) -> NodeProbe:
        if node.tls and self.tls is None:
            return NodeProbe(kind="c-echo", ok=False, error="node wants TLS; we have no TLS")
        peer = Peer.of_node(node, self.calling_ae, self.timeout, self.tls)
        try:
            seconds = echo(peer)
        except ScuError as exc:
            return NodeProbe(kind="c-echo", ok=False, error=str(exc))
        return NodeProbe(kind="c-echo", ok=True, rtt_ms=round(seconds * 1000, 2))

    async def _qido(self, node: Node, url: str) -> NodeProbe:
        started = time.perf_counter()
        try:
            credentials = node_headers(node, self.sealer)
        except ApplicationError as exc:
            return NodeProbe(kind="qido", ok=False, error=str(exc))
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.get(
                    f"{url.rstrip('/')}/studies",
                    params={"limit": "1"},
                    headers={"Accept": "application/dicom+json", **credentials},
                )
        except httpx.HTTPError as exc:
            return NodeProbe(kind="qido", ok=False, error=f"{type(exc).__name__}: {exc}")
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        if response.status_code in (200, 204):
            return NodeProbe(kind="qido", ok=True, rtt_ms=elapsed)
        return NodeProbe(
            kind="qido", ok=False, error=f"QIDO-RS answered HTTP {response.status_code}"
        )
