"""Tiers: 体验官, 探索者, 极客玩家, 黑金大使 by trailing 12-month spend and activity.

Activity (check-ins, orders, approved reviews) and order spend are tallied per
member per month (`PointsActivity`) in the same transaction as the points they
earn, and added to running figures on the balance item, which `GET /members/me`
shows as progress. The daily `tier-review` recomputes the trailing figures from
the months, corrects the running ones and moves members up or down.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pynamodb.exceptions import UpdateError

from chalicelib import clock
from chalicelib.points.config import Tier, points_config
from chalicelib.points.models import SYSTEM_PREFIX, PointsActivity, PointsBalance

__all__ = ["tier_for", "progress", "trailing_months", "review"]


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


def _set_member_tier(member_id: str, tier: str) -> bool:
    from chalicelib.members.models import Member

    try:
        Member(member_id).update(actions=[Member.tier.set(tier)], condition=Member.member_id.exists())
    except UpdateError:
        return False
    return True


def review(moment: dt.datetime) -> dict[str, int]:
    """Recompute every member's trailing figures and tier; counts of what changed."""
    config = points_config()
    first_month = trailing_months(moment)
    order = {tier.code: index for index, tier in enumerate(config.tiers)}
    counts = {"checked": 0, "upgraded": 0, "downgraded": 0}
    for balance in PointsBalance.scan(consistent_read=True):
        if balance.account_id.startswith(SYSTEM_PREFIX):
            continue
        counts["checked"] += 1
        spend, activity = _figures(balance.account_id, first_month)
        tier = tier_for(spend, activity).code
        was = balance.tier or config.tiers[0].code
        balance.update(
            actions=[
                PointsBalance.tier.set(tier),
                PointsBalance.tier_spend_fen.set(spend),
                PointsBalance.tier_activity.set(activity),
                PointsBalance.tier_reviewed_at.set(moment),
            ],
            condition=PointsBalance.account_id.exists(),
        )
        if tier != was and _set_member_tier(balance.account_id, tier):
            counts["upgraded" if order[tier] > order[was] else "downgraded"] += 1
    return counts
