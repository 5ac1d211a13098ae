"""The whole-table audits as the tests run them: the segmented machine's tasks, in this process."""

from __future__ import annotations

import uuid
from typing import Any

from chalicelib import clock
from local.segmented import run_inline


def run(job: str, segments: int = 2, **options: Any) -> dict[str, Any]:
    """A fresh run of `job` as of now (its own run id, so nothing an earlier run kept answers it)."""
    return run_inline(job, clock.now(), segments, run=f"{job}@test-{uuid.uuid4().hex}", **options)


def ledger_proof() -> dict[str, Any]:
    return run("ledger-proof")


def stock_breaches() -> list[dict[str, Any]]:
    return run("stock-audit")["examples"]
