"""The points ledger: DynamoDB round trips per movement, and a spend's cost over its bare write."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import requests

import bench
from bench.roundtrips import round_trips, table
from local.stack import Stack

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
SAMPLES = 41
WARMUP = 5


def _writes(ops: list[str]) -> int:
    return sum(op in WRITES for op in ops)


def _row(name: str, action: Callable[[], Any], goal: str = "1") -> tuple[str, int, str, list[str]]:
    count, ops = round_trips(action)
    return name, count, f"{goal} (writes here: {_writes(ops)}, reads: {len(ops) - _writes(ops)})", ops


def _member(stack: Stack) -> str:
    from chalicelib.usecases import me

    return me.login(f"dev:bench-{uuid.uuid4().hex[:8]}")["member"]["memberId"]


def _admin_token(stack: Stack) -> str:
    from chalicelib.members import service as members
    from chalicelib.members.schemas import StaffGrant

    openid = f"bench-admin-{uuid.uuid4().hex[:8]}"
    members.grant_role(StaffGrant(openid=openid, role="admin", name="bench"), granted_by="bench")
    answer = requests.post(f"{stack.api_url}/auth/login", json={"code": f"dev:{openid}"}, timeout=30)
    return answer.json()["token"]


def _round_trip_rows(stack: Stack) -> list[tuple[str, int, str, list[str]]]:
    from chalicelib.points import ledger, service
    from chalicelib.usecases import admin_points

    member = _member(stack)
    rows = [
        _row("earn (check-in rule, order, referral: any credit)",
             lambda: ledger.earn(member, 500, f"bench#{uuid.uuid4().hex}", "adjust", expires_on="2027-12-31")),
        _row("spend from one lot",
             lambda: ledger.spend(member, 10, f"bench#{uuid.uuid4().hex}", "exchange")),
    ]
    several = _member(stack)
    for day in ("2026-12-31", "2027-06-30", "2027-12-31", "2028-12-31"):
        ledger.earn(several, 25, f"bench#{uuid.uuid4().hex}", "adjust", expires_on=day)
    rows.append(
        _row("spend across 4 lots", lambda: ledger.spend(several, 90, f"bench#{uuid.uuid4().hex}", "exchange")))

    def cold_checkin() -> None:
        ledger.forget(cold)
        service.checkin(cold)

    cold = _member(stack)
    ledger.earn(cold, 10, f"bench#{uuid.uuid4().hex}", "adjust")
    rows += [
        _row("check-in (the container has seen the balance: login, GET /members/me, GET /points)",
             lambda: service.checkin(member)),
        _row("check-in (a container that never saw this member)", cold_checkin, "2 (one read)"),
        _row("adjust + (with the member check)", lambda: admin_points.adjust(member, 20, "bench", actor="bench")),
        _row("adjust -", lambda: admin_points.adjust(member, -20, "bench", actor="bench")),
        _row("pending earn (order)", lambda: ledger.earn_pending(member, 30, f"order#{member}#earn", "order")),
        _row("post pending (reads the pending transfer it posts)",
             lambda: ledger.post_pending(member, f"order#{member}#earn"), "2 (one read)"),
    ]
    expiring = _member(stack)
    ledger.earn(expiring, 40, f"bench#{uuid.uuid4().hex}", "adjust", expires_on="2026-01-31")
    scanned = ledger.read_balance(expiring)
    job_moment = dt.datetime(2026, 1, 31, 16, 10, tzinfo=dt.timezone.utc)  # 2026-02-01 00:10 Shanghai
    rows.append(_row("expire one lot (as scanned by the job)",
                     lambda: ledger.expire_lot(expiring, "2026-01-31", job_moment, scanned)))
    return rows


def _bare_spend(member: str) -> Callable[[], None]:
    """The TransactWriteItems a spend of 1 point needs, sent with boto3 and nothing else."""
    from chalicelib import db
    from chalicelib.points.ledger import system_shard
    from chalicelib.points.models import PointsBalance, PointsTransfer, position_attribute

    client = db.connection().client
    PointsTransfer._get_connection()
    PointsBalance._get_connection()
    transfers, balances = PointsTransfer.Meta.table_name, PointsBalance.Meta.table_name

    def send() -> None:
        transfer_id = f"bare#{uuid.uuid4().hex}"
        client.transact_write_items(TransactItems=[
            {"Put": {
                "TableName": transfers,
                "Item": {
                    "account_id": {"S": member}, "transfer_id": {"S": transfer_id},
                    "counterparty": {"S": "spent"}, "kind": {"S": "posted"}, "delta": {"N": "-1"},
                    "pending_delta": {"N": "0"}, "reason": {"S": "exchange"},
                    "created_at": {"S": "2026-01-01T00:00:00.000000+0000"},
                },
                "ConditionExpression": "attribute_not_exists(transfer_id)",
            }},
            {"Update": {
                "TableName": balances,
                "Key": {"account_id": {"S": member}},
                "UpdateExpression": "SET #at = if_not_exists(#consumed, :zero) "
                                    "ADD available :minus, version :one, #consumed :one",
                "ConditionExpression": "available >= :one",
                "ExpressionAttributeNames": {"#at": position_attribute(transfer_id), "#consumed": "consumed"},
                "ExpressionAttributeValues": {":minus": {"N": "-1"}, ":one": {"N": "1"}, ":zero": {"N": "0"}},
            }},
            {"Update": {
                "TableName": balances,
                "Key": {"account_id": {"S": system_shard("spent", transfer_id)}},
                "UpdateExpression": "ADD available :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }},
        ])

    return send


def _timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def _spend_timing(stack: Stack) -> list[str]:
    from chalicelib.points import ledger

    member = _member(stack)
    ledger.earn(member, 1_000_000, f"bench#{uuid.uuid4().hex}", "adjust", expires_on="2030-12-31")
    token = _admin_token(stack)
    body = {"memberId": member, "delta": -1, "reason": "bench spend"}

    payload = json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    port = int(stack.api_url.rsplit(":", 1)[1])

    def api_spend() -> None:
        # A connection per request, as a phone's mini-program makes them; the plainest client,
        # so what is timed is the API and not a client library's own set-up.
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("POST", "/admin/points/adjust", body=payload, headers=headers)
            answer = connection.getresponse()
            text = answer.read()
        finally:
            connection.close()
        assert answer.status == 200, text

    def service_spend() -> None:
        ledger.spend(member, 1, f"bench#{uuid.uuid4().hex}", "exchange")

    bare = _bare_spend(member)
    for _ in range(WARMUP):
        api_spend(), service_spend(), bare()
    api_ms, service_ms, bare_ms = [], [], []
    for _ in range(SAMPLES):
        api_ms.append(_timed(api_spend))
        service_ms.append(_timed(service_spend))
        bare_ms.append(_timed(bare))
    api, service, raw = statistics.median(api_ms), statistics.median(service_ms), statistics.median(bare_ms)
    ratio = api / raw
    verdict = "met" if ratio <= 1.5 else "not met"
    bench.figure("API overhead: `POST /admin/points/adjust` / the bare TransactWriteItems", f"{ratio:.2f}", "<= 1.5",
                 ratio <= 1.5)
    return [
        "",
        f"Spend timing: interleaved, medians of {SAMPLES} after {WARMUP} warm-up rounds, same member.",
        "",
        "| path | median |",
        "|---|---|",
        f"| `POST /admin/points/adjust` delta -1 over HTTP (auth, validation, TransactWriteItems) | {api:.1f} ms |",
        f"| `ledger.spend` in process (TransactWriteItems) | {service:.1f} ms |",
        f"| the bare `TransactWriteItems` (boto3, prebuilt) | {raw:.1f} ms |",
        "",
        f"API spend / bare write: **{ratio:.2f}** (goal at most 1.5: {verdict}). "
        f"In-process spend / bare write: {service / raw:.2f}.",
    ]


def run(stack: Stack) -> str:
    return "\n".join([
        "## Points: DynamoDB round trips",
        "",
        "Each movement is one `TransactWriteItems` (transfer, balance, system shard, and cap or "
        "activity tallies where the rule has them). A member's lots lie end to end on a line, soonest "
        "expiry first; a spend moves the balance's `consumed` forward and records where it started, "
        "so it reads nothing however many lots it crosses. A credit to the newest lot (or a later one) "
        "extends the line, also without a read. A check-in's streak and answer are planned from the "
        "balance as the container last saw it, conditioned on its version; a refused write answers "
        "with the current balance.",
        "",
        table(_round_trip_rows(stack)),
        *_spend_timing(stack),
    ])
