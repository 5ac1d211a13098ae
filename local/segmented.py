"""Whole-table jobs offline: wait for the segmented machine's execution, or drive its tasks in-process.

`wait` is what `/sandbox/cron/{job}` answers with for a job that runs on the
segmented state machine. `run_inline` calls the machine's two tasks as the
machine would (each segment's task until it is done, the segments side by
side, then `finish`), without Step Functions: the benchmarks time the tasks
themselves with it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib import segments

__all__ = ["wait", "run_inline"]


def wait(execution_arn: str, timeout: float = 900.0) -> dict[str, Any]:
    """The execution's output once it ends; `{status, error, cause}` if it did not succeed."""
    from chalicelib.aws import stepfunctions

    client = stepfunctions()
    deadline = time.monotonic() + timeout
    while True:
        described = client.describe_execution(executionArn=execution_arn)
        if described["status"] == "SUCCEEDED":
            return json.loads(described.get("output") or "{}")
        if described["status"] != "RUNNING":
            return {"status": described["status"], "error": described.get("error"), "cause": described.get("cause")}
        if time.monotonic() > deadline:
            return {"status": "RUNNING", "execution": execution_arn}
        time.sleep(0.2)


def run_inline(job: str, moment: dt.datetime, total_segments: int | None = None, pages_per_call: int | None = None,
               budget_ms: int | None = None, run: str | None = None) -> dict[str, Any]:
    """Run `job` as the machine does, in this process; the result, with `taskSeconds` per segment."""
    payload = segments.machine_input(job, moment, total_segments, pages_per_call, run)

    def segment(number: int) -> float:
        event: dict[str, Any] = {key: payload[key] for key in ("job", "runId", "moment", "totalSegments",
                                                                "pagesPerCall")}
        event["segment"] = number
        spent = 0.0
        while True:
            began = time.monotonic()
            deadline = began + budget_ms / 1000 if budget_ms else None
            remaining = (lambda: int((deadline - time.monotonic()) * 1000)) if deadline else None
            event = segments.scan_segment(event, remaining)
            spent += time.monotonic() - began
            if event["done"]:
                return spent

    with ThreadPoolExecutor(max_workers=payload["totalSegments"]) as pool:
        task_seconds = list(pool.map(segment, payload["segments"]))
    began = time.monotonic()
    result = segments.finish(payload)
    return {**result, "taskSeconds": task_seconds, "finishSeconds": time.monotonic() - began}
