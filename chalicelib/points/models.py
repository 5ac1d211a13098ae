"""The ledger's tables: transfers (immutable), balances (with their lots), caps, activity.

A member's balance item is the whole of its spendable state: `available`,
`pending`, a `version` counting the transfers applied, and its lots laid end
to end on a line, soonest expiry first:

    lot_<YYYY-MM-DD>   how much of the line that lot occupies (the Shanghai day
                       its points expire at the end of)
    origin             where the line starts
    consumed           how far spending has eaten into it (never goes back)
    newest_lot         the last lot on the line: a credit to it or a later one
                       extends the line without disturbing what lies behind

A lot holds what of its stretch lies beyond `consumed`. A spend therefore
needs no plan: it moves `consumed` forward, which takes the soonest-expiring
points first however many lots that crosses, and records where it started
(`at_<transfer id>`), which says exactly what it took from each lot. What
cannot extend the line (a credit to an earlier lot, an expiry, a merge)
reads the balance and lays the line anew from `consumed` on, keeping the old
line's lots as `line_<origin>_<day>` when spends recorded on it need them.

System accounts (`issued`, `spent`, `expired`, `frozen`, ...) are split over
shards (`sys:spent#07`) so that no single item takes every transfer's write.

Points an unpaid order uses are a hold: a spend to the `frozen` account (kind
`hold`, moving `consumed` like any spend, so its lots are known), resolved
once by `<hold>#resolve`: a post (kind `post`, delta 0) settles them from
`frozen` to `spent`; a void (kind `void`) gives them back to their lots. A
paid order's refund returns them from `spent` (`<hold>#return`).
"""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any

from pynamodb.attributes import MapAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import (
    AllProjection,
    GlobalSecondaryIndex,
    IncludeProjection,
    KeysOnlyProjection,
    LocalSecondaryIndex,
)

from chalicelib.db import SiyuModel

__all__ = [
    "LOT_PREFIX",
    "SYSTEM_PREFIX",
    "lot_attribute",
    "PointsTransfer",
    "TransfersByTime",
    "TransfersOnDay",
    "DAY_SHARDS",
    "day_key",
    "day_keys",
    "ACCOUNT_SHARDS",
    "account_shard",
    "account_shards",
    "PointsBalance",
    "PointsCap",
    "PointsActivity",
    "month_key",
]

LOT_PREFIX = "lot_"
POSITION_PREFIX = "at_"
LINE_PREFIX = "line_"
SYSTEM_PREFIX = "sys:"


def lot_attribute(expires_on: str) -> str:
    """The balance attribute holding the lot that expires at the end of `expires_on`."""
    return f"{LOT_PREFIX}{expires_on}"


def position_attribute(transfer_id: str) -> str:
    """The balance attribute holding where on the line a spend started."""
    return f"{POSITION_PREFIX}{transfer_id}"


def line_attribute(origin: int, expires_on: str) -> str:
    """The balance attribute keeping a lot of a line laid anew since, by where that line started."""
    return f"{LINE_PREFIX}{origin}_{expires_on}"


def _stretches(lots: dict[str, int], start: int) -> list[tuple[str, int, int]]:
    """The lots laid end to end from `start`, soonest expiry first: (day, from, to)."""
    laid = []
    for day in sorted(lots):
        laid.append((day, start, start + lots[day]))
        start += lots[day]
    return laid


# A day's transfers are spread over this many index partitions: a day of check-ins is not one hot key.
DAY_SHARDS = 8


def day_key(day: dt.date, account_id: str, transfer_id: str) -> str:
    """The `day` index key of a transfer made on `day` (Shanghai), by the hash of its full key."""
    return f"{day.isoformat()}#{zlib.crc32(f'{account_id}#{transfer_id}'.encode()) % DAY_SHARDS}"


def day_keys(day: dt.date) -> list[str]:
    """Every `day` index key of a Shanghai day, for a reader of the day."""
    return [f"{day.isoformat()}#{shard}" for shard in range(DAY_SHARDS)]


# The sparse "due" indexes of balances and activity are spread over this many partitions, by account.
ACCOUNT_SHARDS = 16


def account_shard(account_id: str) -> str:
    """The partition of an account in the sparse due indexes (stable per account)."""
    return f"{zlib.crc32(account_id.encode()) % ACCOUNT_SHARDS:02d}"


def account_shards() -> list[str]:
    return [f"{shard:02d}" for shard in range(ACCOUNT_SHARDS)]


class TransfersByTime(LocalSecondaryIndex):
    """A member's transfers, newest first, read consistently (a local index allows it)."""

    class Meta:
        index_name = "by-time"
        projection = AllProjection()

    account_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class TransfersOnDay(GlobalSecondaryIndex):
    """Sparse: every transfer by the Shanghai day it was made (`<YYYY-MM-DD>#<shard>`), with what it
    did to the system accounts. The system accounts keep balances, not entries, so this is how a
    day's points issued, spent and expired are read (the daily report) without a scan."""

    class Meta:
        index_name = "day"
        projection = IncludeProjection(
            ["counterparty", "kind", "delta", "pending_delta", "settled", "settled_from", "settled_to"]
        )

    created_day = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class PointsTransfer(SiyuModel):
    """One movement between a member's account and a system account; never changed.

    `transfer_id` is the effect's natural key (`checkin#<member>#<day>`,
    `order#<id>#earn`, `adjust#<uuid>`), written with `attribute_not_exists`.
    `delta` is what the transfer did to the member's available points,
    `pending_delta` to its pending points; `lots` maps each lot's expiry day to
    the points the transfer put in (earn) or took out (spend, expiry) of it.
    `settled` points moved between two system accounts without touching the
    member's (`settled_from` -> `settled_to`), booked in the same transaction.
    """

    class Meta:
        table = "points-transfers"

    account_id = UnicodeAttribute(hash_key=True)
    transfer_id = UnicodeAttribute(range_key=True)
    counterparty = UnicodeAttribute()  # issued, spent, expired, clawback, adjustment, merge, frozen
    kind = UnicodeAttribute()  # posted, pending, hold, post, void
    delta = NumberAttribute(default=0)
    pending_delta = NumberAttribute(default=0)
    lots = MapAttribute(null=True)
    reason = UnicodeAttribute()
    reference = UnicodeAttribute(null=True)
    expires_on = UnicodeAttribute(null=True)  # the lot an earn (or a pending earn) goes to
    pending_id = UnicodeAttribute(null=True)  # a post or void names its pending transfer (or hold)
    # Points the transfer moved between two system accounts, from `settled_from` to `settled_to`
    # (a hold's post: frozen -> spent; a hold's points whose lot expired meanwhile: -> expired).
    settled = NumberAttribute(null=True)
    settled_from = UnicodeAttribute(null=True)
    settled_to = UnicodeAttribute(null=True)
    shortfall = NumberAttribute(null=True)  # a clawback: the points it could not take back (spent already)
    spend_fen = NumberAttribute(null=True)  # order spend counted toward tiers, undone by a void
    activity_month = UnicodeAttribute(null=True)
    actor = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    created_day = UnicodeAttribute(null=True)  # `<Shanghai day>#<shard>` of `created_at`

    by_time = TransfersByTime()
    on_day = TransfersOnDay()

    def lot_amounts(self) -> dict[str, int]:
        return {day: int(amount) for day, amount in (self.lots.as_dict() if self.lots else {}).items()}

    def settlement(self) -> tuple[str, str, int] | None:
        """(from, to, points) the transfer moved between system accounts, if it did."""
        if not self.settled or not self.settled_from or not self.settled_to:
            return None
        return self.settled_from, self.settled_to, int(self.settled)


class BalancesByExpiry(GlobalSecondaryIndex):
    """Sparse: member balances by the day of their soonest lot (`next_expiry`), so the expiry job
    reads only balances with a lot due. The day may be early (a spend emptied that lot), never
    late: every write that lays a lot sooner than it sets it."""

    class Meta:
        index_name = "expiry-due"
        projection = KeysOnlyProjection()

    expiry_shard = UnicodeAttribute(hash_key=True)
    next_expiry = UnicodeAttribute(range_key=True)


class BalancesDueForReview(GlobalSecondaryIndex):
    """Sparse: the members whose trailing figures moved since their last tier review (`review_due`
    is set by every activity write and removed by the review that counts it)."""

    class Meta:
        index_name = "review-due"
        projection = KeysOnlyProjection()

    review_due = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute(range_key=True)


class PointsBalance(SiyuModel):
    """A member's balance and lots, or one shard of a system account's balance."""

    class Meta:
        table = "points-balances"

    account_id = UnicodeAttribute(hash_key=True)
    available = NumberAttribute(default=0)
    pending = NumberAttribute(default=0)
    version = NumberAttribute(default=0)
    origin = NumberAttribute(null=True)
    consumed = NumberAttribute(null=True)
    newest_lot = UnicodeAttribute(null=True)
    last_checkin = UnicodeAttribute(null=True)  # Shanghai day
    streak = NumberAttribute(null=True)
    # Trailing figures for tiers: added to as activity happens, recomputed by tier-review.
    tier_spend_fen = NumberAttribute(null=True)
    tier_activity = NumberAttribute(null=True)
    tier_reviewed_at = UTCDateTimeAttribute(null=True)
    next_expiry = UnicodeAttribute(null=True)  # the soonest lot's day, or earlier
    expiry_shard = UnicodeAttribute(null=True)
    review_due = UnicodeAttribute(null=True)  # the account's shard, while its figures await a review

    by_expiry = BalancesByExpiry()
    due_for_review = BalancesDueForReview()

    lots: dict[str, int]  # day -> length of its stretch on the line
    positions: dict[str, int]  # spend transfer id -> where on the line it started
    lines: dict[int, dict[str, int]]  # origin -> the lots of a line laid anew since

    @classmethod
    def from_raw_data(cls, data: dict[str, Any]) -> PointsBalance:  # type: ignore[override]
        balance = super().from_raw_data(data)
        balance.lots, balance.positions, balance.lines = {}, {}, {}
        for name, value in data.items():
            if name.startswith(LOT_PREFIX) and "N" in value:
                balance.lots[name[len(LOT_PREFIX):]] = int(value["N"])
            elif name.startswith(POSITION_PREFIX) and "N" in value:
                balance.positions[name[len(POSITION_PREFIX):]] = int(value["N"])
            elif name.startswith(LINE_PREFIX) and "N" in value:
                origin, day = name[len(LINE_PREFIX):].split("_", 1)
                balance.lines.setdefault(int(origin), {})[day] = int(value["N"])
        return balance

    @classmethod
    def empty(cls, account_id: str) -> PointsBalance:
        balance = cls(account_id)
        balance.lots, balance.positions, balance.lines = {}, {}, {}
        return balance

    @property
    def start(self) -> int:
        return int(self.origin or 0)

    @property
    def cursor(self) -> int:
        return int(self.consumed or 0)

    def remaining_lots(self) -> dict[str, int]:
        """What each lot still holds (the part of its stretch beyond `consumed`), soonest first."""
        cursor = self.cursor
        return {
            day: end - max(begin, cursor)
            for day, begin, end in _stretches(self.lots, self.start)
            if end > cursor
        }

    def sorted_lots(self) -> list[tuple[str, int]]:
        """The lots holding points, soonest expiry first."""
        return list(self.remaining_lots().items())

    def taken_by(self, transfer_id: str, points: int) -> dict[str, int] | None:
        """What a spend took from each lot, from where it started on the line (None: not recorded)."""
        begin = self.positions.get(transfer_id)
        if begin is None:
            return None
        origins = sorted(origin for origin in [self.start, *self.lines] if origin <= begin)
        if not origins:
            return None
        line_start = origins[-1]
        lots = self.lots if line_start == self.start else self.lines[line_start]
        end = begin + points
        taken = {
            day: min(end, to) - max(begin, start)
            for day, start, to in _stretches(lots, line_start)
            if start < end and to > begin
        }
        return taken if sum(taken.values()) == points else None


class PointsCap(SiyuModel):
    """How often an earning rule paid a member in a period (`<member>#<rule>#<day>`)."""

    class Meta:
        table = "points-caps"

    key = UnicodeAttribute(hash_key=True)
    count = NumberAttribute(default=0)
    expires = TTLAttribute(null=True)


class ActivityByMonth(GlobalSecondaryIndex):
    """Every member with activity in a month (`<YYYY-MM>#<shard>`): those whose figures move when
    that month leaves the trailing window."""

    class Meta:
        index_name = "by-month"
        projection = KeysOnlyProjection()

    month_shard = UnicodeAttribute(hash_key=True)
    member_id = UnicodeAttribute(range_key=True)


def month_key(month: str, member_id: str) -> str:
    return f"{month}#{account_shard(member_id)}"


class PointsActivity(SiyuModel):
    """A member's spend and activity in one month (`YYYY-MM`), for tier reviews."""

    class Meta:
        table = "points-activity"

    member_id = UnicodeAttribute(hash_key=True)
    month = UnicodeAttribute(range_key=True)
    spend_fen = NumberAttribute(default=0)
    actions = NumberAttribute(default=0)
    month_shard = UnicodeAttribute(null=True)

    by_month = ActivityByMonth()
