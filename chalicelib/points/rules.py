"""Earning rules: what check-ins, profiles, reviews, referrals and orders are worth."""

from __future__ import annotations

import datetime as dt

from chalicelib import clock
from chalicelib.points.config import points_config

__all__ = ["checkin_award", "order_points", "day_multiplier_pct", "cap_key", "month_of"]


def checkin_award(streak: int) -> int:
    rule = points_config().checkin
    return rule.points + rule.bonus(streak)


def day_multiplier_pct(birthday: str | None, day: dt.date) -> int:
    """The day's bonus multiplier (percent): birthday (生日N倍积分) and member day (会员日积分翻倍)."""
    config = points_config()
    multipliers = []
    if birthday and len(birthday) >= 10:
        same_month = birthday[5:7] == f"{day.month:02d}"
        if same_month and (config.birthday_scope == "month" or birthday[8:10] == f"{day.day:02d}"):
            multipliers.append(config.birthday_multiplier_pct)
    if day.day in config.member_days:
        multipliers.append(config.member_day_multiplier_pct)
    if not multipliers:
        return 100
    if not config.stack_day_multipliers:
        return max(multipliers)
    combined = 100
    for pct in multipliers:
        combined = combined * pct // 100
    return combined


def order_points(paid_fen: int, tier: str | None, birthday: str | None = None, at: dt.datetime | None = None) -> int:
    """Points for an order: per yuan paid, times the tier's and the day's multipliers, rounded down."""
    config = points_config()
    day = clock.shanghai_date(at)
    tier_pct = config.tier(tier).order_multiplier_pct
    return max(0, paid_fen) * config.order_points_per_yuan * tier_pct * day_multiplier_pct(birthday, day) // 1_000_000


def cap_key(member_id: str, rule: str, day: dt.date) -> str:
    return f"{member_id}#{rule}#{day.isoformat()}"


def month_of(moment: dt.datetime) -> str:
    return clock.shanghai_date(moment).strftime("%Y-%m")
