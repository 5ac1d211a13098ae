"""Tiers: 体验官, 探索者, 极客玩家, 黑金大使 by trailing 12-month spend and activity.

Activity (check-ins, orders, approved reviews) and order spend are tallied per
member per month (`PointsActivity`) in the same transaction as the points they
earn, and added to running figures on the balance item, which `GET /members/me`
shows as progress. The daily `tier-review` recomputes the trailing figures from
the months (`add_review`) and, in the same transaction, sets the member's tier
they reach: the tier itself is the member's (members domain), and moves only
with the figures it follows from.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from chalicelib import clock, runs
from chalicelib.points.config import Tier, points_config
from chalicelib.points.ledger import mark_for_review, version_is
from chalicelib.points.models import PointsActivity, PointsBalance, account_shards
from chalicelib.transact import Transaction

__all__ = ["REVIEW_LABEL", "tier_for", "progress", "trailing_months", "add_review", "queue_window_exits", "change"]

REVIEW_LABEL = "tier-figures"


def tier_for(spend_fen: int, activity: int) -> Tier:
    """The highest tier whose spend and activity thresholds are both met."""
    reached = points_config().tiers[0]
    for tier in points_config().tiers:
        if spend_fen >= tier.min_spend_fen and activity >= tier.min_activity:
            reached = tier
    return reached


def progress(tier_code: str | None, balance: PointsBalance | None) -> dict[str, Any]:
    """The member's tier, its benefits and what the next tier still asks for."""
    config = points_config()
    current = config.tier(tier_code)
    index = config.tiers.index(current)
    spend = int(balance.tier_spend_fen or 0) if balance is not None else 0
    activity = int(balance.tier_activity or 0) if balance is not None else 0
    following = config.tiers[index + 1] if index + 1 < len(config.tiers) else None
    return {
        "spendFen": max(0, spend),
        "activity": max(0, activity),
        "windowMonths": config.tier_window_months,
        "orderMultiplierPct": current.order_multiplier_pct,
        "benefits": current.benefits,
        "next": None if following is None else {
            "tier": following.code,
            "tierName": following.name,
            "spendFen": following.min_spend_fen,
            "activity": following.min_activity,
            "spendToGoFen": max(0, following.min_spend_fen - spend),
            "activityToGo": max(0, following.min_activity - activity),
        },
        "reviewedAt": clock.iso(balance.tier_reviewed_at) if balance is not None and balance.tier_reviewed_at else None,
    }


def trailing_months(moment: dt.datetime) -> str:
    """The first month (`YYYY-MM`) inside the trailing window ending with `moment`'s month."""
    day = clock.shanghai_date(moment)
    months = day.year * 12 + day.month - 1 - (points_config().tier_window_months - 1)
    return f"{months // 12:04d}-{months % 12 + 1:02d}"


def _figures(member_id: str, first_month: str) -> tuple[int, int]:
    spend = activity = 0
    for month in PointsActivity.query(member_id, PointsActivity.month >= first_month, consistent_read=True):
        spend += int(month.spend_fen or 0)
        activity += int(month.actions or 0)
    return spend, activity


def add_review(txn: Transaction, scanned: PointsBalance, moment: dt.datetime) -> str:
    """Add the member's trailing figures as of `moment` to `txn`; the tier they reach.

    The figures are summed from the months after the balance was read, and
    every earn that tallies a month also moves the balance's version; so the
    write is conditioned on that version, and a refusal's balance is planned
    from again: the figures written never miss an earn.
    """
    refusal = txn.previous_refusal
    balance = refusal.item(REVIEW_LABEL) if refusal is not None and refusal.refused(REVIEW_LABEL) else scanned
    spend, activity = _figures(balance.account_id, trailing_months(moment))
    txn.update(
        PointsBalance(balance.account_id),
        [
            PointsBalance.tier_spend_fen.set(spend),
            PointsBalance.tier_activity.set(activity),
            PointsBalance.tier_reviewed_at.set(moment),
            PointsBalance.review_due.remove(),
        ],
        PointsBalance.account_id.exists() & version_is(int(balance.version or 0)),
        label=REVIEW_LABEL,
    )
    return tier_for(spend, activity).code


# A month that left the window is queued by the first run after it left, or by one of the runs of
# the months after: a month of failed runs loses nothing.
_MONTHS_LOOKED_BACK = 3


def queue_window_exits(moment: dt.datetime) -> int:
    """Mark for review the members with activity in the months that have left the window by `moment`.

    Once per month left: its run record `tier-window#<month>` is written after
    the marks, so a run that stops half-way marks again (a mark is
    idempotent) and a replay marks nothing. How many were marked.
    """
    first = trailing_months(moment)
    index = int(first[:4]) * 12 + int(first[5:]) - 1
    marked = 0
    for back in range(1, _MONTHS_LOOKED_BACK + 1):
        left = f"{(index - back) // 12:04d}-{(index - back) % 12 + 1:02d}"
        if runs.recorded(f"tier-window#{left}", runs.QUEUED) is not None:
            continue
        members = (entry.member_id for shard in account_shards()
                   for entry in PointsActivity.by_month.query(f"{left}#{shard}"))
        queued = mark_for_review(members)
        runs.record(runs.JobRun(f"tier-window#{left}", runs.QUEUED), {"month": left, "marked": queued})
        marked += queued
    return marked


def change(was: str, tier: str) -> str | None:
    """`upgraded`, `downgraded` or None (the same tier)."""
    config = points_config()
    before, after = config.tiers.index(config.tier(was)), config.tiers.index(config.tier(tier))
    if before == after:
        return None
    return "upgraded" if after > before else "downgraded"
