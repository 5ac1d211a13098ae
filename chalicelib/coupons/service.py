"""Campaigns (create, read, list, stop) and the member's view of their coupons.

A campaign's settings never change after creation except its status, so a
container keeps the campaigns it has read for `CAMPAIGN_CACHE_SECONDS`: a
claim then needs no read before its one write. Stopping a campaign is not
left to that cache: it closes every stock shard, and a claim's write is
conditioned on its shard being open.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import threading
import time
from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib import clock, db, transact
from chalicelib.coupons.errors import CampaignNotFoundError, CouponNotFoundError
from chalicelib.coupons.models import (
    AVAILABLE,
    EXPIRED,
    LOCKED,
    USED,
    Campaign,
    ClaimCount,
    Coupon,
    StockShard,
    day_keys,
)
from chalicelib.coupons.schemas import CampaignCreate
from chalicelib.errors import InvalidRequestError
from chalicelib.transact import Transaction
from chalicelib.validation import ID_PATTERN

__all__ = [
    "unused_since",
    "CAMPAIGN_CACHE_SECONDS",
    "create_campaign",
    "campaign",
    "forget_campaign",
    "remaining",
    "admin_campaign",
    "admin_campaigns",
    "stop_campaign",
    "open_campaigns",
    "campaign_view",
    "coupon_view",
    "effective_status",
    "valid_id",
    "get_coupon",
    "member_coupons",
    "claimed_on",
    "redeemed_on",
]

CAMPAIGN_CACHE_SECONDS = 30.0
ACTIVE_LIST_SECONDS = 10.0
LISTING = "active"

_ID = re.compile(ID_PATTERN)
_cache_lock = threading.Lock()
_campaigns: dict[str, tuple[float, Campaign]] = {}
_active_list: list[tuple[float, list[Campaign]]] = []


def valid_id(value: str) -> bool:
    return bool(_ID.match(value))


# --- Campaigns ------------------------------------------------------------------------

def _new_campaign_id() -> str:
    return f"cp{secrets.token_hex(6)}"


def _shard_stock(total: int, shards: int) -> list[int]:
    base, extra = divmod(total, shards)
    return [base + (1 if index < extra else 0) for index in range(shards)]


def create_campaign(body: CampaignCreate, created_by: str) -> dict[str, Any]:
    """The campaign and all its stock shards, written in one transaction."""
    now = clock.now()
    checked = body.checked(now)
    assert checked.shard_count is not None and checked.channel is not None
    campaign = Campaign(
        _new_campaign_id(),
        title=checked.title,
        kind=checked.kind,
        value=checked.value,
        threshold=checked.threshold,
        max_off=checked.max_off,
        total_stock=checked.total_stock,
        shard_count=checked.shard_count,
        per_member_limit=checked.per_member_limit,
        valid_from=checked.valid_from,
        valid_to=checked.valid_to,
        claim_from=checked.claim_from,
        claim_to=checked.claim_to,
        tiers=set(checked.tiers) if checked.tiers else None,
        store_ids=set(checked.store_ids) if checked.store_ids else None,
        sku_ids=set(checked.sku_ids) if checked.sku_ids else None,
        points_price=checked.points_price,
        channel=checked.channel,
        status="active",
        listing=LISTING,
        created_by=created_by,
        created_at=now,
    )
    stock = _shard_stock(checked.total_stock, checked.shard_count)

    def build(txn: Transaction) -> None:
        txn.save(campaign, Campaign.campaign_id.does_not_exist(), label="campaign")
        for shard, units in enumerate(stock):
            txn.save(StockShard(campaign.campaign_id, shard, remaining=units), label="shard")

    transact.write(build)
    _forget_active_list()
    return campaign_view(campaign, remaining=checked.total_stock, admin=True)


def campaign(campaign_id: str, *, fresh: bool = False) -> Campaign:
    """The campaign, from this container's cache unless `fresh` or older than the cache allows."""
    if not _ID.match(campaign_id):
        raise CampaignNotFoundError()
    now = time.monotonic()
    if not fresh:
        with _cache_lock:
            cached = _campaigns.get(campaign_id)
        if cached and cached[0] > now:
            return cached[1]
    try:
        found = Campaign.get(campaign_id, consistent_read=fresh)
    except DoesNotExist as exc:
        raise CampaignNotFoundError() from exc
    with _cache_lock:
        _campaigns[campaign_id] = (now + CAMPAIGN_CACHE_SECONDS, found)
    return found


def forget_campaign(campaign_id: str) -> None:
    """Drop this container's copy of the campaign (and of the active list) after a change."""
    with _cache_lock:
        _campaigns.pop(campaign_id, None)
        _active_list.clear()


def _forget_active_list() -> None:
    with _cache_lock:
        _active_list.clear()


def shards(campaign_id: str) -> list[StockShard]:
    return list(StockShard.query(campaign_id, consistent_read=True))


def remaining(campaign_id: str) -> int:
    """What is left to give: the sum over the campaign's shards."""
    return sum(int(shard.remaining) for shard in shards(campaign_id))


def admin_campaign(campaign_id: str) -> dict[str, Any]:
    found = campaign(campaign_id, fresh=True)
    return campaign_view(found, remaining=remaining(campaign_id), admin=True)


def admin_campaigns(limit: int, cursor: dict[str, Any] | None) -> dict[str, Any]:
    """Every campaign, active or not (admins create few: a scan in pages)."""
    if cursor is not None:
        after = cursor.get("campaign_id")
        if set(cursor) != {"campaign_id"} or not isinstance(after, dict) or not isinstance(after.get("S"), str):
            raise InvalidRequestError("cursor", "is not a cursor this API gave out")
    page = Campaign.scan(limit=limit, last_evaluated_key=cursor)
    items = [campaign_view(found, remaining=None, admin=True) for found in page]
    return {"items": items, "nextCursor": page.last_evaluated_key}


def stop_campaign(campaign_id: str, stopped_by: str) -> dict[str, Any]:
    """Stop claims at once: the campaign leaves the listings and every shard is closed."""
    found = campaign(campaign_id, fresh=True)

    def build(txn: Transaction) -> None:
        txn.update(
            found,
            [Campaign.status.set("stopped"), Campaign.listing.remove(), Campaign.stopped_at.set(clock.now())],
            Campaign.campaign_id.exists(),
            label="campaign",
        )
        for shard in range(int(found.shard_count)):
            txn.update(
                StockShard(campaign_id, shard),
                [StockShard.closed.set(True)],
                StockShard.campaign_id.exists(),
                label="shard",
            )

    transact.write(build)
    forget_campaign(campaign_id)
    return admin_campaign(campaign_id)


def _active_campaigns() -> list[Campaign]:
    now = time.monotonic()
    with _cache_lock:
        if _active_list and _active_list[0][0] > now:
            return _active_list[0][1]
    found = list(Campaign.active.query(LISTING))
    with _cache_lock:
        _active_list[:] = [(now + ACTIVE_LIST_SECONDS, found)]
    return found


def open_campaigns(member_id: str, limit: int, cursor: dict[str, Any] | None) -> dict[str, Any]:
    """Campaigns this member can claim or exchange now, with stock left and their own count, by campaign id."""
    from chalicelib.members import service as members

    now = clock.now()
    tier = members.tier_of(member_id)
    after = (cursor or {}).get("after") or ""
    open_now = [
        found
        for found in _active_campaigns()
        if found.channel in ("public", "exchange")
        and found.claim_from <= now < found.claim_to
        and (not found.tiers or tier in found.tiers)
        and found.campaign_id > after
    ]
    page = open_now[:limit]
    keys: list[tuple[type[db.SiyuModel], Any]] = []
    for found in page:
        keys.append((ClaimCount, (member_id, found.campaign_id)))
        keys.extend((StockShard, (found.campaign_id, shard)) for shard in range(int(found.shard_count)))
    items = iter(db.batch_get(keys))
    answer = []
    for found in page:
        count = next(items)
        left = sum(int(shard.remaining) for shard in (next(items) for _ in range(int(found.shard_count))) if shard)
        view = campaign_view(found, remaining=left)
        view["claimed"] = int(count.claimed) if count else 0
        answer.append(view)
    return {"items": answer, "nextCursor": {"after": page[-1].campaign_id} if len(open_now) > limit else None}


def campaign_view(found: Campaign, *, remaining: int | None, admin: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "campaignId": found.campaign_id,
        "title": found.title,
        "kind": found.kind,
        "value": int(found.value),
        "threshold": int(found.threshold or 0),
        "maxOff": int(found.max_off) if found.max_off is not None else None,
        "validFrom": clock.iso(found.valid_from),
        "validTo": clock.iso(found.valid_to),
        "claimFrom": clock.iso(found.claim_from),
        "claimTo": clock.iso(found.claim_to),
        "perMemberLimit": int(found.per_member_limit),
        "tiers": sorted(found.tiers) if found.tiers else None,
        "storeIds": sorted(found.store_ids) if found.store_ids else None,
        "skuIds": sorted(found.sku_ids) if found.sku_ids else None,
        "pointsPrice": int(found.points_price) if found.points_price is not None else None,
        "channel": found.channel,
    }
    if remaining is not None:
        view["remaining"] = remaining
    if admin:
        view.update({
            "totalStock": int(found.total_stock),
            "shardCount": int(found.shard_count),
            "status": found.status,
            "createdAt": clock.iso(found.created_at),
            "stoppedAt": clock.iso(found.stopped_at) if found.stopped_at else None,
        })
        if remaining is not None:
            view["given"] = int(found.total_stock) - remaining
    return view


# --- Coupons -----------------------------------------------------------------------------

def effective_status(coupon: Coupon, now: Any = None) -> str:
    """An available coupon past its end is expired even before the nightly job marks it."""
    if coupon.status == AVAILABLE and coupon.valid_to <= (now or clock.now()):
        return EXPIRED
    return coupon.status


def coupon_view(coupon: Coupon) -> dict[str, Any]:
    status = effective_status(coupon)
    view: dict[str, Any] = {
        "couponId": coupon.coupon_id,
        "campaignId": coupon.campaign_id,
        "title": coupon.title,
        "kind": coupon.kind,
        "value": int(coupon.value),
        "threshold": int(coupon.threshold or 0),
        "maxOff": int(coupon.max_off) if coupon.max_off is not None else None,
        "validFrom": clock.iso(coupon.valid_from),
        "validTo": clock.iso(coupon.valid_to),
        "storeIds": sorted(coupon.store_ids) if coupon.store_ids else None,
        "skuIds": sorted(coupon.sku_ids) if coupon.sku_ids else None,
        "status": status,
        "source": coupon.source,
        "createdAt": clock.iso(coupon.created_at),
    }
    if status == LOCKED:
        view["orderId"] = coupon.order_id
    if status == USED:
        view["usedAt"] = clock.iso(coupon.used_at) if coupon.used_at else None
        view["storeId"] = coupon.used_store_id
        view["orderId"] = coupon.used_order_id
    return view


def get_coupon(member_id: str, coupon_id: str) -> Coupon:
    """The member's own coupon; another member's is not found, as a missing one."""
    if not _ID.match(coupon_id):
        raise CouponNotFoundError()
    try:
        return Coupon.get(member_id, coupon_id, consistent_read=True)
    except DoesNotExist as exc:
        raise CouponNotFoundError() from exc


def _status_filter(status: str | None, now: Any) -> Any:
    if status is None:
        return None
    if status == AVAILABLE:
        return (Coupon.status == AVAILABLE) & (Coupon.valid_to > now)
    if status == EXPIRED:
        return (Coupon.status == EXPIRED) | ((Coupon.status == AVAILABLE) & (Coupon.valid_to <= now))
    return Coupon.status == status


def member_coupons(member_id: str, status: str | None, limit: int, cursor: dict[str, Any] | None) -> dict[str, Any]:
    """The member's coupons, newest first, optionally of one status."""
    start = cursor
    start_key = None
    if start is not None:
        after = start.get("c")
        if not isinstance(after, str):
            raise InvalidRequestError("cursor", "is not a cursor this API gave out")
        start_key = {"member_id": {"S": member_id}, "coupon_id": {"S": after}}
    results = Coupon.query(
        member_id,
        filter_condition=_status_filter(status, clock.now()),
        scan_index_forward=False,
        consistent_read=True,
        last_evaluated_key=start_key,
        page_size=max(limit, 25),
    )
    items: list[dict[str, Any]] = []
    last: Coupon | None = None
    more = False
    for coupon in results:
        if len(items) == limit:
            more = True
            break
        items.append(coupon_view(coupon))
        last = coupon
    next_cursor = {"c": last.coupon_id} if more and last else None
    return {"items": items, "nextCursor": next_cursor}


# --- Figures ------------------------------------------------------------------------------
# Counted on the sparse per-day indexes, shard by shard (Select=COUNT), never by a scan.

def claimed_on(day: dt.date) -> int:
    """Coupons members received on a Shanghai day: claimed, exchanged for points or given by a guide."""
    return sum(Coupon.claimed_on_day.count(key) for key in day_keys(day))


def redeemed_on(day: dt.date) -> int:
    """Coupons used on a Shanghai day, in a store (核销) or by a paid order, and still used."""
    return sum(Coupon.redeemed_on_day.count(key) for key in day_keys(day))


def unused_since(member_id: str, since: dt.datetime) -> int:
    """Coupons the member received since `since` and has not used yet (nor let expire)."""
    unused = (Coupon.status == AVAILABLE) & (Coupon.created_at >= since)
    return Coupon.count(member_id, filter_condition=unused)
