"""The daily tier review: each member's tier moves in one transaction with the figures it follows from.

Points sums the trailing figures (conditioned on the balance's version);
members holds the tier (conditioned on the tier the review read). The review
compares what the figures reach with the member's tier as it is, not with
what an earlier run wrote, so a member whose tier is stale is put right.
"""

from __future__ import annotations

import datetime as dt

from chalicelib import transact
from chalicelib.members import service as members
from chalicelib.points import service as points
from chalicelib.points.models import PointsBalance
from chalicelib.transact import Transaction

__all__ = ["review", "review_page"]


def review(moment: dt.datetime) -> dict[str, int]:
    """Review, as of `moment`, the members whose figures moved: counts of what changed.

    Those are the members an activity write marked since their last review,
    and at a month's turn those with activity in the month that left the
    trailing window (marked once, by the first run of the month); the
    `review-due` index's shards side by side.
    """
    queued = points.queue_window_exits(moment)
    return {"queued": queued, **points.across_shards(lambda shard: _review_shard(shard, moment))}


def _review_shard(shard: str, moment: dt.datetime) -> dict[str, int]:
    counts = {"checked": 0, "upgraded": 0, "downgraded": 0}
    for page in points.balances_due_for_review(shard):
        review_page(page, moment, counts)
    return counts


def review_page(page: list[PointsBalance], moment: dt.datetime, counts: dict[str, int]) -> None:
    """Review these members (their balances as read), adding to `counts`."""
    tiers = members.tiers_of(balance.account_id for balance in page)
    for balance in page:
        counts["checked"] += 1
        moved = _review(balance, tiers.get(balance.account_id), moment)
        if moved is not None:
            counts[moved] += 1


def _review(balance: PointsBalance, was: str | None, moment: dt.datetime) -> str | None:
    """One member's review; `was` is its tier as read (None: a ledger account with no member)."""

    def build(txn: Transaction) -> str | None:
        nonlocal was
        refusal = txn.previous_refusal
        if refusal is not None and refusal.refused("member"):
            was = getattr(refusal.item("member"), "tier", None)
        tier = points.add_tier_review(txn, balance, moment)
        if was is None or tier == was:
            return None
        members.set_tier(txn, balance.account_id, tier, was=was, label="member")
        return points.tier_change(was, tier)

    return transact.write(build, replan=True)
