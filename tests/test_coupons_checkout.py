"""Coupons at checkout, at the service level: does it apply, how much off, lock, use, return."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import clock
from chalicelib.coupons import checkout, claims, service
from chalicelib.coupons.checkout import Basket, BasketLine
from chalicelib.coupons.errors import (
    CouponExpiredError,
    CouponLockedError,
    CouponNotApplicableError,
    CouponNotLockedError,
    CouponUsedError,
)
from chalicelib.coupons.models import Coupon
from chalicelib.errors import ConflictError
from tests.conftest import live_member, unique
from tests.coupon_helpers import new_campaign


def _basket(*lines: tuple[str, int, int], store_id: str | None = None) -> Basket:
    return Basket(tuple(BasketLine(sku, price, qty) for sku, price, qty in lines), store_id=store_id)


def _coupon(**campaign) -> tuple[str, str]:
    found = new_campaign(**campaign)
    member_id = live_member()
    return member_id, claims.claim(member_id, found["campaignId"])["couponId"]


def _status(member_id: str, coupon_id: str) -> str:
    return service.coupon_view(service.get_coupon(member_id, coupon_id))["status"]


def test_a_cash_coupon_takes_its_value_off_once_the_threshold_is_reached(stack):
    member_id, coupon_id = _coupon(kind="cash", value=2000, threshold=20000)
    assert checkout.quote(member_id, coupon_id, _basket(("phone", 19999, 1), ("case", 1, 1))) == 2000
    with pytest.raises(CouponNotApplicableError, match="20000"):
        checkout.quote(member_id, coupon_id, _basket(("phone", 19999, 1)))


def test_a_no_threshold_cash_coupon_never_takes_off_more_than_the_goods(stack):
    member_id, coupon_id = _coupon(kind="cash", value=2000, threshold=0)
    assert checkout.quote(member_id, coupon_id, _basket(("cable", 1500, 1))) == 1500


def test_a_discount_coupon_takes_a_percentage_capped_by_max_off(stack):
    member_id, coupon_id = _coupon(kind="discount", value=85, threshold=0, maxOff=3000)
    assert checkout.quote(member_id, coupon_id, _basket(("earbuds", 9999, 1))) == 1499  # 15% of 99.99, fen down
    assert checkout.quote(member_id, coupon_id, _basket(("laptop", 599900, 1))) == 3000


def test_a_sku_scope_counts_only_the_covered_items(stack):
    member_id, coupon_id = _coupon(kind="cash", value=1000, threshold=5000, skuIds=["watch"])
    assert checkout.quote(member_id, coupon_id, _basket(("watch", 5000, 1), ("strap", 900, 1))) == 1000
    with pytest.raises(CouponNotApplicableError):
        checkout.quote(member_id, coupon_id, _basket(("watch", 4000, 1), ("strap", 9000, 1)))
    with pytest.raises(CouponNotApplicableError):
        checkout.quote(member_id, coupon_id, _basket(("strap", 9000, 1)))


def test_a_store_scope_needs_the_fulfilling_store(stack):
    member_id, coupon_id = _coupon(kind="cash", value=1000, threshold=0, storeIds=["sh-xuhui"])
    assert checkout.quote(member_id, coupon_id, _basket(("phone", 5000, 1), store_id="sh-xuhui")) == 1000
    with pytest.raises(CouponNotApplicableError):
        checkout.quote(member_id, coupon_id, _basket(("phone", 5000, 1), store_id="sh-pudong"))
    with pytest.raises(CouponNotApplicableError):
        checkout.quote(member_id, coupon_id, _basket(("phone", 5000, 1)))


def test_a_service_voucher_does_not_apply_online(stack):
    member_id, coupon_id = _coupon(kind="service", value=4900, threshold=0)
    with pytest.raises(CouponNotApplicableError, match="in store"):
        checkout.quote(member_id, coupon_id, _basket(("phone", 5000, 1)))


def test_a_coupon_outside_its_validity_does_not_apply(stack):
    now = clock.now()
    member_id, coupon_id = _coupon(kind="cash", value=1000, threshold=0, validTo=(now + dt.timedelta(hours=1)).isoformat())
    with clock.frozen_at(now + dt.timedelta(hours=2)):
        with pytest.raises(CouponNotApplicableError, match="expired"):
            checkout.quote(member_id, coupon_id, _basket(("phone", 5000, 1)))
    coupon = service.get_coupon(member_id, coupon_id)
    not_yet = _basket(("phone", 5000, 1))
    with pytest.raises(CouponNotApplicableError, match="not valid yet"):
        checkout.discount_for(coupon, not_yet, now=coupon.valid_from - dt.timedelta(seconds=1))


def test_another_members_coupon_does_not_apply(stack):
    _, coupon_id = _coupon(kind="cash", value=1000, threshold=0)
    with pytest.raises(CouponNotApplicableError):
        checkout.quote(unique("other"), coupon_id, _basket(("phone", 5000, 1)))


def test_a_coupon_is_locked_to_one_unpaid_order_at_a_time(stack):
    member_id, coupon_id = _coupon(kind="cash", value=1000, threshold=0)
    checkout.lock(member_id, coupon_id, "order-a")
    checkout.lock(member_id, coupon_id, "order-a")  # a retried step changes nothing
    with pytest.raises(CouponLockedError):
        checkout.lock(member_id, coupon_id, "order-b")
    view = service.coupon_view(service.get_coupon(member_id, coupon_id))
    assert view["status"] == "locked" and view["orderId"] == "order-a"
    with pytest.raises(CouponNotApplicableError):
        checkout.quote(member_id, coupon_id, _basket(("phone", 5000, 1)))


def test_two_orders_racing_for_one_coupon_lock_it_once(stack):
    member_id, coupon_id = _coupon(kind="cash", value=1000, threshold=0)

    def attempt(order_id: str) -> str:
        try:
            checkout.lock(member_id, coupon_id, order_id)
        except ConflictError as error:
            return error.code
        return "locked"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, [f"order-{n}" for n in range(8)]))
    assert outcomes.count("locked") == 1 and outcomes.count("COUPON_LOCKED") == 7


def test_paying_the_order_uses_the_coupon(stack):
    member_id, coupon_id = _coupon(kind="cash", value=1000, threshold=0)
    checkout.lock(member_id, coupon_id, "order-a")
    checkout.use(member_id, coupon_id, "order-a")
    checkout.use(member_id, coupon_id, "order-a")  # a repeated payment callback changes nothing
    view = service.coupon_view(service.get_coupon(member_id, coupon_id))
    assert view["status"] == "used" and view["orderId"] == "order-a" and view["usedAt"]
    with pytest.raises(CouponUsedError):
        checkout.lock(member_id, coupon_id, "order-b")
    with pytest.raises(ConflictError):
        checkout.use(member_id, coupon_id, "order-b")
    assert service.get_coupon(member_id, coupon_id).open_shard is None


def test_a_coupon_not_locked_by_the_order_cannot_be_used_by_it(stack):
    member_id, coupon_id = _coupon(kind="cash", value=1000, threshold=0)
    with pytest.raises(ConflictError) as refused:
        checkout.use(member_id, coupon_id, "order-a")
    assert refused.value.code == "COUPON_NOT_LOCKED"


def test_a_cancelled_order_returns_its_coupon(stack):
    member_id, coupon_id = _coupon(kind="cash", value=1000, threshold=0)
    checkout.lock(member_id, coupon_id, "order-a")
    assert checkout.release(member_id, coupon_id, "order-b") is False
    assert checkout.release(member_id, coupon_id, "order-a") is True
    assert checkout.release(member_id, coupon_id, "order-a") is False
    assert _status(member_id, coupon_id) == "available"
    checkout.lock(member_id, coupon_id, "order-c")
    assert _status(member_id, coupon_id) == "locked"


def test_a_used_coupon_is_not_returned_by_cancelling_but_by_a_full_refund(stack):
    member_id, coupon_id = _coupon(kind="cash", value=1000, threshold=0)
    checkout.lock(member_id, coupon_id, "order-a")
    checkout.use(member_id, coupon_id, "order-a")
    assert checkout.release(member_id, coupon_id, "order-a") is False
    assert _status(member_id, coupon_id) == "used"
    assert checkout.restore(member_id, coupon_id, "order-b") is False
    assert checkout.restore(member_id, coupon_id, "order-a") is True
    assert checkout.restore(member_id, coupon_id, "order-a") is False
    assert _status(member_id, coupon_id) == "available"
    assert service.get_coupon(member_id, coupon_id).open_shard is not None


def test_an_expired_coupon_cannot_be_locked(stack):
    now = clock.now()
    member_id, coupon_id = _coupon(kind="cash", value=1000, threshold=0, validTo=(now + dt.timedelta(hours=1)).isoformat())
    with clock.frozen_at(now + dt.timedelta(hours=2)):
        with pytest.raises(CouponExpiredError):
            checkout.lock(member_id, coupon_id, "order-a")


def test_the_lock_can_join_the_orders_transaction(stack):
    from chalicelib import db, transact

    member_id, coupon_id = _coupon(kind="cash", value=1000, threshold=0)
    with db.recording() as log:
        transact.write(lambda txn: checkout.add_lock(txn, member_id, coupon_id, "order-a"))
    assert len(log) == 1 and _status(member_id, coupon_id) == "locked"
    with pytest.raises(CouponLockedError):
        transact.write(lambda txn: checkout.add_lock(txn, member_id, coupon_id, "order-b"))
    transact.write(lambda txn: checkout.add_use(txn, member_id, coupon_id, "order-a"))
    assert isinstance(service.get_coupon(member_id, coupon_id), Coupon)
    assert _status(member_id, coupon_id) == "used"
    with pytest.raises(CouponNotLockedError):
        transact.write(lambda txn: checkout.add_release(txn, member_id, coupon_id, "order-a"))
