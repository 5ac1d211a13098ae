"""What a job has done, kept so that a run that stops resumes and a replay changes nothing.

One table, `job-runs`: a run (`run_id`, e.g. `ledger-proof@2026-12-06T03:30:00+08:00`)
has a part per segment of a whole-table scan (`segment#0003`: where it stopped
and what it has tallied so far) and a `result` once it finished; a once-a-month
step has its `queued` part. Parts expire after `KEPT_DAYS`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pynamodb.attributes import BooleanAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import clock
from chalicelib.db import SiyuModel
from chalicelib.transact import condition_failed

__all__ = ["KEPT_DAYS", "QUEUED", "RESULT", "JobRun", "record", "recorded", "segment_part"]

KEPT_DAYS = 90
QUEUED = "queued"
RESULT = "result"


def segment_part(segment: int) -> str:
    return f"segment#{segment:04d}"


class JobRun(SiyuModel):
    """One part of a job's run: a segment's cursor and tally, a step done, or the run's result."""

    class Meta:
        table = "job-runs"

    run_id = UnicodeAttribute(hash_key=True)
    part = UnicodeAttribute(range_key=True)
    start_key = UnicodeAttribute(null=True)  # a segment's LastEvaluatedKey, JSON; absent: from the start
    pages = NumberAttribute(default=0)  # a segment's pages done: the condition of its next write
    done = BooleanAttribute(default=False)
    tally = UnicodeAttribute(null=True)  # JSON: a segment's tally so far, a step's or the run's result
    updated_at = UTCDateTimeAttribute(null=True)
    expires = TTLAttribute(null=True)

    def figures(self) -> dict[str, Any]:
        return json.loads(self.tally) if self.tally else {}


def recorded(run_id: str, part: str) -> JobRun | None:
    try:
        return JobRun.get(run_id, part, consistent_read=True)
    except DoesNotExist:
        return None


def record(run: JobRun, figures: dict[str, Any]) -> dict[str, Any]:
    """Write the part once; the figures it holds (a second writer gets the first one's)."""
    now = clock.now()
    run.tally = json.dumps(figures, sort_keys=True, ensure_ascii=False)
    run.done = True
    run.updated_at = now
    run.expires = now + dt.timedelta(days=KEPT_DAYS)
    try:
        run.save(condition=JobRun.part.does_not_exist())
    except PutError as exc:
        first = recorded(run.run_id, run.part) if condition_failed(exc) else None
        if first is None:
            raise
        return first.figures()
    return figures
