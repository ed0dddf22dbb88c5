"""Sending stored instances to a registered node, in order: C-STORE over one association,
or one STOW-RS request. Shared by routing delivery and sync pushes. Anything not answered
with success raises OSError with the first reason, so the caller sends the lot again."""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

import httpx
from temporalio.exceptions import ApplicationError

from infra.auth.sealing import Sealer
from infra.internal_api import InternalApi
from infra.multipart import build_multipart
from infra.scu.peer import Peer
from infra.scu.store import store_files
from schemas.nodes import Node


class NotStored(OSError):
    """The node answered, and did not store (a failure status, a 4xx): sending the same
    again gets the same answer."""


def registered_node(registry: InternalApi, name: str) -> Node:
    """The node of that name; a non-retryable `UnknownNode` failure when there is none (a
    relation or rule naming a node since deleted: trying again cannot help)."""
    node = next((n for n in registry.nodes() if n.name == name), None)
    if node is None:
        raise ApplicationError(
            f"{name} is not a registered node", type="UnknownNode", non_retryable=True
        )
    return node


def node_headers(node: Node, sealer: Sealer | None) -> dict[str, str]:
    """What every DICOMweb or REST request to the node carries: its API key, when it has
    one (non-retryable when it cannot be unsealed: only entering it again helps)."""
    if not node.api_key_sealed or sealer is None:
        return {}
    try:
        return {"Authorization": f"Bearer {sealer.unseal(node.api_key_sealed)}"}
    except ValueError as exc:
        raise ApplicationError(
            f"the API key of node {node.name} cannot be opened: {exc}", non_retryable=True
        ) from exc


def send_dimse(
    node: Node,
    instances: list[tuple[str, bytes]],
    calling_ae: str,
    timeout: float,
    tls: ssl.SSLContext | None,
) -> None:
    """(SOP Instance UID, Part 10 bytes) pairs, in this order, over one association."""
    peer = Peer.of_node(node, calling_ae, timeout, tls)
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for index, (sop, data) in enumerate(instances):
            # Numbered: store_files keeps the order of the paths it is given.
            path = Path(folder) / f"{index:06d}-{sop}.dcm"
            path.write_bytes(data)
            files.append(path)
        results = store_files(peer, files, 1, lambda _: None)
    failed = [r for r in results if not r.ok]
    if failed or len(results) != len(files):
        first = failed[0] if failed else None
        why = f"{first.sop_instance_uid}: {first.reason or first.status}" if first else "?"
        raise NotStored(f"{len(failed)} of {len(files)} not stored at {node.name} ({why})")


def send_stow(
    node: Node, instances: list[bytes], timeout: float, sealer: Sealer | None = None
) -> None:
    """One STOW-RS request to the node's dicomweb_url."""
    if not node.dicomweb_url:
        raise OSError(f"{node.name} has no dicomweb_url")
    body, boundary = build_multipart(("application/dicom", data) for data in instances)
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    response = httpx.post(
        f"{node.dicomweb_url.rstrip('/')}/studies",
        content=body,
        headers={
            "Content-Type": content_type,
            "Accept": "application/dicom+json",
            **node_headers(node, sealer),
        },
        timeout=max(timeout, 120.0),
    )
    if response.status_code != 200:
        why = f"STOW-RS to {node.name} answered HTTP {response.status_code}: {response.text[:200]}"
        raise NotStored(why) if 400 <= response.status_code < 500 else OSError(why)
