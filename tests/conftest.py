"""Session-wide test hooks."""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # temporalio's Rust core can abort the interpreter at exit after a green run
    # (sdk-python issue 300); leave with pytest's own status instead.
    status = getattr(config, "_pacs_exitstatus", None)
    if status is not None:
        os._exit(int(status))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._pacs_exitstatus = exitstatus  # type: ignore[attr-defined]
