"""The ledger's tables: transfers (immutable), balances (with their lots), caps, activity.

A member's balance item is the whole of its spendable state: `available`,
`pending`, a `version` counting the transfers applied, and one attribute per
lot, `lot_<YYYY-MM-DD>` (the Shanghai day the lot's points expire at the end
of). A member holds a handful of lots, so a spend plan is one GetItem and a
spend's conditions all sit on one item. System accounts (`issued`, `spent`,
`expired`, ...) are split over shards (`sys:spent#07`) so that no single item
takes every transfer's write.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import MapAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import AllProjection, LocalSecondaryIndex

from chalicelib.db import SiyuModel

__all__ = [
    "LOT_PREFIX",
    "SYSTEM_PREFIX",
    "lot_attribute",
    "PointsTransfer",
    "TransfersByTime",
    "PointsBalance",
    "PointsCap",
    "PointsActivity",
]

LOT_PREFIX = "lot_"
SYSTEM_PREFIX = "sys:"


def lot_attribute(expires_on: str) -> str:
    """The balance attribute holding the lot that expires at the end of `expires_on`."""
    return f"{LOT_PREFIX}{expires_on}"


class TransfersByTime(LocalSecondaryIndex):
    """A member's transfers, newest first, read consistently (a local index allows it)."""

    class Meta:
        index_name = "by-time"
        projection = AllProjection()

    account_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class PointsTransfer(SiyuModel):
    """One movement between a member's account and a system account; never changed.

    `transfer_id` is the effect's natural key (`checkin#<member>#<day>`,
    `order#<id>#earn`, `adjust#<uuid>`), written with `attribute_not_exists`.
    `delta` is what the transfer did to the member's available points,
    `pending_delta` to its pending points; `lots` maps each lot's expiry day to
    the points the transfer put in (earn) or took out (spend, expiry) of it.
    """

    class Meta:
        table = "points-transfers"

    account_id = UnicodeAttribute(hash_key=True)
    transfer_id = UnicodeAttribute(range_key=True)
    counterparty = UnicodeAttribute()  # issued, spent, expired, clawback, adjustment, merge
    kind = UnicodeAttribute()  # posted, pending, post, void
    delta = NumberAttribute(default=0)
    pending_delta = NumberAttribute(default=0)
    lots = MapAttribute(null=True)
    reason = UnicodeAttribute()
    reference = UnicodeAttribute(null=True)
    expires_on = UnicodeAttribute(null=True)  # the lot an earn (or a pending earn) goes to
    pending_id = UnicodeAttribute(null=True)  # a post or void names its pending transfer
    spend_fen = NumberAttribute(null=True)  # order spend counted toward tiers, undone by a void
    activity_month = UnicodeAttribute(null=True)
    actor = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()

    by_time = TransfersByTime()

    def lot_amounts(self) -> dict[str, int]:
        return {day: int(amount) for day, amount in (self.lots.as_dict() if self.lots else {}).items()}


class PointsBalance(SiyuModel):
    """A member's balance and lots, or one shard of a system account's balance."""

    class Meta:
        table = "points-balances"

    account_id = UnicodeAttribute(hash_key=True)
    available = NumberAttribute(default=0)
    pending = NumberAttribute(default=0)
    version = NumberAttribute(default=0)
    last_checkin = UnicodeAttribute(null=True)  # Shanghai day
    streak = NumberAttribute(null=True)
    # Trailing figures for tiers: added to as activity happens, recomputed by tier-review.
    tier = UnicodeAttribute(null=True)
    tier_spend_fen = NumberAttribute(null=True)
    tier_activity = NumberAttribute(null=True)
    tier_reviewed_at = UTCDateTimeAttribute(null=True)

    lots: dict[str, int]

    @classmethod
    def from_raw_data(cls, data: dict[str, Any]) -> PointsBalance:  # type: ignore[override]
        balance = super().from_raw_data(data)
        balance.lots = {
            name[len(LOT_PREFIX):]: int(value["N"])
            for name, value in data.items()
            if name.startswith(LOT_PREFIX) and "N" in value
        }
        return balance

    @classmethod
    def empty(cls, account_id: str) -> PointsBalance:
        balance = cls(account_id)
        balance.lots = {}
        return balance

    def sorted_lots(self) -> list[tuple[str, int]]:
        """The lots holding points, soonest expiry first."""
        return sorted((day, amount) for day, amount in getattr(self, "lots", {}).items() if amount > 0)


class PointsCap(SiyuModel):
    """How often an earning rule paid a member in a period (`<member>#<rule>#<day>`)."""

    class Meta:
        table = "points-caps"

    key = UnicodeAttribute(hash_key=True)
    count = NumberAttribute(default=0)
    expires = TTLAttribute(null=True)


class PointsActivity(SiyuModel):
    """A member's spend and activity in one month (`YYYY-MM`), for tier reviews."""

    class Meta:
        table = "points-activity"

    member_id = UnicodeAttribute(hash_key=True)
    month = UnicodeAttribute(range_key=True)
    spend_fen = NumberAttribute(default=0)
    actions = NumberAttribute(default=0)
