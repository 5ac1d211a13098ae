"""Counting DynamoDB round trips with the botocore hook in chalicelib.db."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import bench
from chalicelib import db

__all__ = ["round_trips", "table", "live_members"]


def round_trips(action: Callable[[], Any]) -> tuple[int, list[str]]:
    """How many HTTP requests to DynamoDB `action` made, and their operations."""
    with db.recording() as log:
        action()
    return len(log), [request.operation for request in log]


def live_members(member_ids: Iterable[str]) -> list[str]:
    """Write live members with these ids (a member's writes carry a check that it is live)."""
    from chalicelib import clock
    from chalicelib.members.models import Member

    member_ids = list(member_ids)
    with Member.batch_write() as batch:
        for member_id in member_ids:
            batch.save(Member(member_id, created_at=clock.now()))
    return member_ids


def _judged(count: int, goal: str) -> bool | None:
    """Whether `count` meets a goal written "N ...", "at most N ..." or "one write (writes here: W ...)"."""
    if written := re.match(r"one write \(writes here: (\d+)", goal):
        return int(written.group(1)) == 1
    if bound := re.match(r"(at most )?(\d+)", goal):
        return count <= int(bound.group(2)) if bound.group(1) else count == int(bound.group(2))
    return None


def table(rows: list[tuple[str, int, str, list[str]]]) -> str:
    """Markdown rows of (operation, round trips, goal, operations seen)."""
    lines = ["| operation | round trips | goal | requests |", "|---|---|---|---|"]
    for name, count, goal, _ in rows:
        bench.figure(f"DynamoDB round trips: {name}", str(count), goal, _judged(count, goal))
    lines += [f"| {name} | {count} | {goal} | {', '.join(ops)} |" for name, count, goal, ops in rows]
    return "\n".join(lines)
