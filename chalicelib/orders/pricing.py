"""An order's price, in integer fen, from what its creation read: no I/O here.

    goods             every line at the member's unit price (a points-price line at its cash part)
    discount          the coupon's, on the lines bought for money
    points_deduction  `pointsToUse` at the configured rate, at most a share of (goods bought for money - discount)
    delivery          by fulfillment mode, free above a threshold
    payable           goods - discount - points_deduction + delivery, at least 1 fen

`points_used` is every point the order freezes: the deduction's plus each
points-price line's points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import InvalidRequestError
from chalicelib.orders.config import OrdersConfig
from chalicelib.orders.errors import NothingToPayError

__all__ = ["Item", "PricedLine", "Quote", "price"]


@dataclass(frozen=True)
class Item:
    """One line as asked, with the SKU it names."""

    sku: Any
    qty: int
    points_price: bool = False


@dataclass(frozen=True)
class PricedLine:
    sku_id: str
    title: str
    qty: int
    unit_price: int
    unit_points: int

    @property
    def amount(self) -> int:
        return self.unit_price * self.qty

    @property
    def points(self) -> int:
        return self.unit_points * self.qty


@dataclass(frozen=True)
class Quote:
    lines: tuple[PricedLine, ...]
    goods: int
    discount: int
    points_deduction: int
    deduction_points: int
    delivery: int

    @property
    def payable(self) -> int:
        return self.goods - self.discount - self.points_deduction + self.delivery

    @property
    def points_used(self) -> int:
        return self.deduction_points + sum(line.points for line in self.lines)

    def amounts(self) -> dict[str, int]:
        return {
            "goods": self.goods,
            "discount": self.discount,
            "pointsDeduction": self.points_deduction,
            "delivery": self.delivery,
            "payable": self.payable,
        }


def _unit(item: Item, tier: str, config: OrdersConfig) -> tuple[int, int]:
    sku = item.sku
    if item.points_price:
        offer = getattr(sku, "points_price", None)
        if offer is None:
            raise InvalidRequestError("items.pointsPrice", f"{sku.sku_id} has no points price")
        return int(offer.cash), int(offer.points)
    if sku.member_price is not None and tier in config.member_price_tiers:
        return int(sku.member_price), 0
    return int(sku.price), 0


def price(
    items: Sequence[Item],
    tier: str,
    mode: str,
    points_to_use: int,
    config: OrdersConfig,
    coupon_discount: Callable[[tuple[PricedLine, ...]], int] | None = None,
) -> Quote:
    """Price the order; `coupon_discount` prices the coupon on the lines bought for money."""
    lines = []
    for item in items:
        unit_price, unit_points = _unit(item, tier, config)
        lines.append(PricedLine(item.sku.sku_id, item.sku.title, item.qty, unit_price, unit_points))
    priced = tuple(lines)
    goods = sum(line.amount for line in priced)
    for_money = tuple(line for line in priced if not line.unit_points)
    discount = coupon_discount(for_money) if coupon_discount else 0
    base = sum(line.amount for line in for_money) - discount
    cap = base * config.points_cap_percent // 100
    deduction = config.deduction_fen(points_to_use)
    if config.points_for_fen(deduction) != points_to_use:
        step = config.points_per_yuan // 100 or 1
        raise InvalidRequestError("pointsToUse", f"must be a multiple of {step}")
    if deduction > cap:
        raise InvalidRequestError("pointsToUse", f"at most {config.points_for_fen(cap)} points can pay for this order")
    quote = Quote(priced, goods, discount, deduction, points_to_use, config.fee(mode, goods - discount))
    if quote.payable < 1:
        raise NothingToPayError()
    return quote
