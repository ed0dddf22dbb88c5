"""Secrets kept in the data dir: created once, atomically, readable by the owner only."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def random_secret() -> str:
    return secrets.token_urlsafe(32)


def load_or_create(path: Path, make: Callable[[], str] = random_secret) -> tuple[str, bool]:
    """The secret in `path`, or a new one written there (mode 0600); True when new.

    Several processes may start at once on one data dir: the secret is written to a
    private temporary file and linked into place, so exactly one writer wins and every
    process reads the same complete value.
    """
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(make() + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
            created = True
        except FileExistsError:
            created = False
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_text().strip(), created
