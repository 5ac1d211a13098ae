"""The points ledger: DynamoDB round trips per movement, and a spend's cost over its bare write."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import requests

from bench.roundtrips import round_trips, table
from local.stack import Stack

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
SAMPLES = 41
WARMUP = 5


def _writes(ops: list[str]) -> int:
    return sum(op in WRITES for op in ops)


def _row(name: str, action: Callable[[], Any]) -> tuple[str, int, str, list[str]]:
    count, ops = round_trips(action)
    reads = len(ops) - _writes(ops)
    return name, count, f"1 write (writes: {_writes(ops)}, reads before it: {reads})", ops


def _member(stack: Stack) -> str:
    from chalicelib.members import service as members

    return members.login(f"dev:bench-{uuid.uuid4().hex[:8]}")["member"]["memberId"]


def _admin_token(stack: Stack) -> str:
    from chalicelib.members import service as members
    from chalicelib.members.schemas import StaffGrant

    openid = f"bench-admin-{uuid.uuid4().hex[:8]}"
    members.grant_role(StaffGrant(openid=openid, role="admin", name="bench"), granted_by="bench")
    answer = requests.post(f"{stack.api_url}/auth/login", json={"code": f"dev:{openid}"}, timeout=30)
    return answer.json()["token"]


def _round_trip_rows(stack: Stack) -> list[tuple[str, int, str, list[str]]]:
    from chalicelib.points import ledger, service

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
    rows += [
        _row("spend across 4 lots", lambda: ledger.spend(several, 90, f"bench#{uuid.uuid4().hex}", "exchange")),
        _row("check-in", lambda: service.checkin(member)),
        _row("adjust +", lambda: service.adjust(member, 20, "bench", actor="bench")),
        _row("adjust -", lambda: service.adjust(member, -20, "bench", actor="bench")),
        _row("pending earn (order)", lambda: ledger.earn_pending(member, 30, f"order#{member}#earn", "order")),
        _row("post pending", lambda: ledger.post_pending(member, f"order#{member}#earn")),
    ]
    expiring = _member(stack)
    ledger.earn(expiring, 40, f"bench#{uuid.uuid4().hex}", "adjust", expires_on="2026-01-31")
    rows.append(_row("expire one lot (as scanned by the job)",
                     lambda: ledger.expire_lot(expiring, "2026-01-31", "2026-02-01", 40)))
    return rows


def _bare_spend(member: str) -> Callable[[], None]:
    """The TransactWriteItems a one-lot spend of 1 point needs, sent with boto3 and nothing else."""
    from chalicelib import db
    from chalicelib.points.ledger import system_shard
    from chalicelib.points.models import PointsBalance, PointsTransfer, lot_attribute

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
                    "pending_delta": {"N": "0"}, "lots": {"M": {"2030-12-31": {"N": "1"}}},
                    "reason": {"S": "exchange"}, "created_at": {"S": "2026-01-01T00:00:00.000000+0000"},
                },
                "ConditionExpression": "attribute_not_exists(transfer_id)",
            }},
            {"Update": {
                "TableName": balances,
                "Key": {"account_id": {"S": member}},
                "UpdateExpression": "ADD available :minus, version :one, #lot :minus",
                "ConditionExpression": "available >= :one AND #lot >= :one",
                "ExpressionAttributeNames": {"#lot": lot_attribute("2030-12-31")},
                "ExpressionAttributeValues": {":minus": {"N": "-1"}, ":one": {"N": "1"}},
            }},
            {"Update": {
                "TableName": balances,
                "Key": {"account_id": {"S": system_shard("spent", transfer_id)}},
                "UpdateExpression": "ADD available :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }},
        ])

    return send


def _bare_read(member: str) -> Callable[[], None]:
    """The plan's read: one strongly consistent GetItem of the balance item, with boto3."""
    from chalicelib import db
    from chalicelib.points.models import PointsBalance

    client = db.connection().client
    PointsBalance._get_connection()
    balances = PointsBalance.Meta.table_name

    def send() -> None:
        client.get_item(TableName=balances, Key={"account_id": {"S": member}}, ConsistentRead=True)

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

    def api_spend() -> None:
        # A connection per request, as a phone's mini-program makes them (and no Nagle stall on keep-alive).
        answer = requests.post(f"{stack.api_url}/admin/points/adjust", json=body,
                               headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert answer.status_code == 200, answer.text

    def service_spend() -> None:
        ledger.spend(member, 1, f"bench#{uuid.uuid4().hex}", "exchange")

    bare = _bare_spend(member)
    bare_read = _bare_read(member)

    def bare_pair() -> None:
        bare_read()
        bare()

    for _ in range(WARMUP):
        api_spend(), service_spend(), bare(), bare_pair()
    api_ms, service_ms, bare_ms, pair_ms = [], [], [], []
    for _ in range(SAMPLES):
        api_ms.append(_timed(api_spend))
        service_ms.append(_timed(service_spend))
        bare_ms.append(_timed(bare))
        pair_ms.append(_timed(bare_pair))
    api, service, raw = statistics.median(api_ms), statistics.median(service_ms), statistics.median(bare_ms)
    pair = statistics.median(pair_ms)
    ratio = api / raw
    verdict = "met" if ratio <= 1.5 else "not met"
    return [
        "",
        f"Spend timing: interleaved, medians of {SAMPLES} after {WARMUP} warm-up rounds, same member and lot.",
        "",
        "| path | median |",
        "|---|---|",
        f"| `POST /admin/points/adjust` delta -1 over HTTP (auth, validation, GetItem plan, TransactWriteItems) "
        f"| {api:.1f} ms |",
        f"| `ledger.spend` in process (GetItem plan, TransactWriteItems) | {service:.1f} ms |",
        f"| the bare `TransactWriteItems` (boto3, prebuilt) | {raw:.1f} ms |",
        f"| the bare GetItem then the bare `TransactWriteItems` | {pair:.1f} ms |",
        "",
        f"API spend / bare write: **{ratio:.2f}** (goal at most 1.5: {verdict}). "
        f"In-process spend / bare write: {service / raw:.2f}; API spend / bare read and write: {api / pair:.2f} "
        "(what the API adds over the DynamoDB work a spend does).",
    ]


def run(stack: Stack) -> str:
    return "\n".join([
        "## Points: DynamoDB round trips",
        "",
        "Each movement is one `TransactWriteItems` (transfer, balance with its lots, system shard, "
        "and cap or activity tallies where the rule has them). A spend, a check-in and a negative "
        "adjustment first read the balance item (one strongly consistent GetItem: lots live on it) "
        "to plan; the conditions, not the read, decide.",
        "",
        table(_round_trip_rows(stack)),
        *_spend_timing(stack),
    ])
