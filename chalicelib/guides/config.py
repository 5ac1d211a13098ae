"""Guide policy as configuration: who is credited with an order, commission rates, customer segments.

One validated model with the brand's defaults; a stage overrides any top-level
key with the JSON in `SIYU_GUIDES_CONFIG`, and HQ's changes (`PUT /admin/config/guides`)
override those (chalicelib.policy):

    SIYU_GUIDES_CONFIG='{"credit": "bound", "commission_bp": {"phone": 150}}'

Rates are integer basis points (150 = 1.5%), so no float touches a commission.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from chalicelib import policy

__all__ = ["GuidesConfig", "guides_config", "CONFIG_ENV"]

CONFIG_ENV = "SIYU_GUIDES_CONFIG"


class GuidesConfig(BaseModel):
    # A guide's shared product link carries the guide for that order: `sharing` credits that guide,
    # `bound` keeps crediting the guide the customer is bound to (the sharer is still recorded as promoter).
    credit: Literal["sharing", "bound"] = "sharing"
    # Commission on what the customer paid for the goods, by SKU category; `default_bp` for the rest.
    commission_bp: dict[str, int] = Field(default_factory=lambda: {"phone": 100, "accessory": 500, "service": 800})
    default_bp: int = Field(default=200, ge=0, le=5000)
    # Segments (RFM, nightly): 高净值 = at least `high_value_orders` paid orders with an average
    # order value in the top `high_value_top_percent` of the guide's buying customers;
    # 潜在转化 = an unpaid order that closed, or a claimed coupon not yet used, within `recent_days`.
    high_value_orders: int = Field(default=3, ge=1, le=100)
    high_value_top_percent: int = Field(default=20, ge=1, le=100)
    recent_days: int = Field(default=30, ge=1, le=365)
    # How far back a customer's orders count for the segments.
    lookback_days: int = Field(default=365, ge=1, le=3 * 365)

    def rate_bp(self, category: str | None) -> int:
        return self.commission_bp.get(category or "", self.default_bp)


def guides_config() -> GuidesConfig:
    """The policy now: these defaults, the stage's `SIYU_GUIDES_CONFIG`, then what HQ changed (chalicelib.policy)."""
    return policy.effective("guides", GuidesConfig, CONFIG_ENV)
