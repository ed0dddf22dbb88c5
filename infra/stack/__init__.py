"""The local platform: SeaweedFS (S3), Tansu (Kafka) and Temporal from PyPI wheels, plus our
own processes, supervised as one node.

- `processes`: one supervised child process (ManagedProcess) and the port check before it starts;
- `servers`: how each of the three servers is launched (command line, ports, S3 identities);
- `readiness`: health checks, the buckets and topic the apps need, waiting for `/health/ready`;
- `supervisor`: LocalStack, which starts and stops all of it, and `pacs up` (run_foreground);
- `env`: settings as `PACS_*` variables for the children; `errors`: StackError.

The names callers use are re-exported here, so `from infra.stack import LocalStack` works.
"""

from __future__ import annotations

from infra.stack.env import settings_to_env
from infra.stack.errors import StackError
from infra.stack.processes import ManagedProcess, ProcessStartError, port_is_free
from infra.stack.servers import SEARCH_ATTRIBUTES
from infra.stack.supervisor import APP_COMMANDS, LocalStack, run_foreground

__all__ = [
    "APP_COMMANDS",
    "SEARCH_ATTRIBUTES",
    "LocalStack",
    "ManagedProcess",
    "ProcessStartError",
    "StackError",
    "port_is_free",
    "run_foreground",
    "settings_to_env",
]
