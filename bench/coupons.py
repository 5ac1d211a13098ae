"""P3: the launch rush. 10,000 claims from 16 workers for 1,000 coupons on 16 shards.

Each worker calls the claim service function (what the claim route runs)
against DynamoDB Local. Writes per item are counted from the request bodies
seen by the botocore hook in chalicelib.db; round trips per claim are counted
per thread by a second `before-send` hook on the clients a claim uses.
"""

from __future__ import annotations

import collections
import datetime as dt
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import bench
from bench import plots
from bench.roundtrips import live_members, round_trips
from local.stack import Stack

CLAIMS = 10_000
WORKERS = 16
STOCK = 1_000
SHARDS = 16
BUSIEST_GOAL = 1 / 8
WRITE_OPERATIONS = {"TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem"}

_per_thread = threading.local()


def _count_send(request: Any = None, **_: Any) -> None:
    _per_thread.trips = getattr(_per_thread, "trips", 0) + 1
    target = request.headers.get("X-Amz-Target", b"") if request is not None else b""
    if (target.decode() if isinstance(target, bytes) else target).endswith(".Query"):
        _per_thread.reads = getattr(_per_thread, "reads", 0) + 1


def _count_dry_landings() -> None:
    """Count, per thread, the claim attempts whose shard turned out empty."""
    from chalicelib.coupons import claims

    original = claims._mark_dry

    def counted(campaign_id: str, shard: int) -> None:
        _per_thread.dry = getattr(_per_thread, "dry", 0) + 1
        original(campaign_id, shard)

    claims._mark_dry = counted


def _watch_threads() -> None:
    """Count each thread's DynamoDB requests on the clients a claim goes through."""
    from chalicelib import db
    from chalicelib.coupons.models import Campaign, StockShard

    clients = {id(db.connection().client): db.connection().client}
    for model in (Campaign, StockShard):
        client = model._get_connection().connection.client
        clients[id(client)] = client
    for client in clients.values():
        client.meta.events.register("before-send.dynamodb", _count_send)


def _campaign(stock: int, shards: int, limit: int = 1) -> str:
    from chalicelib import clock
    from chalicelib.coupons import service
    from chalicelib.coupons.schemas import CampaignCreate

    now = clock.now()
    body = CampaignCreate.model_validate({
        "title": "新品首发 launch",
        "kind": "cash",
        "value": 5000,
        "threshold": 50000,
        "totalStock": stock,
        "shardCount": shards,
        "perMemberLimit": limit,
        "validFrom": now.isoformat(),
        "validTo": (now + dt.timedelta(days=7)).isoformat(),
    })
    campaign_id = service.create_campaign(body, created_by="bench")["campaignId"]
    service.campaign(campaign_id)  # the container has read the campaign before the rush
    return campaign_id


def _claim_counted(campaign_id: str, member_id: str) -> tuple[str, int, int]:
    """(outcome, round trips, round trips beyond one write: empty-shard landings and confirming reads)."""
    from chalicelib.coupons import claims
    from chalicelib.errors import SiyuError

    _per_thread.trips = _per_thread.dry = _per_thread.reads = 0
    try:
        claims.claim(member_id, campaign_id)
        outcome = "granted"
    except SiyuError as error:
        outcome = error.code
    return outcome, _per_thread.trips, _per_thread.dry + _per_thread.reads


def rush() -> dict[str, Any]:
    from chalicelib import db
    from chalicelib.coupons import service
    from chalicelib.coupons.models import Coupon

    campaign_id = _campaign(STOCK, SHARDS)
    members = live_members(f"rush-{uuid.uuid4().hex[:12]}" for _ in range(CLAIMS))
    started = time.perf_counter()
    with db.recording() as log:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            results = list(pool.map(lambda member: _claim_counted(campaign_id, member), members))
    seconds = time.perf_counter() - started

    outcomes = collections.Counter(outcome for outcome, _, _ in results)
    granted = [(trips, explained) for outcome, trips, explained in results if outcome == "granted"]
    granted_trips = collections.Counter(trips for trips, _ in granted)
    refused_trips = collections.Counter(trips for outcome, trips, _ in results if outcome != "granted")
    unexplained = sum(1 for trips, explained in granted if trips != 1 + explained)
    writes: collections.Counter[tuple[str, str]] = collections.Counter()
    for request in log:
        if request.operation in WRITE_OPERATIONS:
            writes.update(request.item_keys())
    stock_table = f"{_prefix()}coupon-stock"
    stock_writes = {key: count for key, count in writes.items() if key[0] == stock_table}
    shards = service.shards(campaign_id)
    coupons_written = sum(
        1 for _ in Coupon.scan(Coupon.campaign_id == campaign_id, consistent_read=True, attributes_to_get=["coupon_id"])
    )
    return {
        "seconds": seconds,
        "outcomes": outcomes,
        "granted": outcomes["granted"],
        "coupons_written": coupons_written,
        "remaining": sum(int(s.remaining) for s in shards),
        "lowest_shard": min(int(s.remaining) for s in shards),
        "requests": collections.Counter(request.operation for request in log),
        "item_writes": sum(writes.values()),
        "busiest_item": max(writes.values()),
        "stock_writes": sum(stock_writes.values()),
        "busiest_shard": max(stock_writes.values()),
        "shard_spread": sorted(stock_writes.values()),
        "granted_trips": granted_trips,
        "unexplained": unexplained,
        "refused_trips": refused_trips,
    }


def _prefix() -> str:
    from chalicelib.config import settings

    return settings().table_prefix


def sequential_round_trips() -> dict[str, Any]:
    """Claims one after another on a warm container, then a redemption."""
    from chalicelib.coupons import claims, redemption

    campaign_id = _campaign(400, SHARDS, limit=1)
    trips = []
    *claimants, member_id = live_members(f"seq-{uuid.uuid4().hex[:12]}" for _ in range(101))
    for claimant in claimants:
        count, _ = round_trips(lambda: claims.claim(claimant, campaign_id))
        trips.append(count)
    coupon_id = claims.claim(member_id, campaign_id)["couponId"]
    payload = redemption.issue_code(member_id, coupon_id)["payload"]
    redeem_count, redeem_ops = round_trips(lambda: redemption.redeem(payload, "bench-store"))
    return {"claims": trips, "redeem": redeem_count, "redeem_ops": redeem_ops}


def _histogram(counter: collections.Counter[int]) -> str:
    return ", ".join(f"{trips}: {count}" for trips, count in sorted(counter.items())) or "-"


def run(stack: Stack) -> str:
    _watch_threads()
    _count_dry_landings()
    result = rush()
    sequential = sequential_round_trips()
    oversell = max(0, result["granted"] - STOCK)
    share_all = result["busiest_item"] / result["item_writes"]
    share_stock = result["busiest_shard"] / result["stock_writes"]
    exact = result["granted"] == STOCK == result["coupons_written"] and result["remaining"] == 0
    granted_trips = result["granted_trips"]
    mean_granted = sum(t * n for t, n in granted_trips.items()) / max(1, sum(granted_trips.values()))
    claims_seq = sequential["claims"]
    verdicts = {
        "exactly the stock": exact and oversell == 0 and result["lowest_shard"] >= 0,
        "busiest item at most 1/8": share_stock <= BUSIEST_GOAL and share_all <= BUSIEST_GOAL,
        "1 round trip per claim, one more per empty shard it lands on": result["unexplained"] == 0
        and max(claims_seq) == 1,
        "1 round trip per redemption": sequential["redeem"] == 1,
    }
    bench.figure("P3 coupon rush: claims granted for 1,000 coupons (10,000 claims, 16 threads)",
                 f"{result['granted']:,} ({CLAIMS / result['seconds']:,.0f} claims/s)", f"exactly {STOCK:,}",
                 verdicts["exactly the stock"])
    bench.figure("P3 coupon rush: busiest stock shard, share of stock writes", f"{share_stock:.3f}",
                 f"<= {BUSIEST_GOAL:.3f}", share_stock <= BUSIEST_GOAL)
    bench.figure("P3 coupon rush: round trips per claim, one after another", f"max {max(claims_seq)}", "1",
                 max(claims_seq) == 1)
    outcome_text = ", ".join(f"{name} {count}" for name, count in result["outcomes"].most_common())
    requests_text = ", ".join(f"{name} {count}" for name, count in result["requests"].most_common())
    lines = [
        "## P3: the launch rush (coupon claims)",
        "",
        f"{CLAIMS:,} claims from {WORKERS} worker threads, each claim by a different member, for a campaign of "
        f"{STOCK:,} coupons on {SHARDS} shards (per-member limit 1), calling `coupons.claims.claim` against "
        "DynamoDB Local. The workers share one process, so they share what a container remembers "
        "(the campaign, dry shards, sold out).",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| wall time | {result['seconds']:.1f} s ({CLAIMS / result['seconds']:,.0f} claims/s) | |",
        f"| outcomes | {outcome_text} | |",
        f"| claims granted | {result['granted']:,} | exactly {STOCK:,} |",
        f"| coupons written (scan) | {result['coupons_written']:,} | {STOCK:,} |",
        f"| oversell | {oversell} | 0 |",
        f"| stock left (sum of shards), lowest shard | {result['remaining']}, {result['lowest_shard']} | 0, >= 0 |",
        f"| DynamoDB requests in the rush | {sum(result['requests'].values()):,} ({requests_text}) | |",
        f"| item writes attempted (all tables) | {result['item_writes']:,} | |",
        f"| busiest item, share of all item writes | {result['busiest_item']} ({share_all:.3f}) | <= {BUSIEST_GOAL:.3f} |",
        f"| busiest stock shard, share of stock writes | {result['busiest_shard']} of {result['stock_writes']:,} "
        f"({share_stock:.3f}) | <= {BUSIEST_GOAL:.3f} (1 shard would be 1.000) |",
        f"| writes per shard (sorted) | {', '.join(map(str, result['shard_spread']))} | |",
        f"| round trips per granted claim in the rush | mean {mean_granted:.2f}; histogram {_histogram(granted_trips)} "
        "| 1, one more per empty shard landed on |",
        f"| granted claims whose round trips are not 1 write + 1 per empty-shard landing (or confirming read) "
        f"| {result['unexplained']} | 0 |",
        f"| round trips per refused claim in the rush | histogram {_histogram(result['refused_trips'])} | |",
        f"| round trips per claim, 100 one after another | mean {statistics.mean(claims_seq):.2f}, "
        f"max {max(claims_seq)} | 1 |",
        f"| round trips per redemption | {sequential['redeem']} ({', '.join(sequential['redeem_ops'])}) | 1 |",
        "",
        "Writes are counted per item from the request bodies (`db.Request.item_keys`), including "
        "writes of transactions that were cancelled (they still cost capacity). Refused claims after "
        "the sell-out cost no request: the container remembers the campaign sold out for "
        "10 s after one read of all shards confirmed it.",
        "",
    ]
    lines += [f"- {name}: {'met' if ok else 'NOT met'}" for name, ok in verdicts.items()]
    picture = plots.bars(
        bench.output_dir() / "coupon_rush.png", "Coupon rush: writes per stock shard", "stock shard (by writes)",
        "item writes", {str(index + 1): count for index, count in enumerate(result["shard_spread"])},
        goal=BUSIEST_GOAL * result["stock_writes"])
    lines += ["", f"![Writes per stock shard; the dashed line is 1/8 of the stock writes]({picture.name})"]
    return "\n".join(lines)
