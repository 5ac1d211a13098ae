"""The coupon tables.

- `coupon-campaigns`: one item per campaign, its settings (immutable once
  created, except its status). Read rarely and cached per container.
- `coupon-stock`: the campaign's stock split over shards, one item per
  (campaign, shard). A claim takes one unit from one shard, so a launch's
  writes spread over `shard_count` items instead of one.
- `coupon-claims`: how many coupons of a campaign a member holds, per
  (member, campaign): the per-member limit is a condition on this item.
- `coupons`: the coupons, keyed (member, coupon): a member's coupons are one
  partition, and a coupon can only be addressed together with its owner.
"""

from __future__ import annotations

import datetime as dt
import zlib

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection

from chalicelib.db import SiyuModel

__all__ = [
    "Campaign",
    "ActiveCampaigns",
    "StockShard",
    "ClaimCount",
    "Coupon",
    "OpenCouponsByExpiry",
    "CouponsClaimedOnDay",
    "CouponsRedeemedOnDay",
    "EXPIRY_SHARDS",
    "expiry_shard",
    "DAY_SHARDS",
    "day_key",
    "day_keys",
    "AVAILABLE",
    "LOCKED",
    "USED",
    "EXPIRED",
]

AVAILABLE, LOCKED, USED, EXPIRED = "available", "locked", "used", "expired"
# The expiry index is spread over this many partitions so a launch's coupon
# writes do not all land on one index partition.
EXPIRY_SHARDS = 16


def expiry_shard(coupon_id: str) -> str:
    """The expiry-index partition of a coupon, from the random tail of its id."""
    return f"{int(coupon_id[-8:], 16) % EXPIRY_SHARDS:02d}"


# A day's claims (and redemptions) are spread over this many index partitions: a launch's rush is not one hot key.
DAY_SHARDS = 8


def day_key(day: dt.date, coupon_id: str) -> str:
    """The `claimed-day` / `redeemed-day` index key of a coupon claimed or redeemed on `day` (Shanghai)."""
    return f"{day.isoformat()}#{zlib.crc32(coupon_id.encode()) % DAY_SHARDS}"


def day_keys(day: dt.date) -> list[str]:
    """Every index key of a Shanghai day, for a reader of the day."""
    return [f"{day.isoformat()}#{shard}" for shard in range(DAY_SHARDS)]


class ActiveCampaigns(GlobalSecondaryIndex):
    """Sparse: only campaigns whose `listing` is set (active ones) are in it."""

    class Meta:
        index_name = "active"
        projection = AllProjection()

    listing = UnicodeAttribute(hash_key=True)
    campaign_id = UnicodeAttribute(range_key=True)


class Campaign(SiyuModel):
    class Meta:
        table = "coupon-campaigns"

    campaign_id = UnicodeAttribute(hash_key=True)
    title = UnicodeAttribute()
    kind = UnicodeAttribute()  # cash, discount, service
    value = NumberAttribute()  # cash: fen off; discount: percent paid; service: the service's worth in fen
    threshold = NumberAttribute(default=0)
    max_off = NumberAttribute(null=True)
    total_stock = NumberAttribute()
    shard_count = NumberAttribute()
    per_member_limit = NumberAttribute()
    valid_from = UTCDateTimeAttribute()
    valid_to = UTCDateTimeAttribute()
    claim_from = UTCDateTimeAttribute()
    claim_to = UTCDateTimeAttribute()
    tiers = UnicodeSetAttribute(null=True)
    store_ids = UnicodeSetAttribute(null=True)
    sku_ids = UnicodeSetAttribute(null=True)
    points_price = NumberAttribute(null=True)
    channel = UnicodeAttribute()  # public, guide, exchange
    status = UnicodeAttribute(default="active")  # active, stopped, ended
    listing = UnicodeAttribute(null=True)
    created_by = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    stopped_at = UTCDateTimeAttribute(null=True)

    active = ActiveCampaigns()


class StockShard(SiyuModel):
    """One slice of a campaign's stock. `closed` is set when an admin stops the campaign."""

    class Meta:
        table = "coupon-stock"

    campaign_id = UnicodeAttribute(hash_key=True)
    shard = NumberAttribute(range_key=True)
    remaining = NumberAttribute()
    closed = BooleanAttribute(null=True)


class ClaimCount(SiyuModel):
    """Coupons of one campaign a member has received (claimed, exchanged or given)."""

    class Meta:
        table = "coupon-claims"

    member_id = UnicodeAttribute(hash_key=True)
    campaign_id = UnicodeAttribute(range_key=True)
    claimed = NumberAttribute(default=0)


class OpenCouponsByExpiry(GlobalSecondaryIndex):
    """Sparse: coupons still open (available or locked) by end of validity, for the expiry job."""

    class Meta:
        index_name = "open-by-expiry"
        projection = AllProjection()

    open_shard = UnicodeAttribute(hash_key=True)
    valid_to = UTCDateTimeAttribute(range_key=True)


class CouponsClaimedOnDay(GlobalSecondaryIndex):
    """Sparse: coupons by the Shanghai day they were received (`<YYYY-MM-DD>#<shard>`), counted by the
    daily report. Keys only: a count needs nothing else."""

    class Meta:
        index_name = "claimed-day"
        projection = KeysOnlyProjection()

    claimed_day = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class CouponsRedeemedOnDay(GlobalSecondaryIndex):
    """Sparse: coupons used (in a store or by a paid order) by the Shanghai day of `used_at`; a coupon
    given back by a refund leaves it, as it loses `used_at`."""

    class Meta:
        index_name = "redeemed-day"
        projection = KeysOnlyProjection()

    redeemed_day = UnicodeAttribute(hash_key=True)
    used_at = UTCDateTimeAttribute(range_key=True)


class LockedCoupons(GlobalSecondaryIndex):
    """Sparse: the coupons an order holds now (`locked_shard` is set with the lock and removed with
    it), so the audit of locks reads only those."""

    class Meta:
        index_name = "locked"
        projection = IncludeProjection(["order_id"])

    locked_shard = UnicodeAttribute(hash_key=True)
    coupon_id = UnicodeAttribute(range_key=True)


class Coupon(SiyuModel):
    """A member's coupon; the campaign's terms are copied in so checkout and redemption read one item."""

    class Meta:
        table = "coupons"

    member_id = UnicodeAttribute(hash_key=True)
    coupon_id = UnicodeAttribute(range_key=True)  # time-ordered: newest sorts last
    campaign_id = UnicodeAttribute()
    title = UnicodeAttribute()
    kind = UnicodeAttribute()
    value = NumberAttribute()
    threshold = NumberAttribute(default=0)
    max_off = NumberAttribute(null=True)
    valid_from = UTCDateTimeAttribute()
    valid_to = UTCDateTimeAttribute()
    store_ids = UnicodeSetAttribute(null=True)
    sku_ids = UnicodeSetAttribute(null=True)
    source = UnicodeAttribute()  # claim, exchange, guide
    given_by = UnicodeAttribute(null=True)
    status = UnicodeAttribute(default=AVAILABLE)
    open_shard = UnicodeAttribute(null=True)
    order_id = UnicodeAttribute(null=True)
    locked_at = UTCDateTimeAttribute(null=True)
    locked_shard = UnicodeAttribute(null=True)  # while locked
    used_at = UTCDateTimeAttribute(null=True)
    used_store_id = UnicodeAttribute(null=True)
    used_order_id = UnicodeAttribute(null=True)
    expired_at = UTCDateTimeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    claimed_day = UnicodeAttribute(null=True)  # `<Shanghai day>#<shard>` of `created_at`
    redeemed_day = UnicodeAttribute(null=True)  # `<Shanghai day>#<shard>` of `used_at`, while used

    open_by_expiry = OpenCouponsByExpiry()
    claimed_on_day = CouponsClaimedOnDay()
    redeemed_on_day = CouponsRedeemedOnDay()
    locked = LockedCoupons()
