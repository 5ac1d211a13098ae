"""Order policy as configuration: pricing, deadlines, the refund window.

One validated model with the brand's defaults. A stage overrides any part of it
with the JSON in `SIYU_ORDERS_CONFIG` (its top-level keys replace the defaults'),
and HQ's changes (`PUT /admin/config/orders`) replace those (chalicelib.policy):

    SIYU_ORDERS_CONFIG='{"payment_minutes": 30, "points_per_yuan": 50}'

Money is integer fen and shares are integer percentages, so no float touches a price.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from chalicelib import policy

__all__ = ["DeliveryFee", "Sender", "OrdersConfig", "orders_config", "CONFIG_ENV"]

CONFIG_ENV = "SIYU_ORDERS_CONFIG"


class DeliveryFee(BaseModel):
    fee: int = Field(ge=0, le=100_000)
    free_from: int | None = Field(default=None, ge=0)  # goods after discount from which it is free

    def for_goods(self, goods_after_discount: int) -> int:
        if self.free_from is not None and goods_after_discount >= self.free_from:
            return 0
        return self.fee


def _default_fees() -> dict[str, DeliveryFee]:
    return {
        "delivery": DeliveryFee(fee=600, free_from=9900),
        "pickup": DeliveryFee(fee=0),
        "express": DeliveryFee(fee=1000, free_from=19900),
    }


class Sender(BaseModel):
    """Where the warehouse's express parcels are sent from."""

    name: str = "品牌中央仓"
    phone: str = "021-60000000"
    address: str = "上海市嘉定区安亭镇墨玉路 1 号"
    lat: float = 31.29
    lng: float = 121.16


class OrdersConfig(BaseModel):
    # The sweeper closes an order still unpaid this long after its creation.
    payment_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # 100 points = 1 yuan: a deduction of n points takes n * 100 // points_per_yuan fen off.
    points_per_yuan: int = Field(default=100, ge=1, le=10_000)
    # Points may pay at most this share of the goods after the coupon.
    points_cap_percent: int = Field(default=50, ge=0, le=100)
    # Tiers that pay a SKU's member price (others pay its price).
    member_price_tiers: list[str] = Field(default_factory=lambda: ["pioneer", "geek", "black_gold"])
    fees: dict[str, DeliveryFee] = Field(default_factory=_default_fees)
    # A delivery order goes to the nearest of this many stores that deliver to the address and hold every line.
    delivery_candidates: int = Field(default=5, ge=1, le=10)
    refund_window_days: int = Field(default=7, ge=0, le=90)
    # How long a store has to accept a paid order; then the execution's wait times out into its next move.
    store_acceptance_seconds: int = Field(default=1800, ge=1, le=7 * 86400)
    # How many stores a delivery order may be routed to (the first included) before the warehouse ships it.
    routed_stores: int = Field(default=3, ge=1, le=10)
    # After acceptance: packing it, a courier delivering it, the member collecting it.
    packing_seconds: int = Field(default=4 * 3600, ge=1, le=7 * 86400)
    delivery_seconds: int = Field(default=6 * 3600, ge=1, le=7 * 86400)
    pickup_seconds: int = Field(default=3 * 86400, ge=1, le=30 * 86400)
    # An express parcel with no delivered report by then is taken as delivered.
    express_seconds: int = Field(default=10 * 86400, ge=1, le=30 * 86400)
    # The couriers a delivery order's dispatches go to in turn, and how many dispatches it gets.
    delivery_couriers: list[Literal["dada", "wechat"]] = Field(default_factory=lambda: ["dada", "wechat"], min_length=1)
    courier_dispatches: int = Field(default=3, ge=1, le=10)
    warehouse: Sender = Field(default_factory=Sender)
    # A paid order whose execution has not settled the payment by then is looked at by the sweeper.
    settle_grace_seconds: int = Field(default=120, ge=10)
    # A refund WeChat Pay has not confirmed by then is asked about by the sweeper.
    refund_grace_seconds: int = Field(default=300, ge=10)

    def deadlines(self) -> dict[str, int]:
        """The execution's waits, in seconds: its input carries them, so each execution keeps the ones it started with."""
        return {
            "storeAcceptanceSeconds": self.store_acceptance_seconds,
            "packingSeconds": self.packing_seconds,
            "deliverySeconds": self.delivery_seconds,
            "pickupSeconds": self.pickup_seconds,
            "expressSeconds": self.express_seconds,
            "returnWindowSeconds": self.refund_window_days * 86400,
        }

    def courier_for(self, attempt: int) -> str:
        """The courier of the order's `attempt`-th dispatch (from 1): the list in turn."""
        return self.delivery_couriers[(attempt - 1) % len(self.delivery_couriers)]

    def fee(self, mode: str, goods_after_discount: int) -> int:
        return self.fees[mode].for_goods(goods_after_discount) if mode in self.fees else 0

    def deduction_fen(self, points: int) -> int:
        return points * 100 // self.points_per_yuan

    def points_for_fen(self, fen: int) -> int:
        """The most points whose deduction does not exceed `fen`."""
        return fen * self.points_per_yuan // 100


def orders_config() -> OrdersConfig:
    """The policy now: these defaults, the stage's `SIYU_ORDERS_CONFIG`, then what HQ changed (chalicelib.policy)."""
    return policy.effective("orders", OrdersConfig, CONFIG_ENV)
