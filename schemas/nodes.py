"""DICOM nodes: the remote AEs the platform knows, and what each may do here."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, SecretStr, field_validator

DimseService = Literal["echo", "store", "find", "move", "get", "worklist", "mpps", "commitment"]
ALL_SERVICES: tuple[DimseService, ...] = (
    "echo", "store", "find", "move", "get", "worklist", "mpps", "commitment",
)  # fmt: skip
NODE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def distinct_node_names(values: list[str]) -> list[str]:
    """A list of node names (a rule's destinations or sources), each once."""
    for value in values:
        if not re.fullmatch(NODE_NAME_PATTERN, value):
            raise ValueError(f"{value!r} is not a node name")
    if len(set(values)) != len(values):
        raise ValueError("a node is listed twice")
    return values


NodeNames = Annotated[list[str], AfterValidator(distinct_node_names)]


class SavedVersion(BaseModel):
    """What every saved, versioned document (routing and prefetch rules, sync relations)
    has: its name, its version (1, then one more at each change), who saved it and when."""

    name: str = Field(pattern=NODE_NAME_PATTERN)
    version: int = Field(ge=1)
    saved_at: datetime | None = None
    saved_by: str = ""


class NodeBody(BaseModel):
    """A remote AE: where to reach it, and (as a service user of ours) what it may use."""

    ae_title: str = Field(min_length=1, max_length=16, pattern=r"^[^\\]*[^ \\][^\\]*$")
    host: str
    port: int = Field(ge=1, le=65535)
    # Its `port` speaks TLS (we connect with TLS), and it must call us over TLS with a
    # client certificate whose Common Name is its AE title.
    tls: bool = False
    dicomweb_url: str | None = None
    # The DIMSE services it may ask of us.
    services: list[DimseService] = Field(default_factory=lambda: list(ALL_SERVICES))
    # Addresses or networks (CIDR) it may connect from; empty = from anywhere.
    addresses: list[str] = Field(default_factory=list)
    # AE titles it may name as C-MOVE destination ("*" = any registered node).
    move_destinations: list[str] = Field(default_factory=list)
    # Probed by the health schedule (C-ECHO, and QIDO when it has a DICOMweb URL). Off for
    # a node with no SCP of its own to answer (a modality that only sends).
    health_check: bool = True
    # A key to act as a user of that node (another instance of this platform, or any
    # DICOMweb server taking Bearer tokens), sent as `Authorization: Bearer` with every
    # DICOMweb and REST request to it. Kept sealed (infra/auth/sealing.py): the log, the
    # read models and this API hold only ciphertext.
    api_key_sealed: str = ""

    @field_validator("ae_title")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("addresses")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value, strict=False)  # ValueError names the bad one
        return values

    def connects_from(self, address: str) -> bool:
        if not self.addresses:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(n, strict=False) for n in self.addresses)

    def may_move_to(self, ae_title: str) -> bool:
        return "*" in self.move_destinations or ae_title.strip() in self.move_destinations


class NodeInput(NodeBody):
    """What PUT /api/nodes/{name} takes: a node, and optionally its API key in clear, which
    is sealed before it is kept. Left out, the key kept before stays; "" removes it."""

    api_key: SecretStr | None = None


class Node(NodeBody):
    """A registered node: its name (how the admin API and rules refer to it) and the rest."""

    name: str = Field(pattern=NODE_NAME_PATTERN)


# ---- health -------------------------------------------------------------------------------

HealthStatus = Literal["up", "degraded", "down"]
ProbeKind = Literal["c-echo", "qido"]


class NodeProbe(BaseModel):
    """One check of one way to reach a node."""

    kind: ProbeKind
    ok: bool
    rtt_ms: float | None = None  # the round trip when it answered
    error: str = ""


def health_status(probes: list[NodeProbe]) -> HealthStatus:
    """Up when every way to reach it answers, down when none does, degraded in between."""
    answered = sum(p.ok for p in probes)
    if probes and answered == len(probes):
        return "up"
    return "down" if answered == 0 else "degraded"


class NodeHealth(BaseModel):
    """A node's state as the last checks found it (the node read model keeps it)."""

    status: HealthStatus
    since: datetime  # when it entered this status (as far as the checks saw)
    checked_at: datetime
    last_success: datetime | None = None  # the last check at which some probe answered
    rtt_ms: float | None = None  # the C-ECHO round trip (or QIDO's) of the last check
    probes: list[NodeProbe] = Field(default_factory=list)


class NodeView(Node):
    """GET /api/nodes: the registered node and, once checked, its health."""

    health: NodeHealth | None = None


class NodeStatusChange(BaseModel):
    """One row of a node's status history."""

    name: str
    status: HealthStatus
    previous: HealthStatus | None
    at: datetime
    reason: str = ""
