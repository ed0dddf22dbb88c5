"""An access policy for gateway unit tests: unregistered AEs from loopback, as `make up` has it."""

from __future__ import annotations

from infra.settings import UnknownAePolicy
from ingest.dimse.access import AccessPolicy, NodeDirectory

LOOPBACK_ONLY = AccessPolicy("PACS", NodeDirectory(list), UnknownAePolicy.LOCAL)
