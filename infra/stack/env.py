"""Settings as child processes receive them: `PACS_*` environment variables, and the
`host:port` addresses the stack reads its servers' ports from."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, SecretStr, TypeAdapter

from infra.settings import Settings


def split_host_port(address: str, default_port: int) -> tuple[str, int]:
    """`host:port` (optionally with a URL scheme) into its parts."""
    if "://" in address:
        address = address.split("://", 1)[1]
    address = address.rstrip("/")
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, default_port
    return host, int(port)


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The `PACS_*` variables that make a child process build exactly these settings."""
    env: dict[str, str] = {}

    def flatten(prefix: str, model: BaseModel) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            key = f"{prefix}__{name.upper()}" if prefix else f"PACS_{name.upper()}"
            if isinstance(value, BaseModel):
                flatten(key, value)
            elif isinstance(value, dict | list):
                # Maps go as JSON: env names are case-folded, and map keys such as AE
                # titles are case-sensitive.
                env[key] = json.dumps(TypeAdapter(Any).dump_python(value, mode="json"))
            elif isinstance(value, SecretStr):
                # Serialised, a secret is masked ('**********'): the child needs the value.
                env[key] = value.get_secret_value()
            elif isinstance(value, bool):
                env[key] = "true" if value else "false"
            elif value is not None:
                env[key] = str(TypeAdapter(Any).dump_python(value, mode="json"))

    flatten("", settings)
    return env
