"""Points policy as configuration: earning rules, caps, multipliers, expiry, tiers.

One validated model with the brand's defaults. A stage overrides any part of it
with the JSON in `SIYU_POINTS_CONFIG` (a partial document: its top-level keys
replace the defaults'), and HQ's changes (`PUT /admin/config/points`) replace
those (chalicelib.policy):

    SIYU_POINTS_CONFIG='{"checkin": {"points": 10}, "expiry": {"policy": "days", "days": 365}}'

Multipliers are integer percentages (200 = double) so no float touches points.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from chalicelib import policy

__all__ = [
    "Rule",
    "StreakBonus",
    "CheckinRule",
    "ExpiryPolicy",
    "Tier",
    "PointsConfig",
    "points_config",
    "CONFIG_ENV",
]

CONFIG_ENV = "SIYU_POINTS_CONFIG"


class Rule(BaseModel):
    """An earning rule: its points and how often it may pay a member."""

    points: int = Field(ge=0, le=1_000_000)
    daily_cap: int | None = Field(default=None, ge=1)  # times per Shanghai day; None: no cap


class StreakBonus(BaseModel):
    """Extra points on every `every`-th consecutive day (or only on that day if not `repeat`)."""

    every: int = Field(ge=2)
    bonus: int = Field(ge=0)
    repeat: bool = True


class CheckinRule(BaseModel):
    points: int = Field(default=5, ge=0)
    streak_bonuses: list[StreakBonus] = Field(
        default_factory=lambda: [StreakBonus(every=7, bonus=20), StreakBonus(every=30, bonus=100)]
    )

    def bonus(self, streak: int) -> int:
        return sum(
            b.bonus for b in self.streak_bonuses if (streak % b.every == 0 if b.repeat else streak == b.every)
        )


class ExpiryPolicy(BaseModel):
    """When earned points expire, as a Shanghai day (valid through its end)."""

    policy: Literal["end_of_year", "days"] = "end_of_year"
    years_after: int = Field(default=1, ge=0, le=10)  # end_of_year: end of the year after the year earned
    days: int = Field(default=365, ge=1, le=3650)  # days: this many days after earning

    def expires_on(self, earned_on: dt.date) -> dt.date:
        if self.policy == "end_of_year":
            return dt.date(earned_on.year + self.years_after, 12, 31)
        return earned_on + dt.timedelta(days=self.days)


class Tier(BaseModel):
    code: str
    name: str
    min_spend_fen: int = Field(ge=0)  # trailing 12 months, paid amount
    min_activity: int = Field(ge=0)  # trailing 12 months: check-ins, orders, reviews
    order_multiplier_pct: int = Field(ge=0, le=1000)
    benefits: list[str] = Field(default_factory=list)


def _default_tiers() -> list[Tier]:
    return [
        Tier(code="explorer", name="体验官", min_spend_fen=0, min_activity=0, order_multiplier_pct=100,
             benefits=["生日双倍积分"]),
        Tier(code="pioneer", name="探索者", min_spend_fen=200_000, min_activity=6, order_multiplier_pct=120,
             benefits=["生日双倍积分", "免费贴膜每年1次"]),
        Tier(code="geek", name="极客玩家", min_spend_fen=800_000, min_activity=24, order_multiplier_pct=150,
             benefits=["生日三倍积分", "免费贴膜每年3次", "新品优先购"]),
        Tier(code="black_gold", name="黑金大使", min_spend_fen=2_000_000, min_activity=48, order_multiplier_pct=200,
             benefits=["生日三倍积分", "专属导购", "免费检测与贴膜", "新品优先购", "线下活动邀请"]),
    ]


class PointsConfig(BaseModel):
    checkin: CheckinRule = Field(default_factory=CheckinRule)
    profile: Rule = Field(default_factory=lambda: Rule(points=100))
    review: Rule = Field(default_factory=lambda: Rule(points=20, daily_cap=3))
    referral: Rule = Field(default_factory=lambda: Rule(points=200, daily_cap=10))
    # Orders: points per yuan paid, times the tier's multiplier and the best day multiplier.
    order_points_per_yuan: int = Field(default=1, ge=0, le=100)
    birthday_multiplier_pct: int = Field(default=200, ge=100, le=1000)  # 生日N倍积分
    birthday_scope: Literal["day", "month"] = "day"
    member_days: list[int] = Field(default_factory=lambda: [18])  # days of month: 会员日积分翻倍
    member_day_multiplier_pct: int = Field(default=200, ge=100, le=1000)
    stack_day_multipliers: bool = False  # False: the larger of birthday and member day applies
    expiry: ExpiryPolicy = Field(default_factory=ExpiryPolicy)
    expiring_window_days: int = Field(default=90, ge=1, le=3650)
    tiers: list[Tier] = Field(default_factory=_default_tiers)
    tier_window_months: int = Field(default=12, ge=1, le=36)
    system_shards: int = Field(default=16, ge=1, le=256)

    @model_validator(mode="after")
    def _tiers_ascend(self) -> PointsConfig:
        codes = [tier.code for tier in self.tiers]
        if codes != ["explorer", "pioneer", "geek", "black_gold"]:
            raise ValueError("tiers must be explorer, pioneer, geek, black_gold in that order")
        for lower, higher in zip(self.tiers, self.tiers[1:]):
            if higher.min_spend_fen < lower.min_spend_fen or higher.min_activity < lower.min_activity:
                raise ValueError(f"tier {higher.code} must ask at least as much as {lower.code}")
        if any(not 1 <= day <= 31 for day in self.member_days):
            raise ValueError("member_days are days of the month, 1 to 31")
        return self

    def tier(self, code: str | None) -> Tier:
        return next((tier for tier in self.tiers if tier.code == code), self.tiers[0])


def points_config() -> PointsConfig:
    """The policy now: these defaults, the stage's `SIYU_POINTS_CONFIG`, then what HQ changed (chalicelib.policy)."""
    return policy.effective("points", PointsConfig, CONFIG_ENV)
