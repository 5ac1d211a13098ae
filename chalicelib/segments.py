"""Jobs that must visit every item of a table, a scan segment at a time, on Step Functions.

The segmented state machine (infra/segmented.asl.json) runs a job over a
table: a Map state gives each of `TotalSegments` parallel scan segments to
`scan_segment`, which reads pages of its segment for as long as its Lambda has
time, then hands back whether it is done; the machine calls it again until it
is; `finish` then adds the segments' tallies up and judges them.

Where a segment stopped and what it has tallied are kept in `job-runs`
(`runs.segment_part`), written after each page on condition that no one
advanced the segment meanwhile. So a run that stops anywhere (a Lambda that
timed out, an execution aborted) resumes from its last page when the machine
is started again with the same run id, and no page is counted twice; a page
whose work was done but not recorded is done again, which every job's work
allows (it is idempotent). A finished run keeps its result: a replay answers
it, changing nothing and raising no alarm again.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import PutError

from chalicelib import clock, runs
from chalicelib.runs import JobRun
from chalicelib.transact import condition_failed

__all__ = [
    "PAGE",
    "WholeTableJob",
    "SegmentsUnfinishedError",
    "run_id",
    "machine_input",
    "start",
    "scan_segment",
    "finish",
    "combine",
]

PAGE = 100  # items a segment reads in one round trip
_SHOWN = 20  # examples a tally keeps
# A segment stops for the machine to call it again when less than this is left of its Lambda's time,
# or than three times its slowest page so far.
_MARGIN_MS = 10_000


@dataclass(frozen=True)
class WholeTableJob:
    """A job over every item of `model`'s table.

    `visit(page, context)` does the page's work and answers its tally
    (numbers, and maps of numbers, add up; lists of examples are kept to
    `_SHOWN`); `context` holds the run's `moment` and lives for one
    invocation (what every page of it shares). `judge(total, moment)` turns
    all of it into the run's result.
    """

    name: str
    model: Any
    visit: Callable[[list[Any], dict[str, Any]], dict[str, Any]]
    judge: Callable[[dict[str, Any], dt.datetime], dict[str, Any]]
    segments: int = 4
    filter: Callable[[], Any] | None = None
    consistent: bool = False


class SegmentsUnfinishedError(Exception):
    """`finish` was called before every segment was done."""


def _job(name: str) -> WholeTableJob:
    from chalicelib.usecases.whole_table_jobs import job_named

    return job_named(name)


def run_id(job: str, moment: dt.datetime) -> str:
    return f"{job}@{clock.iso(moment)}"


def machine_input(job: str, moment: dt.datetime, segments: int | None = None,
                  pages_per_call: int | None = None, run: str | None = None) -> dict[str, Any]:
    """The segmented machine's input for a run of `job` as of `moment` (`pagesPerCall`: none, or a
    bound on the pages of one task's call, below what its time allows; `run`: the run's id, when
    not the job's at that moment)."""
    total = segments or _job(job).segments
    return {"job": job, "runId": run or run_id(job, moment), "moment": clock.iso(moment),
            "totalSegments": total, "segments": list(range(total)), "pagesPerCall": pages_per_call}


def start(job: str, moment: dt.datetime, segments: int | None = None,
          pages_per_call: int | None = None) -> dict[str, Any]:
    """Start (or find) the machine's execution of `job` as of `moment`; the execution's ARN.

    The execution is named by the run: a second start of the same run finds the
    first. A run that failed is resumed by a new execution (`-resumed-<n>`).
    """
    from chalicelib.aws import stepfunctions
    from chalicelib.config import settings

    client = stepfunctions()
    machine = settings().segmented_machine_arn
    if not machine:
        raise RuntimeError("SIYU_SEGMENTED_MACHINE_ARN is not set")
    payload = machine_input(job, moment, segments, pages_per_call)
    name = f"{job}-{moment.astimezone(dt.timezone.utc):%Y%m%dT%H%M%SZ}"
    for attempt in range(10):
        execution = name if attempt == 0 else f"{name}-resumed-{attempt}"
        try:
            started = client.start_execution(stateMachineArn=machine, name=execution,
                                             input=json.dumps(payload))
            return {**_started(payload), "execution": started["executionArn"]}
        except client.exceptions.ExecutionAlreadyExists:
            arn = f"{machine.replace(':stateMachine:', ':execution:')}:{execution}"
            status = client.describe_execution(executionArn=arn)["status"]
            if status in ("RUNNING", "SUCCEEDED"):
                return {**_started(payload), "execution": arn}
    raise RuntimeError(f"{name} failed ten times: see its executions")


def _started(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"job": payload["job"], "runId": payload["runId"], "segments": payload["totalSegments"]}


# --- The tasks -------------------------------------------------------------------------------

def scan_segment(event: Mapping[str, Any], remaining_ms: Callable[[], int] | None = None) -> dict[str, Any]:
    """Read pages of one segment while there is time; `{done, pages}` for the machine's loop.

    `remaining_ms` is the Lambda context's; the event's `pagesPerCall` bounds the pages of this call.
    """
    max_pages = int(event["pagesPerCall"]) if event.get("pagesPerCall") else None
    job = _job(str(event["job"]))
    run, segment, total = str(event["runId"]), int(event["segment"]), int(event["totalSegments"])
    cursor = runs.recorded(run, runs.segment_part(segment)) or JobRun(run, runs.segment_part(segment))
    context: dict[str, Any] = {"moment": clock.parse_iso(str(event["moment"]))}
    slowest = 0.0
    read = 0
    while not cursor.done and (max_pages is None or read < max_pages):
        if remaining_ms is not None and remaining_ms() < max(_MARGIN_MS, 3 * slowest):
            break
        began = time.monotonic()
        items, next_key = _page(job, segment, total, cursor.start_key)
        tally = combine(cursor.figures(), job.visit(items, context))
        cursor = _advance(cursor, tally, next_key)
        read += 1
        slowest = max(slowest, (time.monotonic() - began) * 1000)
    return {**event, "done": bool(cursor.done), "pages": int(cursor.pages or 0)}


def _page(job: WholeTableJob, segment: int, total: int, start_key: str | None) -> tuple[list[Any], str | None]:
    data = job.model._get_connection().scan(
        filter_condition=job.filter() if job.filter else None,
        limit=PAGE,
        segment=segment,
        total_segments=total,
        exclusive_start_key=json.loads(start_key) if start_key else None,
        consistent_read=job.consistent,
    )
    items = [job.model.from_raw_data(item) for item in data.get("Items", [])]
    last = data.get("LastEvaluatedKey")
    return items, json.dumps(last, sort_keys=True) if last else None


def _advance(cursor: JobRun, tally: dict[str, Any], next_key: str | None) -> JobRun:
    """Record a page done, unless someone recorded it first; the cursor as it now is."""
    pages = int(cursor.pages or 0)
    advanced = JobRun(cursor.run_id, cursor.part, start_key=next_key, pages=pages + 1, done=next_key is None,
                      tally=json.dumps(tally, sort_keys=True, ensure_ascii=False), updated_at=clock.now(),
                      expires=clock.now() + dt.timedelta(days=runs.KEPT_DAYS))
    unchanged = JobRun.part.does_not_exist() if pages == 0 else (JobRun.pages == pages)
    try:
        advanced.save(condition=unchanged)
    except PutError as exc:
        if not condition_failed(exc):
            raise
        return runs.recorded(cursor.run_id, cursor.part) or cursor
    return advanced


def finish(event: Mapping[str, Any]) -> dict[str, Any]:
    """Add up every segment's tally and judge it; a finished run answers its result again."""
    from chalicelib.observability import logger

    run, total = str(event["runId"]), int(event["totalSegments"])
    kept = runs.recorded(run, runs.RESULT)
    if kept is not None:
        return kept.figures()
    job = _job(str(event["job"]))
    parts = {part.part: part for part in JobRun.query(run, JobRun.part.startswith("segment#"), consistent_read=True)}
    unfinished = [segment for segment in range(total)
                  if not (part := parts.get(runs.segment_part(segment))) or not part.done]
    if unfinished:
        raise SegmentsUnfinishedError(f"{run}: segments {unfinished} are not done")
    added: dict[str, Any] = {}
    for segment in range(total):
        added = combine(added, parts[runs.segment_part(segment)].figures())
    moment = clock.parse_iso(str(event["moment"]))
    result = {"job": job.name, "runId": run, "segments": total,
              "pages": sum(int(part.pages or 0) for part in parts.values()), **job.judge(added, moment)}
    result = runs.record(JobRun(run, runs.RESULT), result)
    logger().info("whole-table job finished", extra={"job": job.name, "result": result})
    return result


def combine(total: Mapping[str, Any], more: Mapping[str, Any]) -> dict[str, Any]:
    """Two tallies added up: numbers summed, maps of numbers by key, lists of examples kept short."""
    added = dict(total)
    for key, value in more.items():
        had = added.get(key)
        if isinstance(value, Mapping):
            added[key] = combine(had or {}, value)
        elif isinstance(value, list):
            added[key] = (list(had or []) + value)[:_SHOWN]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            added[key] = (had or 0) + value
        else:
            added[key] = value
    return added
