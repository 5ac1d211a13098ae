"""The scheduled jobs at scale: what each reads for the work it finds, and what ten million members cost.

A ledger of `SIYU_BENCH_MEMBERS` members (default 100,000) as the ledger
writes it: each member earns once; one in a hundred also holds a lot that is
due to expire, one in a hundred more has an order's pending points (tier
activity), and the others last wrote on one of the past 30 days. Then each job runs as its Lambda would, with every DynamoDB
response counted: requests and items read (what DynamoDB bills), and the
seconds the work took. The jobs that find their work (expiry, tier review,
the nightly day proof) are set beside a scan of the same table; the weekly
proof, which must visit every balance, is timed over 1, 2 and 4 segments.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from local.stack import Stack

MEMBERS = int(os.environ.get("SIYU_BENCH_MEMBERS", "100000"))
DUE_EVERY = 100  # one member in this many holds a lot due to expire
ACTIVE_EVERY = 50  # one in this many has tier activity to review
TARGET = 10_000_000
WRITERS = 4
_CHUNK = 500  # members a writer clones in one go
DAYS_SPREAD = 30  # a plain member's transfers are dated one of the last this many days
SEGMENT_COUNTS = (1, 2, 4)
REGION_REQUEST_MS = 10  # a DynamoDB request from a Lambda in its region, for the model at 10M


_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


@dataclass
class Reads:
    requests: int = 0  # read requests
    items: int = 0  # items read
    writes: int = 0  # write requests


def _items_in(operation: str, parsed: dict[str, Any]) -> int:
    if operation in ("Query", "Scan"):
        return int(parsed.get("ScannedCount", parsed.get("Count", 0)))
    if operation == "GetItem":
        return int("Item" in parsed)
    if operation == "BatchGetItem":
        return sum(len(items) for items in parsed.get("Responses", {}).values())
    return 0


class _Meter:
    """Every DynamoDB response of every model's client, counted while a block runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: Reads | None = None
        self._clients: set[int] = set()

    def watch(self) -> None:
        from chalicelib import db

        for client in [db.connection().client, *(model._get_connection().connection.client
                                                   for model in db.all_models())]:
            if id(client) not in self._clients:
                self._clients.add(id(client))
                client.meta.events.register("after-call.dynamodb", self._on_response)

    def _on_response(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        with self._lock:
            if self._current is None:
                return
            if model.name in _WRITES:
                self._current.writes += 1
            else:
                self._current.requests += 1
                self._current.items += _items_in(model.name, parsed)

    @contextlib.contextmanager
    def measuring(self) -> Iterator[Reads]:
        self.watch()
        reads = Reads()
        self._current = reads
        try:
            yield reads
        finally:
            self._current = None


def _timed(meter: _Meter, action: Callable[[], Any]) -> tuple[Any, Reads, float]:
    with meter.measuring() as reads:
        began = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - began
    return result, reads, seconds


def _template(kind: str, member: str, due_day: str) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """A member of this kind written through the ledger itself; its rows, to clone."""
    from chalicelib.points import ledger
    from chalicelib.points.models import PointsActivity, PointsBalance, PointsTransfer

    ledger.earn(member, 100, f"seed#{member}", "adjust", expires_on="2028-12-31")
    if kind == "due":
        ledger.earn(member, 7, f"seed-due#{member}", "adjust", expires_on=due_day)
    if kind == "active":
        ledger.earn_pending(member, 30, f"order#{member}#earn", "order", spend_fen=19_900)
    # The balance raw: its lots are attributes of their own (`lot_<day>`), which the model does not declare.
    raw = PointsBalance._get_connection().get_item(member, consistent_read=True)["Item"]
    return (raw, list(PointsTransfer.query(member, consistent_read=True)),
            list(PointsActivity.query(member, consistent_read=True)))


def _copy(row: Any, **changes: Any) -> Any:
    copy = type(row).from_raw_data(row.serialize())
    for name, value in changes.items():
        setattr(copy, name, value)
    return copy


def _kind(number: int) -> str:
    return "due" if number % DUE_EVERY == 0 else "active" if number % ACTIVE_EVERY == 0 else "plain"


def _clones(number: int, member: str, template: tuple[dict[str, Any], list[Any], list[Any]], kind: str) -> list[Any]:
    """The template's rows for `member`: what the ledger would have written for it. A plain member
    wrote on one of the last DAYS_SPREAD days, so a day's proof sees a day's share of the members."""
    from chalicelib import clock
    from chalicelib.members.models import Member
    from chalicelib.points.models import account_shard, day_key, month_key

    balance, transfers, activity = template
    shard = account_shard(member)
    raw = {**balance, "account_id": {"S": member}}
    raw.update({name: {"S": shard} for name in ("expiry_shard", "review_due") if name in balance})
    rows: list[Any] = [raw, Member(member, created_at=_earliest(transfers))]
    back = dt.timedelta(days=number % DAYS_SPREAD if kind == "plain" else 0)
    for transfer in transfers:
        created_at = transfer.created_at - back
        rows.append(_copy(transfer, account_id=member, created_at=created_at,
                          created_day=day_key(clock.shanghai_date(created_at), member, transfer.transfer_id)))
    rows += [_copy(month, member_id=member, month_shard=month_key(month.month, member)) for month in activity]
    return rows


def _earliest(transfers: list[Any]) -> dt.datetime:
    return min(transfer.created_at for transfer in transfers)


def _write(rows: list[Any]) -> None:
    """Rows of the models, and raw balances (dicts), in batches."""
    from chalicelib.points.models import PointsBalance

    by_model: dict[type, list[Any]] = {}
    for row in rows:
        by_model.setdefault(type(row), []).append(row)
    _write_raw(PointsBalance, by_model.pop(dict, []))
    for model, items in by_model.items():
        with model.batch_write() as batch:
            for item in items:
                batch.save(item)


def _write_raw(model: Any, items: list[dict[str, Any]]) -> None:
    client = model._get_connection().connection.client
    for first in range(0, len(items), 25):
        wanted = {model.Meta.table_name: [{"PutRequest": {"Item": item}} for item in items[first:first + 25]]}
        while wanted:
            wanted = client.batch_write_item(RequestItems=wanted).get("UnprocessedItems") or {}


def _seed(today: dt.date) -> dict[str, Any]:
    """MEMBERS members as the ledger writes them: three written through it, the others their clones
    (batch writes, so 100,000 fit the bench's time); the issued account holds what they earned."""
    from chalicelib.points import ledger
    from chalicelib.points.models import PointsBalance

    run = uuid.uuid4().hex[:6]
    due_day = (today + dt.timedelta(days=1)).isoformat()
    began = time.perf_counter()
    templates = {kind: _template(kind, f"mb{run}-{kind}", due_day) for kind in ("plain", "due", "active")}
    members = [f"mb{run}{number:07d}" for number in range(MEMBERS)]
    kinds = [_kind(number) for number in range(MEMBERS)]

    def write(first: int) -> None:
        numbers = range(first, min(first + _CHUNK, MEMBERS))
        _write([row for number in numbers
                for row in _clones(number, members[number], templates[kinds[number]], kinds[number])])

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        list(pool.map(write, range(0, MEMBERS, _CHUNK)))
    available = sum(int(templates[kind][0].get("available", {"N": "0"})["N"]) for kind in kinds)
    pending = sum(int(templates[kind][0].get("pending", {"N": "0"})["N"]) for kind in kinds)
    PointsBalance(ledger.system_shard(ledger.ISSUED, f"bench#{run}")).update(
        [PointsBalance.available.add(-available), PointsBalance.pending.add(-pending)])
    return {"seconds": time.perf_counter() - began, "due": kinds.count("due") + 1,
            "active": kinds.count("active") + 1, "members": MEMBERS + len(templates)}


def _scan_all(model: Any) -> int:
    return sum(1 for _ in model.scan())


def _per_thousand(seconds: float, units: int) -> float:
    return seconds / max(units, 1) * 1000


def run(stack: Stack) -> str:
    from chalicelib import clock
    from chalicelib.points import audit as ledger_audit
    from chalicelib.points import jobs as points_jobs
    from chalicelib.points.models import PointsBalance
    from chalicelib.usecases import tier_review
    from local import segmented

    meter = _Meter()
    now = clock.now()
    today = clock.shanghai_date(now)
    seeded = _seed(today)
    balances = seeded["members"] + 16  # the members' and the system accounts' shards

    _, scan_reads, scan_seconds = _timed(meter, lambda: _scan_all(PointsBalance))

    expiry_moment = now + dt.timedelta(days=2)
    expired, expiry_reads, expiry_seconds = _timed(meter, lambda: points_jobs.expire(expiry_moment))
    replayed, replay_reads, _ = _timed(meter, lambda: points_jobs.expire(expiry_moment))

    review_moment = now + dt.timedelta(minutes=5)
    reviewed, review_reads, review_seconds = _timed(meter, lambda: tier_review.review(review_moment))
    _, review_again_reads, _ = _timed(meter, lambda: tier_review.review(review_moment))

    day_proof, day_reads, day_seconds = _timed(meter, lambda: ledger_audit.audit_day(today))

    proofs = []
    for count in SEGMENT_COUNTS:
        run_id = f"bench-proof-{count}-{uuid.uuid4().hex[:6]}"
        result, reads, wall = _timed(meter, lambda: segmented.run_inline(
            "ledger-proof", now, total_segments=count, run=run_id))
        proofs.append((count, result, reads, wall, run_id))
    one_segment = proofs[0]
    replay, proof_replay_reads, _ = _timed(meter, lambda: segmented.run_inline(
        "ledger-proof", now, total_segments=one_segment[0], run=one_segment[4]))

    lines = [
        "## Scheduled jobs at scale",
        "",
        f"{seeded['members']:,} members written in {seeded['seconds']:.0f} s ({WRITERS} writers of batches): "
        f"{seeded['due']:,} hold a lot due to expire, {seeded['active']:,} have tier activity, the others "
        f"wrote on one of the last {DAYS_SPREAD} days; {balances:,} balances in all. Items read are what DynamoDB bills; "
        "seconds are this machine's, against DynamoDB Local.",
        "",
        "### Jobs that find their work",
        "",
        "| job | work found | read requests | items read | items read / work | write requests | seconds "
        "| a scan of the balances |",
        "|---|---|---|---|---|---|---|---|",
        f"| points-expiry | {expired['checked']:,} due balances, {expired['lotsExpired']:,} lots expired "
        f"| {expiry_reads.requests:,} | {expiry_reads.items:,} "
        f"| {expiry_reads.items / max(expired['checked'], 1):.1f} | {expiry_reads.writes:,} | {expiry_seconds:.2f} "
        f"| {scan_reads.items:,} items, {scan_reads.requests:,} requests, {scan_seconds:.2f} s |",
        f"| points-expiry, replayed for the same moment | {replayed['checked']:,} due "
        f"| {replay_reads.requests:,} | {replay_reads.items:,} | - | {replay_reads.writes:,} | - | - |",
        f"| tier-review | {reviewed['checked']:,} marked members | {review_reads.requests:,} "
        f"| {review_reads.items:,} | {review_reads.items / max(reviewed['checked'], 1):.1f} "
        f"| {review_reads.writes:,} | {review_seconds:.2f} | {scan_reads.items:,} items |",
        f"| tier-review, again (nothing marked since) | - | {review_again_reads.requests:,} "
        f"| {review_again_reads.items:,} | - | {review_again_reads.writes:,} | - | - |",
        f"| ledger-audit (the nightly proof of today) "
        f"| {day_proof['checked']:,} touched accounts, {day_proof['transfers']:,} transfers "
        f"| {day_reads.requests:,} | {day_reads.items:,} "
        f"| {day_reads.items / max(day_proof['checked'], 1):.1f} | {day_reads.writes:,} | {day_seconds:.2f} | - |",
        "",
        f"Breaches found by the day proof: {day_proof['breaches']}.",
        "",
        "### The weekly proof over every balance (segmented)",
        "",
        "| segments | checked | breaches | read requests | items read | write requests | wall seconds "
        "| task seconds (sum) | task seconds per 1,000 members |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for count, result, reads, wall, _ in proofs:
        task = sum(result["taskSeconds"]) + result["finishSeconds"]
        lines.append(f"| {count} | {result['checked']:,} | {result['breaches']} | {reads.requests:,} "
                     f"| {reads.items:,} | {reads.writes:,} | {wall:.2f} | {task:.2f} | {_per_thousand(task, result['checked']):.3f} |")
    speedups = ", ".join(f"{count} segments {one_segment[3] / wall:.2f}x" for count, _, _, wall, _ in proofs[1:])
    lines += [
        "",
        f"Wall time against 1 segment: {speedups} (DynamoDB Local and the tasks share this machine's "
        f"{os.cpu_count()} cores). A replay of a finished run answers its kept result "
        f"(breaches {replay['breaches']}) with {proof_replay_reads.requests} requests "
        f"and {proof_replay_reads.items} items read, and scans nothing.",
    ]
    lines += _extrapolation(expired, expiry_reads, expiry_seconds, reviewed, review_reads, review_seconds,
                            day_proof, day_reads, day_seconds, proofs)
    return "\n".join(lines)


def _extrapolation(expired: dict[str, int], expiry_reads: Reads, expiry_seconds: float,
                   reviewed: dict[str, int], review_reads: Reads, review_seconds: float,
                   day_proof: dict[str, Any], day_reads: Reads, day_seconds: float,
                   proofs: list[tuple[int, dict[str, Any], Reads, float, str]]) -> list[str]:
    """Ten million members at the same shares of due, active and touched members, from the figures above."""
    from chalicelib.points.audit import _READERS
    from chalicelib.points.models import ACCOUNT_SHARDS
    from infra.functions import LIMITS, WHOLE_TABLE_CONCURRENCY

    scale = TARGET / MEMBERS
    _, result, reads, _, _ = proofs[0]
    proof_task = sum(result["taskSeconds"]) + result["finishSeconds"]
    segments = WHOLE_TABLE_CONCURRENCY["segment_scan"]

    def row(job: str, work: str, measured: Reads, seconds: float, side_by_side: int, limit: str) -> str:
        requests = (measured.requests + measured.writes) * scale
        modeled = requests * REGION_REQUEST_MS / 1000 / side_by_side
        return (f"| {job} | {work} | {measured.items * scale:,.0f} | {requests:,.0f} | {seconds * scale:,.0f} "
                f"| {modeled:,.0f} ({side_by_side} at once) | {limit} |")

    return [
        "",
        f"### At {TARGET:,} members",
        "",
        "The same shares of due, active and touched members, scaled linearly from this run: the work per "
        "item does not grow with the table (every read is by key or by a sparse index). Two times: this "
        f"machine's seconds scaled (DynamoDB Local on {os.cpu_count()} cores, a pessimistic stand-in), and a "
        f"model of the job in a region, each request {REGION_REQUEST_MS} ms (DynamoDB's single-digit "
        "milliseconds, rounded up for transactions) with the job's parallelism.",
        "",
        "| job | work at 10M | items read | requests | seconds here, scaled | seconds in a region, modeled "
        "| its limit |",
        "|---|---|---|---|---|---|---|",
        row("points-expiry", f"{expired['checked'] * scale:,.0f} due balances", expiry_reads, expiry_seconds,
            ACCOUNT_SHARDS, f"one Lambda, {LIMITS['points-expiry'][0]} s"),
        row("tier-review", f"{reviewed['checked'] * scale:,.0f} marked members", review_reads, review_seconds,
            ACCOUNT_SHARDS, f"one Lambda, {LIMITS['tier-review'][0]} s"),
        row("ledger-audit", f"{day_proof['checked'] * scale:,.0f} accounts touched in a day", day_reads,
            day_seconds, _READERS, f"one Lambda, {LIMITS['ledger-audit'][0]} s"),
        row("ledger-proof", f"{TARGET:,} balances", reads, proof_task, segments,
            f"{segments} segments, each a chain of {LIMITS['segment_scan'][0]} s calls"),
        "",
        "The weekly proof at this machine's pace per segment, with its segments side by side as DynamoDB's "
        f"partitions allow (DynamoDB Local on {os.cpu_count()} cores does not, as the ratios above show): {proof_task * scale / segments / 60:,.0f} min of wall time "
        f"over {segments} segments.",
    ]
