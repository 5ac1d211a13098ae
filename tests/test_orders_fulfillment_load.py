"""200 orders at once, through to the end, with people and couriers behaving at random.

Stores accept, reject or ignore; couriers deliver or cancel; members collect
their pickups or never come; nobody reports some express parcels. Every order
must end completed or refunded, no execution left running, and the stock,
coupons, points and attribution must add up exactly.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.orders import flow
from chalicelib.orders.fulfillment import DELIVERY, EXPRESS, PACKING, PICKUP
from chalicelib.orders.models import Order
from chalicelib.points import ledger
from tests.conftest import eventually
from tests.fulfillment_helpers import advance, dispatches, orders_configured, parked_at, store_call
from tests.order_helpers import (
    available_points,
    coupon_status,
    delivery,
    invariant_breaches,
    level,
    new_sku,
    new_store,
    pickup,
    remote_spot,
    shopper,
    stock,
)
from tests.test_orders_api import coupon_for, pay

pytestmark = pytest.mark.usefixtures("stack")

ORDERS, MEMBERS, WORKERS = 200, 20, 12
STOCK_EACH = 120
POINTS_EACH = 2000
CONFIG = {
    "store_acceptance_seconds": 3, "pickup_seconds": 4, "express_seconds": 4, "courier_dispatches": 2,
    "delivery_couriers": ["dada", "wechat"], "refund_window_days": 0,
}
DONE = ("completed", "refunded")


def current(order_id: str) -> Order:
    return Order.get(order_id, consistent_read=True)


def settles(check, what: str, timeout: float = 60) -> Any:
    return eventually(check, timeout=timeout, what=what)


class Shop:
    """The stores, the warehouse and the members of the run, and what each order did."""

    def __init__(self, api: Any, stack: Any, seed: int) -> None:
        self.api, self.stack, self.random = api, stack, random.Random(seed)
        self.spot = remote_spot()
        lat, lng = self.spot
        self.stores = [new_store(lat, round(lng + km / 95.0, 5), radius_km=8) for km in (0.2, 1.5, 3)]
        self.sku = new_sku()
        for location in (*self.stores, "warehouse"):
            stock(location, self.sku, STOCK_EACH)
        self.members = [shopper(api, POINTS_EACH) for _ in range(MEMBERS)]
        self.coupons: dict[str, str] = {}

    def order_body(self, index: int) -> tuple[str, dict[str, Any]]:
        member_id, _ = self.members[index % MEMBERS]
        mode = self.random.choices(["delivery", "pickup", "express"], [6, 3, 2])[0]
        extra: dict[str, Any] = {}
        if self.random.random() < 0.3:
            extra["pointsToUse"] = self.random.choice([100, 200, 300])
        if self.random.random() < 0.2:
            extra["couponId"] = coupon_for(member_id, value=500, threshold=0)
        if mode == "pickup":
            return mode, pickup(self.random.choice(self.stores), (self.sku, 1), **extra)
        return mode, delivery(*self.spot, (self.sku, 1), mode=mode, **extra)


def run_one(shop: Shop, index: int, choices: random.Random) -> str:
    """Create, pay and push one order along, each actor choosing at random; the order's id."""
    _, token = shop.members[index % MEMBERS]
    _, body = shop.order_body(index)
    created = shop.api.post("/orders", token, json=body)
    assert created.status_code == 200, created.text
    order_id = created.json()["orderId"]
    pay(shop.stack, order_id)
    while True:  # the location holding the order: accept, reject or ignore it
        settles(lambda: parked_at(order_id, flow.STORE_ACCEPTANCE) or current(order_id).status in DONE,
                "a store's turn")
        order = current(order_id)
        if order.status in DONE or order.status == "refunding":
            return order_id
        move = choices.choices(["accept", "reject", "ignore"], [6, 2, 1])[0]
        if move == "ignore":
            settles(lambda: current(order_id).store_id != order.store_id or current(order_id).status != order.status,
                    "the store's deadline")
            continue
        answer = store_call(shop.api, order.store_id, order_id, move)
        if move == "accept" and answer.status_code == 200:
            break
        settles(lambda: current(order_id).store_id != order.store_id or current(order_id).status != order.status,
                "the reroute")
    settles(lambda: parked_at(order_id, PACKING), "the packing wait")
    assert store_call(shop.api, order.store_id, order_id, "ready").status_code == 200
    order = current(order_id)
    if order.mode == "pickup":
        settles(lambda: parked_at(order_id, PICKUP), "the pickup wait")
        if choices.random() < 0.85:
            collected = store_call(shop.api, order.store_id, order_id, "pickup", pickupCode=order.pickup_code)
            assert collected.status_code == 200, collected.text
        return order_id
    step = EXPRESS if order.mode == "express" else DELIVERY
    for attempt in range(1, 4):
        settles(lambda: parked_at(order_id, step) and len(dispatches(shop.stack, order_id)) >= attempt
                or current(order_id).status in DONE, "a dispatch")
        if current(order_id).status in DONE or current(order_id).status == "refunding":
            return order_id
        outcome = choices.choices(["deliver", "cancel", "silence"], [7, 2, 1 if step == EXPRESS else 0])[0]
        if outcome == "silence":
            return order_id
        if outcome == "cancel":
            advance(shop.stack, order_id, "cancelled")
            continue
        for status in ("accepted", "picked_up", "delivered"):
            advance(shop.stack, order_id, status)
        return order_id
    return order_id


def test_two_hundred_orders_at_once_all_end_completed_or_refunded_with_everything_adding_up(api, stack):
    shop = Shop(api, stack, seed=20261203)
    with orders_configured(**CONFIG), ThreadPoolExecutor(WORKERS) as pool:
        order_ids = list(pool.map(lambda i: run_one(shop, i, random.Random(i)), range(ORDERS)))
        settles(lambda: all(current(order_id).status in DONE for order_id in order_ids),
                "every order to end completed or refunded", timeout=180)
        settles(lambda: all(flow.execution_status(order_id) == "SUCCEEDED" for order_id in order_ids),
                "every execution to end", timeout=60)

    orders = [current(order_id) for order_id in order_ids]
    print(Counter((order.mode, order.status) for order in orders))
    assert {order.status for order in orders} <= set(DONE)
    assert invariant_breaches([member_id for member_id, _ in shop.members]) == {}

    sold: Counter[str] = Counter()
    for order in orders:
        if order.status == "completed":
            sold[order.store_id] += 1
            assert (order.credited_store_id, order.credited_guide_id) == (order.store_id, None)
        else:
            assert order.credited_store_id is None and order.refund_amount == order.payable
    for location in (*shop.stores, "warehouse"):
        assert level(location, shop.sku) == {"storeId": location, "skuId": shop.sku, "onHand": STOCK_EACH - sold[location],
                                             "reserved": 0, "available": STOCK_EACH - sold[location]}, location

    spent, earned = defaultdict(int), defaultdict(int)
    for order in orders:
        if order.coupon_id:
            assert coupon_status(order.member_id, order.coupon_id) == ("used" if order.status == "completed"
                                                                      else "available")
        if order.status == "completed":
            spent[order.member_id] += int(order.points_used)
            earn = ledger.find_transfer(order.member_id, f"order#{order.order_id}#earn")
            earned[order.member_id] += int(earn.pending_delta) if earn is not None else 0
    for member_id, _ in shop.members:
        assert available_points(member_id) == POINTS_EACH - spent[member_id] + earned[member_id], member_id
